#include "server/v2/grpc_service.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/text.h"
#include "server/service/convert.h"
#include "server/service/model_control_service.h"
#include "server/service/triton_config.h"
#include "server/service/unary_infer.h"
#include "server/service/wire.h"
#include "server/v2/datatype.h"
#include "server/v2/infer_call.h"
#include "server/v2/statistics.h"
#include "server/v2/stream_infer.h"
#include "server/v2/typed_contents.h"

namespace microbatch::v2 {

#ifndef MICROBATCH_VERSION
#define MICROBATCH_VERSION "0.0.0"
#endif
const char* ServerVersion() { return MICROBATCH_VERSION; }

namespace {


// Finishes a small call with `status` (OK fills nothing more).
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* GrpcService::ServerLive(grpc::CallbackServerContext* context,
                                                  const inference::ServerLiveRequest*,
                                                  inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcService::ServerReady(grpc::CallbackServerContext* context,
                                                   const inference::ServerReadyRequest*,
                                                   inference::ServerReadyResponse* response) {
  response->set_ready(ready_());
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcService::ModelReady(grpc::CallbackServerContext* context,
                                                  const inference::ModelReadyRequest* request,
                                                  inference::ModelReadyResponse* response) {
  // Unknown models and versions are not ready; only a malformed version is an
  // error.
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(request->name(), request->version());
  if (!spec.ok()) return Answer(context, spec.status());
  response->set_ready(ready_() && engine_->Find(*spec).ok());
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcService::ServerMetadata(grpc::CallbackServerContext* context,
                                                      const inference::ServerMetadataRequest*,
                                                      inference::ServerMetadataResponse* response) {
  response->set_name(kServerName);
  response->set_version(ServerVersion());
  response->add_extensions("classification");
  response->add_extensions("model_repository");
  response->add_extensions("model_configuration");
  response->add_extensions("statistics");
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcService::ModelMetadata(grpc::CallbackServerContext* context,
                                                     const inference::ModelMetadataRequest* request,
                                                     inference::ModelMetadataResponse* response) {
  return Answer(context, [&]() -> absl::Status {
    absl::StatusOr<std::shared_ptr<ServedModel>> model = engine_->Find(request->name(), request->version());
    if (!model.ok()) return model.status();
    absl::StatusOr<ModelManager*> repository = engine_->Models();
    if (!repository.ok()) return repository.status();
    const ServedModel& served = **model;
    response->set_name(served.name);
    for (int64_t v : (*repository)->Versions(served.name)) response->add_versions(absl::StrCat(v));
    response->set_platform(PlatformName(served.plan.config.platform()));
    auto describe = [&served](const TensorSpec& spec, inference::ModelMetadataResponse::TensorMetadata* out) {
      out->set_name(spec.name);
      out->set_datatype(DatatypeName(spec.dtype));
      for (int64_t d : served.signature.ClientShape(spec)) out->add_shape(d);
    };
    for (const TensorSpec& t : served.signature.inputs) describe(t, response->add_inputs());
    for (const TensorSpec& t : served.signature.outputs) describe(t, response->add_outputs());
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* GrpcService::ModelConfig(grpc::CallbackServerContext* context,
                                                   const inference::ModelConfigRequest* request,
                                                   inference::ModelConfigResponse* response) {
  return Answer(context, [&]() -> absl::Status {
    absl::StatusOr<std::shared_ptr<ServedModel>> model = engine_->Find(request->name(), request->version());
    if (!model.ok()) return model.status();
    *response->mutable_config() = ToTritonConfig((*model)->plan.config);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* GrpcService::ModelStatistics(grpc::CallbackServerContext* context,
                                                       const inference::ModelStatisticsRequest* request,
                                                       inference::ModelStatisticsResponse* response) {
  absl::StatusOr<inference::ModelStatisticsResponse> statistics =
      CollectStatistics(*engine_, request->name(), request->version());
  if (statistics.ok()) *response = *std::move(statistics);
  return Answer(context, statistics.status());
}

grpc::ServerUnaryReactor* GrpcService::ModelInfer(grpc::CallbackServerContext* context,
                                                  const grpc::ByteBuffer* request_body,
                                                  grpc::ByteBuffer* response_body) {
  const absl::Time received = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!gate_.Enter()) {
    return RefuseUnaryInfer(engine_, RpcMethod::kModelInfer, received, reactor, DrainGate::Draining());
  }
  auto refuse = [&](const absl::Status& status) {
    RefuseUnaryInfer(engine_, RpcMethod::kModelInfer, received, reactor, status);
    gate_.Exit();  // after Finish, as in on_done: a drain that saw zero finds every call finished
    return reactor;
  };
  auto call = std::make_unique<InferCall>();
  if (absl::Status decoded = ParseBody(*request_body, &call->request); !decoded.ok()) {
    return refuse(decoded);
  }
  absl::StatusOr<InferenceRequest> inference = ToInferenceRequest(call.get(), received);
  if (!inference.ok()) return refuse(inference.status());
  SetFromCallContext(context, call->request.id(), &*inference);
  inference->wire_bytes = static_cast<int64_t>(request_body->Length());

  InferCall* raw_call = call.release();
  InferenceCallbacks callbacks;
  callbacks.on_outputs = [raw_call, response_body](const InferenceResult& result) {
    if (absl::Status s = FillInferResponse(result, *raw_call, &raw_call->response); !s.ok()) return s;
    return SerializeBody(raw_call->response, response_body);
  };
  callbacks.on_done = [this, raw_call, reactor](const absl::Status& status) {
    delete raw_call;
    reactor->Finish(ToGrpcStatus(status));
    gate_.Exit();
  };
  engine_->Infer(*std::move(inference), std::move(callbacks));
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* GrpcService::ModelStreamInfer(
    grpc::CallbackServerContext* context) {
  return new StreamInferReactor(engine_, &gate_, context);
}

std::string TritonState(const std::string& state) {
  return state == "FAILED" ? "UNAVAILABLE" : state;
}

grpc::ServerUnaryReactor* GrpcService::RepositoryIndex(grpc::CallbackServerContext* context,
                                                       const inference::RepositoryIndexRequest* request,
                                                       inference::RepositoryIndexResponse* response) {
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return Answer(context, models.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  FinishOnPool(admin_pool_, reactor, [models = *models, request, response] {
    for (const ModelVersionIndex& row : models->Index()) {
      if (request->ready() && row.state != "READY") continue;
      auto* index = response->add_models();
      index->set_name(row.model);
      index->set_version(absl::StrCat(row.version));
      index->set_state(TritonState(row.state));
      index->set_reason(row.reason);
    }
    return absl::OkStatus();
  });
  return reactor;
}

grpc::ServerUnaryReactor* GrpcService::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return Answer(context, models.status());
  if (!request->parameters().empty()) {
    return Answer(context, absl::InvalidArgumentError(
                               "RepositoryModelLoad parameters (an inline config or files) are not "
                               "supported: put the model in the repository and load it by name"));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time deadline = AdminDeadline(*context);
  FinishOnPool(admin_pool_, reactor, [models = *models, request, deadline] {
    return models->LoadModel(request->model_name(), deadline);
  });
  return reactor;
}

grpc::ServerUnaryReactor* GrpcService::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return Answer(context, models.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time deadline = AdminDeadline(*context);
  FinishOnPool(admin_pool_, reactor, [models = *models, request, deadline] {
    return models->UnloadModel(request->model_name(), deadline);
  });
  return reactor;
}

}  // namespace microbatch::v2
