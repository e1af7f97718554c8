#include "server/service/model_control_service.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/log.h"
#include "server/core/text.h"
#include "server/service/convert.h"

namespace microbatch {
namespace {

v1::VersionState ToProto(const std::string& state) {
  if (state == "LOADING") return v1::VERSION_STATE_LOADING;
  if (state == "READY") return v1::VERSION_STATE_READY;
  if (state == "UNLOADING") return v1::VERSION_STATE_UNLOADING;
  if (state == "UNAVAILABLE") return v1::VERSION_STATE_UNAVAILABLE;
  if (state == "FAILED") return v1::VERSION_STATE_FAILED;
  return v1::VERSION_STATE_UNSPECIFIED;
}

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// One line per admin call that changed something (or tried to).
void LogAdmin(const char* call, const std::string& model, const absl::Status& status,
              const std::string& detail = "") {
  Log(status.ok() ? LogLevel::kInfo : LogLevel::kWarning, "model_control",
      {{"call", call},
       {"model", ClientText(model)},
       {"detail", detail},
       {"code", absl::StatusCodeToString(status.code())},
       {"message", status.message()}});
}

}  // namespace

absl::Time AdminDeadline(const grpc::CallbackServerContext& context) {
  if (context.deadline() == std::chrono::system_clock::time_point::max()) {
    return absl::Now() + kDefaultAdminDeadline;
  }
  return absl::FromChrono(context.deadline());
}

void FinishOnPool(lifecycle::ThreadPool* pool, grpc::ServerUnaryReactor* reactor,
                  std::function<absl::Status()> work) {
  pool->Schedule([reactor, work = std::move(work)] { reactor->Finish(ToGrpcStatus(work())); });
}

void FillIndex(const ModelManager& models, const std::string& model,
               google::protobuf::RepeatedPtrField<v1::ModelVersionStatus>* out) {
  for (const ModelVersionIndex& row : models.Index()) {
    if (!model.empty() && row.model != model) continue;
    v1::ModelVersionStatus* status = out->Add();
    status->set_model(row.model);
    status->set_version(row.version);
    status->set_state(ToProto(row.state));
    status->set_reason(row.reason);
    for (const std::string& label : row.labels) status->add_labels(label);
    status->set_canary_percent(row.canary_percent);
    status->set_shadow_fraction(row.shadow_fraction);
    status->set_is_default(row.is_default);
  }
}

grpc::ServerUnaryReactor* ModelControlService::RepositoryIndex(
    grpc::CallbackServerContext* context, const v1::RepositoryIndexRequest* request,
    v1::RepositoryIndexResponse* response) {
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return Answer(context, models.status());
  // The index scans the repository directory: off the gRPC thread, and not
  // behind LoadModel / UnloadModel calls waiting on pool_ (two slow loads
  // held it for as long as they took).
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  FinishOnPool(&index_pool_, reactor, [models = *models, request, response] {
    FillIndex(*models, request->model(), response->mutable_versions());
    response->set_control_mode(models->mode() == ControlMode::kPoll ? "poll" : "explicit");
    return absl::OkStatus();
  });
  return reactor;
}

grpc::ServerUnaryReactor* ModelControlService::LoadModel(grpc::CallbackServerContext* context,
                                                         const v1::LoadModelRequest* request,
                                                         v1::LoadModelResponse* response) {
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return Answer(context, models.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time deadline = AdminDeadline(*context);
  FinishOnPool(pool_, reactor, [models = *models, request, response, deadline] {
    absl::Status status = models->LoadModel(request->model(), deadline);
    LogAdmin("LoadModel", request->model(), status);
    if (status.ok()) FillIndex(*models, request->model(), response->mutable_versions());
    return status;
  });
  return reactor;
}

grpc::ServerUnaryReactor* ModelControlService::UnloadModel(grpc::CallbackServerContext* context,
                                                           const v1::UnloadModelRequest* request,
                                                           v1::UnloadModelResponse*) {
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return Answer(context, models.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time deadline = AdminDeadline(*context);
  FinishOnPool(pool_, reactor, [models = *models, request, deadline] {
    absl::Status status = models->UnloadModel(request->model(), deadline);
    LogAdmin("UnloadModel", request->model(), status);
    return status;
  });
  return reactor;
}

grpc::ServerUnaryReactor* ModelControlService::SetLabel(grpc::CallbackServerContext* context,
                                                        const v1::SetLabelRequest* request,
                                                        v1::SetLabelResponse*) {
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return Answer(context, models.status());
  absl::Status status = request->version() == 0
                            ? (*models)->RemoveLabel(request->model(), request->label())
                            : (*models)->SetLabel(request->model(), request->label(), request->version());
  LogAdmin("SetLabel", request->model(), status,
           absl::StrCat(ClientText(request->label()), "=", request->version()));
  return Answer(context, status);
}

grpc::ServerUnaryReactor* ModelControlService::SetCanary(grpc::CallbackServerContext* context,
                                                         const v1::SetCanaryRequest* request,
                                                         v1::SetCanaryResponse*) {
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return Answer(context, models.status());
  std::vector<std::pair<int64_t, double>> canary;
  std::string detail;
  for (const v1::CanarySplit& split : request->canary()) {
    canary.emplace_back(split.version(), split.percent());
    absl::StrAppend(&detail, detail.empty() ? "" : ",", split.version(), ":", split.percent(), "%");
  }
  absl::Status status = (*models)->SetCanary(request->model(), canary);
  LogAdmin("SetCanary", request->model(), status, detail);
  return Answer(context, status);
}

grpc::ServerUnaryReactor* ModelControlService::SetShadow(grpc::CallbackServerContext* context,
                                                         const v1::SetShadowRequest* request,
                                                         v1::SetShadowResponse*) {
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return Answer(context, models.status());
  absl::Status status = (*models)->SetShadow(request->model(), request->version(), request->fraction());
  LogAdmin("SetShadow", request->model(), status,
           absl::StrCat(request->version(), ":", request->fraction()));
  return Answer(context, status);
}

}  // namespace microbatch
