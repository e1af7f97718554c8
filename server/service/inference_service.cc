#include "server/service/inference_service.h"

#include <optional>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/core/log.h"
#include "server/core/text.h"
#include "server/service/convert.h"
#include "server/service/wire.h"

namespace microbatch {

absl::StatusOr<ModelRepository*> InferenceService::Repository() const {
  ModelRepository* repository = repository_.load();
  if (repository == nullptr) {
    return absl::UnavailableError("the server is still loading its models; retry shortly");
  }
  return repository;
}

namespace {

// The reject counter a final status stands for, if any.
std::optional<RejectReason> ReasonFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return RejectReason::kInvalidInput;
    case absl::StatusCode::kResourceExhausted:
      if (status.GetPayload(MemoryBudget::kExhaustedPayload).has_value()) {
        return RejectReason::kMemoryBudget;
      }
      return status.GetPayload(DynamicBatcher::kOverloadPayload).has_value()
                 ? RejectReason::kOverloaded
                 : RejectReason::kQueueFull;
    case absl::StatusCode::kDeadlineExceeded:
      return RejectReason::kDeadlineExceeded;
    case absl::StatusCode::kCancelled:
      return RejectReason::kCancelled;
    default:
      return std::nullopt;
  }
}

}  // namespace

namespace {

// Lines a client can cause once per request, rate-limited.
RateLimitedLog& RejectedLog() {
  static RateLimitedLog* log = new RateLimitedLog(10);
  return *log;
}
RateLimitedLog& FailedLog() {
  static RateLimitedLog* log = new RateLimitedLog(10);
  return *log;
}

// The decoded messages of one Predict call; freed when the call is answered.
struct PredictCall {
  v1::PredictRequest request;
  v1::PredictResponse response;
  MemoryBudget::Lease memory;  // the request's and response's bytes
};

}  // namespace

grpc::ServerUnaryReactor* InferenceService::Predict(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request_body,
                                                    grpc::ByteBuffer* response_body) {
  const absl::Time received = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto* call = new PredictCall;
  in_flight_.fetch_add(1);
  const v1::PredictRequest* request = &call->request;
  const absl::Status decoded =
      accepting_.load() ? ParseBody(*request_body, &call->request)
                        : absl::UnavailableError(
                              "the server is shutting down; retry on another replica");
  absl::StatusOr<ModelRepository*> repository = Repository();
  absl::StatusOr<ServedModel*> model =
      !decoded.ok()       ? absl::StatusOr<ServedModel*>(decoded)
      : repository.ok()   ? (*repository)->Find(request->model(), request->version())
                          : absl::StatusOr<ServedModel*>(repository.status());
  ModelMetrics* metrics = model.ok() ? (*model)->metrics : metrics_->Unknown();
  metrics->RequestStarted();
  // Records and sends a final status; the one place every request ends.
  auto finish = [this, reactor, metrics, received, call, response_body](absl::Status status) {
    if (status.ok()) status = SerializeBody(call->response, response_body);
    delete call;
    if (std::optional<RejectReason> reason = ReasonFor(status)) metrics->RecordReject(*reason);
    metrics->RecordRequest(RpcMethod::kPredict, status.code(), absl::Now() - received);
    reactor->Finish(ToGrpcStatus(status));
    in_flight_.fetch_sub(1);
  };
  auto fail = [&](const absl::Status& status) {
    // Bad requests and load shedding are counted in the metrics, not logged
    // one by one (under overload that would be a line per refused request).
    if (status.code() != absl::StatusCode::kInvalidArgument &&
        status.code() != absl::StatusCode::kNotFound &&
        status.code() != absl::StatusCode::kResourceExhausted &&
        status.code() != absl::StatusCode::kDeadlineExceeded) {
      RejectedLog().Log(LogLevel::kWarning, "predict_rejected",
                        {{"model", ClientText(request->model())},
                         {"request_id", ClientText(request->request_id())},
                         {"code", absl::StatusCodeToString(status.code())},
                         {"message", status.message()}});
    }
    finish(status);
    return reactor;
  };
  if (!model.ok()) return fail(model.status());
  absl::StatusOr<std::vector<RequestTensor>> tensors = ToRequestTensors(request->inputs());
  if (!tensors.ok()) return fail(tensors.status());
  absl::StatusOr<ValidatedInputs> inputs =
      ValidateInputs((*model)->signature, *tensors, (*model)->plan.config.max_batch_size());
  if (!inputs.ok()) return fail(inputs.status());
  absl::StatusOr<std::vector<int>> selected =
      ResolveOutputs((*model)->signature, std::vector<std::string>(request->outputs().begin(),
                                                                   request->outputs().end()));
  if (!selected.ok()) return fail(selected.status());
  // The wire bytes and their decoded copy, and the outputs to come.
  int64_t input_bytes = 0;
  for (const TensorView& in : inputs->inputs) input_bytes += static_cast<int64_t>(in.byte_size);
  absl::StatusOr<MemoryBudget::Lease> memory = budget_->Reserve(
      2 * static_cast<int64_t>(request_body->Length()) +
      EstimateOutputBytes((*model)->signature, *selected, inputs->rows, input_bytes));
  if (!memory.ok()) return fail(memory.status());
  call->memory = std::move(*memory);

  v1::PredictResponse* response = &call->response;
  response->set_model((*model)->name);
  response->set_version((*model)->version);
  response->set_request_id(request->request_id());

  BatchTask task;
  task.inputs = std::move(inputs->inputs);
  task.rows = inputs->rows;
  task.shape_key = std::move(inputs->shape_key);
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    task.deadline = absl::FromChrono(context->deadline());
  }
  task.is_cancelled = [context] { return context->IsCancelled(); };
  const ServedModel* served = *model;
  task.done = [finish, request, response, served, selected = std::move(*selected)](
                  const absl::Status& status, const TaskOutputs& outputs, const BatchInfo& info) {
    served->metrics->RecordQueueWait(info.queue_wait);
    if (status.ok()) {
      AppendOutputs(served->signature, selected, outputs, response->mutable_outputs());
    } else if (status.code() == absl::StatusCode::kInternal) {
      FailedLog().Log(LogLevel::kError, "predict_failed",
                      {{"model", served->name}, {"version", served->version},
                       {"request_id", ClientText(request->request_id())},
                       {"message", status.message()}});
    }
    finish(status);
  };
  absl::Status queued = served->batcher->Enqueue(std::move(task));
  if (!queued.ok()) return fail(queued);
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* InferenceService::BatchPredict(grpc::CallbackServerContext* context) {
  return new BatchPredictReactor(context, repository_.load(), metrics_, budget_, &streams_,
                                 batch_window_);
}

void FillMetadata(const ModelRepository& repository, const ServedModel& model,
                  v1::ModelMetadata* metadata) {
  const v1::ModelConfig& c = model.plan.config;
  metadata->set_name(model.name);
  metadata->set_version(model.version);
  for (int64_t v : repository.Versions(model.name)) metadata->add_versions(v);
  metadata->set_platform(c.platform());
  metadata->set_device(c.device());
  auto describe = [](const TensorSpec& spec, v1::TensorMetadata* out) {
    out->set_name(spec.name);
    out->set_dtype(ToProtoDType(spec.dtype));
    for (int64_t d : spec.BatchedShape()) out->add_shape(d);
  };
  for (const TensorSpec& spec : model.signature.inputs) describe(spec, metadata->add_inputs());
  for (const TensorSpec& spec : model.signature.outputs) describe(spec, metadata->add_outputs());
  v1::BatchingMetadata* batching = metadata->mutable_batching();
  batching->set_max_batch_size(c.max_batch_size());
  batching->set_max_queue_delay_microseconds(c.max_queue_delay_microseconds());
  batching->set_max_queue_size(c.max_queue_size());
  batching->set_instance_count(c.instance_count());
  metadata->set_ready(true);
}

grpc::ServerUnaryReactor* InferenceService::GetModelMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_body,
    grpc::ByteBuffer* response_body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus([&]() -> absl::Status {
    v1::GetModelMetadataRequest request;
    if (absl::Status s = ParseBody(*request_body, &request); !s.ok()) return s;
    absl::StatusOr<ModelRepository*> repository = Repository();
    if (!repository.ok()) return repository.status();
    absl::StatusOr<ServedModel*> model = (*repository)->Find(request.model(), request.version());
    if (!model.ok()) return model.status();
    v1::ModelMetadata response;
    FillMetadata(**repository, **model, &response);
    return SerializeBody(response, response_body);
  }()));
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request_body,
                                                       grpc::ByteBuffer* response_body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus([&]() -> absl::Status {
    v1::ListModelsRequest request;
    if (absl::Status s = ParseBody(*request_body, &request); !s.ok()) return s;
    absl::StatusOr<ModelRepository*> repository = Repository();
    if (!repository.ok()) return repository.status();
    v1::ListModelsResponse response;
    for (const ServedModel* model : (*repository)->All()) {
      FillMetadata(**repository, *model, response.add_models());
    }
    return SerializeBody(response, response_body);
  }()));
  return reactor;
}

grpc::ServerUnaryReactor* EchoService::Echo(grpc::CallbackServerContext* context,
                                            const v1::PredictRequest* request,
                                            v1::PredictRequest* response) {
  *response = *request;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace microbatch
