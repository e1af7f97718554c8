#include "server/service/inference_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/core/log.h"
#include "server/core/text.h"
#include "server/service/convert.h"
#include "server/service/unary_infer.h"
#include "server/service/wire.h"

namespace microbatch {

namespace {

// The decoded messages of one Predict call; freed when the call is answered.
struct PredictCall {
  v1::PredictRequest request;
  v1::PredictResponse response;
};

}  // namespace

grpc::ServerUnaryReactor* InferenceService::Predict(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request_body,
                                                    grpc::ByteBuffer* response_body) {
  const absl::Time received = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!gate_.Enter()) {
    return RefuseUnaryInfer(engine_, RpcMethod::kPredict, received, reactor, DrainGate::Draining());
  }
  auto* call = new PredictCall;
  if (absl::Status decoded = ParseBody(*request_body, &call->request); !decoded.ok()) {
    delete call;
    RefuseUnaryInfer(engine_, RpcMethod::kPredict, received, reactor, decoded);
    gate_.Exit();  // after Finish, as in on_done
    return reactor;
  }
  const v1::PredictRequest& request = call->request;
  absl::StatusOr<std::vector<RequestTensor>> tensors = ToRequestTensors(request.inputs());
  InferenceRequest inference;
  inference.method = RpcMethod::kPredict;
  SetFromCallContext(context, request.request_id(), &inference);
  inference.model.name = request.model();
  inference.model.version = request.version();
  inference.model.label = request.version_label();
  if (!request.version_label().empty() && request.version() != 0) {
    inference.input_error = absl::InvalidArgumentError(absl::StrCat(
        "set either version (", request.version(), ") or version_label ('",
        ClientText(request.version_label()), "'), not both"));
    inference.model.label.clear();
  }
  inference.id = request.request_id();
  inference.received = received;
  inference.wire_bytes = static_cast<int64_t>(request_body->Length());
  inference.outputs.assign(request.outputs().begin(), request.outputs().end());
  InferenceCallbacks callbacks;
  callbacks.on_outputs = [call, response_body](const InferenceResult& result) {
    v1::PredictResponse* response = &call->response;
    response->set_model(result.model.name);
    response->set_version(result.model.version);
    response->set_request_id(call->request.request_id());
    AppendOutputs(result.model.signature, std::vector<int>(result.selected.begin(), result.selected.end()),
                  result.outputs, response->mutable_outputs());
    return SerializeBody(*response, response_body);
  };
  callbacks.on_done = [this, call, reactor](const absl::Status& status) {
    delete call;
    reactor->Finish(ToGrpcStatus(status));
    gate_.Exit();
  };
  if (tensors.ok()) {
    inference.inputs = std::move(*tensors);
  } else {
    inference.input_error = tensors.status();
  }
  engine_->Infer(std::move(inference), std::move(callbacks));
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* InferenceService::BatchPredict(grpc::CallbackServerContext* context) {
  absl::StatusOr<ModelManager*> repository = engine_->Models();
  return new BatchPredictReactor(context, repository.ok() ? *repository : nullptr, metrics_, budget_,
                                 &streams_, batch_window_);
}

void FillMetadata(const ModelManager& repository, const ServedModel& model,
                  v1::ModelMetadata* metadata) {
  const v1::ModelConfig& c = model.plan.config;
  metadata->set_name(model.name);
  metadata->set_version(model.version);
  for (int64_t v : repository.Versions(model.name)) metadata->add_versions(v);
  metadata->set_platform(c.platform());
  metadata->set_device(c.device());
  auto describe = [&model](const TensorSpec& spec, v1::TensorMetadata* out) {
    out->set_name(spec.name);
    out->set_dtype(ToProtoDType(spec.dtype));
    for (int64_t d : model.signature.ClientShape(spec)) out->add_shape(d);
  };
  for (const TensorSpec& spec : model.signature.inputs) describe(spec, metadata->add_inputs());
  for (const TensorSpec& spec : model.signature.outputs) describe(spec, metadata->add_outputs());
  v1::BatchingMetadata* batching = metadata->mutable_batching();
  batching->set_max_batch_size(c.no_batch_dimension() ? 0 : c.max_batch_size());
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
    absl::StatusOr<ModelManager*> repository = engine_->Models();
    if (!repository.ok()) return repository.status();
    absl::StatusOr<std::shared_ptr<ServedModel>> model =
        (*repository)->Find(request.model(), request.version(), request.version_label());
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
    absl::StatusOr<ModelManager*> repository = engine_->Models();
    if (!repository.ok()) return repository.status();
    v1::ListModelsResponse response;
    for (const auto& model : (*repository)->All()) {
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
