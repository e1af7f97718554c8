#include "client/predict.h"

#include <grpcpp/grpcpp.h>

#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/npy.h"
#include "client/tensor_json.h"
#include "microbatch/v1/inference.grpc.pb.h"

namespace microbatch {
namespace {

int Fail(const std::string& message) {
  std::cerr << "microbatch: " << message << "\n";
  return 1;
}

absl::Status RpcError(const grpc::Status& status) {
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  return absl::Status(code, absl::StrCat(absl::StatusCodeToString(code), ": ", status.error_message()));
}

absl::StatusOr<std::unique_ptr<v1::Inference::Stub>> Connect(const ConnectionOptions& connection) {
  absl::StatusOr<ChannelFactory> channels = ChannelFactory::Create(connection.tls);
  if (!channels.ok()) return channels.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return v1::Inference::NewStub(channels->NewChannel(connection.target, args));
}

void SetDeadline(const ConnectionOptions& connection, grpc::ClientContext* context) {
  if (connection.timeout_ms > 0) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(connection.timeout_ms));
  }
}

absl::StatusOr<v1::Tensor> TensorFromNpy(const std::string& name, const std::string& path) {
  absl::StatusOr<std::unique_ptr<NpyReader>> reader = NpyReader::Open(path);
  if (!reader.ok()) return reader.status();
  v1::Tensor tensor;
  tensor.set_name(name);
  tensor.set_dtype(static_cast<v1::DataType>((*reader)->dtype()));
  for (int64_t d : (*reader)->shape()) tensor.add_shape(d);
  if (absl::Status s = (*reader)->ReadRows(0, (*reader)->rows(), tensor.mutable_data()); !s.ok()) {
    return s;
  }
  return tensor;
}

// A JSON value for the declared input `name` of `metadata`.
absl::StatusOr<v1::Tensor> TensorFromJsonText(const std::string& name, const std::string& text,
                                              const v1::ModelMetadata& metadata) {
  const v1::TensorMetadata* declared = nullptr;
  for (const auto& in : metadata.inputs()) {
    if (in.name() == name) declared = &in;
  }
  if (declared == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("model '", metadata.name(), "' has no input '", name, "'"));
  }
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("--input ", name, ": not valid JSON"));
  return TensorFromJson(name, json, static_cast<DType>(declared->dtype()),
                        {declared->shape().begin(), declared->shape().end()});
}

// One --input: name=FILE.npy or name=JSON.
absl::StatusOr<v1::Tensor> InputTensor(const std::string& input, const v1::ModelMetadata& metadata) {
  const size_t eq = input.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--input '", input, "': expected name=FILE.npy or name=JSON"));
  }
  const std::string name = input.substr(0, eq);
  const std::string value = input.substr(eq + 1);
  if (absl::EndsWith(value, ".npy")) return TensorFromNpy(name, value);
  return TensorFromJsonText(name, value, metadata);
}

absl::StatusOr<v1::PredictRequest> BuildRequest(const PredictOptions& options, const v1::ModelMetadata& metadata) {
  v1::PredictRequest request;
  request.set_model(options.model);
  request.set_version(options.version);
  request.set_request_id(options.request_id);
  for (const std::string& output : options.outputs) request.add_outputs(output);
  for (const std::string& input : options.inputs) {
    absl::StatusOr<v1::Tensor> tensor = InputTensor(input, metadata);
    if (!tensor.ok()) return tensor.status();
    *request.add_inputs() = std::move(*tensor);
  }
  return request;
}

nlohmann::json ResponseJson(const v1::PredictResponse& response, absl::Duration latency) {
  nlohmann::json out;
  out["model"] = response.model();
  out["version"] = response.version();
  if (!response.request_id().empty()) out["request_id"] = response.request_id();
  out["latency_ms"] = absl::ToDoubleMilliseconds(latency);
  out["outputs"] = nlohmann::json::object();
  for (const v1::Tensor& tensor : response.outputs()) out["outputs"][tensor.name()] = TensorToJson(tensor);
  return out;
}

nlohmann::json TensorsJson(const google::protobuf::RepeatedPtrField<v1::TensorMetadata>& tensors) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : tensors) {
    out.push_back({{"name", t.name()},
                   {"dtype", DTypeName(static_cast<DType>(t.dtype()))},
                   {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())}});
  }
  return out;
}

nlohmann::json ModelJson(const v1::ModelMetadata& model) {
  nlohmann::json m;
  m["name"] = model.name();
  m["version"] = model.version();
  m["versions"] = std::vector<int64_t>(model.versions().begin(), model.versions().end());
  m["platform"] = model.platform();
  m["device"] = model.device();
  m["inputs"] = TensorsJson(model.inputs());
  m["outputs"] = TensorsJson(model.outputs());
  m["batching"] = {{"max_batch_size", model.batching().max_batch_size()},
                   {"max_queue_delay_microseconds", model.batching().max_queue_delay_microseconds()},
                   {"max_queue_size", model.batching().max_queue_size()},
                   {"instance_count", model.batching().instance_count()}};
  return m;
}

}  // namespace

int RunPredict(const PredictOptions& options) {
  absl::StatusOr<std::unique_ptr<v1::Inference::Stub>> stub = Connect(options.connection);
  if (!stub.ok()) return Fail(std::string(stub.status().message()));
  // The model's metadata gives JSON inputs their dtype and rank.
  v1::GetModelMetadataRequest metadata_request;
  metadata_request.set_model(options.model);
  metadata_request.set_version(options.version);
  v1::ModelMetadata metadata;
  {
    grpc::ClientContext context;
    SetDeadline(options.connection, &context);
    grpc::Status status = (*stub)->GetModelMetadata(&context, metadata_request, &metadata);
    if (!status.ok()) return Fail(std::string(RpcError(status).message()));
  }
  absl::StatusOr<v1::PredictRequest> request = BuildRequest(options, metadata);
  if (!request.ok()) return Fail(std::string(request.status().message()));

  v1::PredictResponse response;
  grpc::ClientContext context;
  SetDeadline(options.connection, &context);
  const absl::Time start = absl::Now();
  grpc::Status status = (*stub)->Predict(&context, *request, &response);
  const absl::Duration latency = absl::Now() - start;
  if (!status.ok()) return Fail(std::string(RpcError(status).message()));
  std::cout << ResponseJson(response, latency).dump(2) << "\n";
  return 0;
}

int RunModels(const ModelsOptions& options) {
  absl::StatusOr<std::unique_ptr<v1::Inference::Stub>> stub = Connect(options.connection);
  if (!stub.ok()) return Fail(std::string(stub.status().message()));
  grpc::ClientContext context;
  SetDeadline(options.connection, &context);
  v1::ListModelsResponse response;
  grpc::Status status = (*stub)->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return Fail(std::string(RpcError(status).message()));
  nlohmann::json out = nlohmann::json::array();
  for (const v1::ModelMetadata& model : response.models()) out.push_back(ModelJson(model));
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace microbatch
