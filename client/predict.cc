#include "client/predict.h"

#include <grpcpp/grpcpp.h>

#include <functional>
#include <iostream>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/http_client.h"
#include "client/npy.h"
#include "client/tensor_json.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "microbatch/v1/inference.grpc.pb.h"

namespace microbatch {
namespace {

int Fail(const std::string& message) {
  std::cerr << "microbatch: " << message << "\n";
  return 1;
}

// "NOT_FOUND: model 'x' ...": the code's name first, as for every protocol.
absl::Status Named(const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message()));
}

absl::Status RpcError(const grpc::Status& status) {
  return Named(absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message()));
}

std::shared_ptr<grpc::Channel> Channel(const ConnectionOptions& connection, const ChannelFactory& channels) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return channels.NewChannel(connection.target, args);
}

absl::StatusOr<std::unique_ptr<v1::Inference::Stub>> Connect(const ConnectionOptions& connection) {
  absl::StatusOr<ChannelFactory> channels = ChannelFactory::Create(connection.tls);
  if (!channels.ok()) return channels.status();
  return v1::Inference::NewStub(Channel(connection, *channels));
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

// The model's signature, fetched on first use (only JSON inputs need it).
using SignatureSource = std::function<absl::StatusOr<ModelInfo>()>;

// A JSON value for the declared input `name`.
absl::StatusOr<v1::Tensor> TensorFromJsonText(const std::string& name, const std::string& text,
                                              const ModelInfo& signature) {
  const DeclaredTensor* declared = nullptr;
  for (const DeclaredTensor& in : signature.inputs) {
    if (in.name == name) declared = &in;
  }
  if (declared == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("model '", signature.name, "' has no input '", name, "'"));
  }
  if (declared->dtype == DType::kInvalid) {
    return absl::InvalidArgumentError(absl::StrCat("input '", name, "' has datatype '", declared->datatype,
                                                   "', which the client cannot encode"));
  }
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("--input ", name, ": not valid JSON"));
  return TensorFromJson(name, json, declared->dtype, declared->shape);
}

// Every --input (name=FILE.npy or name=JSON), in order.
absl::StatusOr<std::vector<v1::Tensor>> InputTensors(const PredictOptions& options, const SignatureSource& source) {
  std::optional<ModelInfo> signature;
  std::vector<v1::Tensor> tensors;
  for (const std::string& input : options.inputs) {
    const size_t eq = input.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--input '", input, "': expected name=FILE.npy or name=JSON"));
    }
    const std::string name = input.substr(0, eq);
    const std::string value = input.substr(eq + 1);
    absl::StatusOr<v1::Tensor> tensor;
    if (absl::EndsWith(value, ".npy")) {
      tensor = TensorFromNpy(name, value);
    } else {
      if (!signature) {
        absl::StatusOr<ModelInfo> fetched = source();
        if (!fetched.ok()) return fetched.status();
        signature = std::move(*fetched);
      }
      tensor = TensorFromJsonText(name, value, *signature);
    }
    if (!tensor.ok()) return tensor.status();
    tensors.push_back(std::move(*tensor));
  }
  return tensors;
}

InferRequestSpec RequestSpec(const PredictOptions& options, std::vector<v1::Tensor> inputs) {
  InferRequestSpec spec;
  spec.model = options.model;
  spec.version = options.version_label.empty() ? V2Version(options.version) : options.version_label;
  spec.id = options.request_id;
  spec.inputs = std::move(inputs);
  spec.outputs = options.outputs;
  spec.classification = options.classification;
  return spec;
}

struct Outcome {
  InferResult result;
  absl::Duration latency;
};

absl::StatusOr<Outcome> PredictV1(const PredictOptions& options) {
  absl::StatusOr<std::unique_ptr<v1::Inference::Stub>> stub = Connect(options.connection);
  if (!stub.ok()) return stub.status();
  // The metadata gives JSON inputs their dtype and rank; fetched even
  // without them, so that an unknown model fails before any file is read.
  v1::GetModelMetadataRequest metadata_request;
  metadata_request.set_model(options.model);
  metadata_request.set_version(options.version);
  metadata_request.set_version_label(options.version_label);
  v1::ModelMetadata metadata;
  {
    grpc::ClientContext context;
    SetDeadline(options.connection, &context);
    grpc::Status status = (*stub)->GetModelMetadata(&context, metadata_request, &metadata);
    if (!status.ok()) return RpcError(status);
  }
  const ModelInfo signature = SignatureFromV1(metadata);
  absl::StatusOr<std::vector<v1::Tensor>> inputs = InputTensors(options, [&] { return signature; });
  if (!inputs.ok()) return inputs.status();

  v1::PredictRequest request;
  request.set_model(options.model);
  request.set_version(options.version);
  request.set_version_label(options.version_label);
  request.set_request_id(options.request_id);
  for (const std::string& output : options.outputs) request.add_outputs(output);
  for (v1::Tensor& tensor : *inputs) *request.add_inputs() = std::move(tensor);

  v1::PredictResponse response;
  grpc::ClientContext context;
  SetDeadline(options.connection, &context);
  const absl::Time start = absl::Now();
  grpc::Status status = (*stub)->Predict(&context, request, &response);
  Outcome outcome;
  outcome.latency = absl::Now() - start;
  if (!status.ok()) return RpcError(status);
  outcome.result.model = response.model();
  outcome.result.version = absl::StrCat(response.version());
  outcome.result.id = response.request_id();
  for (v1::Tensor& tensor : *response.mutable_outputs()) outcome.result.outputs.push_back(std::move(tensor));
  return outcome;
}

absl::StatusOr<Outcome> PredictV2(const PredictOptions& options) {
  absl::StatusOr<ChannelFactory> channels = ChannelFactory::Create(options.connection.tls);
  if (!channels.ok()) return channels.status();
  auto stub = inference::GRPCInferenceService::NewStub(Channel(options.connection, *channels));
  const std::string version = options.version_label.empty() ? V2Version(options.version) : options.version_label;
  absl::StatusOr<std::vector<v1::Tensor>> inputs =
      InputTensors(options, [&]() -> absl::StatusOr<ModelInfo> {
        inference::ModelMetadataRequest request;
        request.set_name(options.model);
        request.set_version(version);
        inference::ModelMetadataResponse metadata;
        grpc::ClientContext context;
        SetDeadline(options.connection, &context);
        grpc::Status status = stub->ModelMetadata(&context, request, &metadata);
        if (!status.ok()) return RpcError(status);
        return SignatureFromV2(metadata);
      });
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<inference::ModelInferRequest> request =
      BuildModelInferRequest(RequestSpec(options, std::move(*inputs)));
  if (!request.ok()) return request.status();

  inference::ModelInferResponse response;
  grpc::ClientContext context;
  SetDeadline(options.connection, &context);
  const absl::Time start = absl::Now();
  grpc::Status status = stub->ModelInfer(&context, *request, &response);
  Outcome outcome;
  outcome.latency = absl::Now() - start;
  if (!status.ok()) return RpcError(status);
  absl::StatusOr<InferResult> result = ParseModelInferResponse(response);
  if (!result.ok()) return Named(result.status());
  outcome.result = std::move(*result);
  return outcome;
}

absl::StatusOr<Outcome> PredictRest(const PredictOptions& options) {
  HttpOptions http;
  http.address = options.http;
  http.tls = options.connection.tls;
  http.timeout_ms = options.connection.timeout_ms;
  absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Create(http);
  if (!client.ok()) return client.status();
  const std::string version = options.version_label.empty() ? V2Version(options.version) : options.version_label;
  absl::StatusOr<std::vector<v1::Tensor>> inputs =
      InputTensors(options, [&]() -> absl::StatusOr<ModelInfo> {
        absl::StatusOr<HttpReply> response = (*client)->Get(RestModelPath(options.model, version));
        if (!response.ok()) return Named(response.status());
        absl::StatusOr<ModelInfo> signature = ParseRestModelMetadata(response->status, response->body);
        if (!signature.ok()) return Named(signature.status());
        return signature;
      });
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<std::string> body = BuildRestInferBody(RequestSpec(options, std::move(*inputs)));
  if (!body.ok()) return body.status();

  const absl::Time start = absl::Now();
  absl::StatusOr<HttpReply> response = (*client)->Post(RestInferPath(options.model, version), *body);
  Outcome outcome;
  outcome.latency = absl::Now() - start;
  if (!response.ok()) return Named(response.status());
  absl::StatusOr<InferResult> result = ParseRestInferResponse(response->status, response->body);
  if (!result.ok()) return Named(result.status());
  outcome.result = std::move(*result);
  return outcome;
}

}  // namespace

nlohmann::json PredictResultJson(Protocol protocol, const InferResult& result, absl::Duration latency) {
  nlohmann::json out;
  out["protocol"] = ProtocolName(protocol);
  out["model"] = result.model;
  int64_t version = 0;
  if (absl::SimpleAtoi(result.version, &version)) {
    out["version"] = version;
  } else {
    out["version"] = result.version;
  }
  if (!result.id.empty()) out["request_id"] = result.id;
  out["latency_ms"] = absl::ToDoubleMilliseconds(latency);
  out["outputs"] = nlohmann::json::object();
  for (const v1::Tensor& tensor : result.outputs) out["outputs"][tensor.name()] = TensorToJson(tensor);
  for (const BytesOutput& bytes : result.bytes_outputs) {
    out["outputs"][bytes.name] = StringsToJson(bytes.shape, bytes.elements);
  }
  return out;
}

int RunPredict(const PredictOptions& options) {
  absl::StatusOr<Outcome> outcome;
  switch (options.protocol) {
    case Protocol::kV1: outcome = PredictV1(options); break;
    case Protocol::kV2: outcome = PredictV2(options); break;
    case Protocol::kRest: outcome = PredictRest(options); break;
  }
  if (!outcome.ok()) return Fail(std::string(outcome.status().message()));
  std::cout << PredictResultJson(options.protocol, outcome->result, outcome->latency).dump(2) << "\n";
  return 0;
}

}  // namespace microbatch
