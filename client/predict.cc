// `microbatch predict` and `microbatch models`.
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/npy.h"
#include "client/tensor_json.h"
#include "microbatch/v1/inference.grpc.pb.h"

namespace microbatch {
namespace {

std::unique_ptr<v1::Inference::Stub> Connect(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return v1::Inference::NewStub(
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
}

int Fail(const std::string& message) {
  std::cerr << "microbatch: " << message << "\n";
  return 1;
}

int FailRpc(const grpc::Status& status) {
  return Fail(absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                           ": ", status.error_message()));
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

void AddCommonFlags(Args& args) {
  args.Flag("target", "localhost:8500", "Server address (host:port or a gRPC target URI)");
  args.Flag("timeout_ms", "30000", "RPC deadline in milliseconds (0: none)");
}

void SetDeadline(const Args& args, grpc::ClientContext* context) {
  int64_t timeout_ms = 0;
  if (args.GetInt("timeout_ms", &timeout_ms).ok() && timeout_ms > 0) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  }
}

}  // namespace

int PredictCommand(int argc, char** argv) {
  Args args("predict", "Sends one Predict request and prints the outputs as JSON.");
  AddCommonFlags(args);
  args.Flag("model", "", "Model name (required)");
  args.Flag("version", "0", "Model version (0: latest)");
  args.Flag("input", "",
            "name=FILE.npy or name=JSON (e.g. x=[[0.1,0.2]]); a JSON value one dimension short "
            "is one row",
            /*repeated=*/true);
  args.Flag("output", "", "Output to return (default: all)", /*repeated=*/true);
  args.Flag("request_id", "", "Request id echoed back by the server");
  if (absl::Status s = args.Parse(argc, argv); !s.ok()) return Fail(std::string(s.message()));
  if (args.help()) {
    std::cout << args.Usage();
    return 0;
  }
  if (args.Get("model").empty()) return Fail("--model is required");
  int64_t version = 0;
  if (absl::Status s = args.GetInt("version", &version); !s.ok()) return Fail(std::string(s.message()));

  auto stub = Connect(args.Get("target"));
  // The model's metadata gives JSON inputs their dtype and rank.
  v1::GetModelMetadataRequest metadata_request;
  metadata_request.set_model(args.Get("model"));
  metadata_request.set_version(version);
  v1::ModelMetadata metadata;
  {
    grpc::ClientContext context;
    SetDeadline(args, &context);
    grpc::Status status = stub->GetModelMetadata(&context, metadata_request, &metadata);
    if (!status.ok()) return FailRpc(status);
  }

  v1::PredictRequest request;
  request.set_model(args.Get("model"));
  request.set_version(version);
  request.set_request_id(args.Get("request_id"));
  for (const std::string& output : args.GetAll("output")) request.add_outputs(output);
  for (const std::string& input : args.GetAll("input")) {
    const size_t eq = input.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(absl::StrCat("--input '", input, "': expected name=FILE.npy or name=JSON"));
    }
    const std::string name = input.substr(0, eq);
    const std::string value = input.substr(eq + 1);
    absl::StatusOr<v1::Tensor> tensor;
    if (absl::EndsWith(value, ".npy")) {
      tensor = TensorFromNpy(name, value);
    } else {
      const v1::TensorMetadata* declared = nullptr;
      for (const auto& in : metadata.inputs()) {
        if (in.name() == name) declared = &in;
      }
      if (declared == nullptr) {
        return Fail(absl::StrCat("model '", metadata.name(), "' has no input '", name, "'"));
      }
      nlohmann::json json = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
      if (json.is_discarded()) return Fail(absl::StrCat("--input ", name, ": not valid JSON"));
      tensor = TensorFromJson(name, json, static_cast<DType>(declared->dtype()),
                              {declared->shape().begin(), declared->shape().end()});
    }
    if (!tensor.ok()) return Fail(std::string(tensor.status().message()));
    *request.add_inputs() = std::move(*tensor);
  }

  v1::PredictResponse response;
  grpc::ClientContext context;
  SetDeadline(args, &context);
  const absl::Time start = absl::Now();
  grpc::Status status = stub->Predict(&context, request, &response);
  const absl::Duration latency = absl::Now() - start;
  if (!status.ok()) return FailRpc(status);
  nlohmann::json out;
  out["model"] = response.model();
  out["version"] = response.version();
  if (!response.request_id().empty()) out["request_id"] = response.request_id();
  out["latency_ms"] = absl::ToDoubleMilliseconds(latency);
  out["outputs"] = nlohmann::json::object();
  for (const v1::Tensor& tensor : response.outputs()) out["outputs"][tensor.name()] = TensorToJson(tensor);
  std::cout << out.dump(2) << "\n";
  return 0;
}

int ModelsCommand(int argc, char** argv) {
  Args args("models", "Lists the served models with their inputs, outputs and batching settings.");
  AddCommonFlags(args);
  if (absl::Status s = args.Parse(argc, argv); !s.ok()) return Fail(std::string(s.message()));
  if (args.help()) {
    std::cout << args.Usage();
    return 0;
  }
  auto stub = Connect(args.Get("target"));
  grpc::ClientContext context;
  SetDeadline(args, &context);
  v1::ListModelsResponse response;
  grpc::Status status = stub->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return FailRpc(status);
  nlohmann::json out = nlohmann::json::array();
  for (const v1::ModelMetadata& model : response.models()) {
    nlohmann::json m;
    m["name"] = model.name();
    m["version"] = model.version();
    m["versions"] = std::vector<int64_t>(model.versions().begin(), model.versions().end());
    m["platform"] = model.platform();
    m["device"] = model.device();
    for (const char* kind : {"inputs", "outputs"}) {
      const auto& tensors = std::string(kind) == "inputs" ? model.inputs() : model.outputs();
      m[kind] = nlohmann::json::array();
      for (const auto& t : tensors) {
        m[kind].push_back({{"name", t.name()},
                           {"dtype", DTypeName(static_cast<DType>(t.dtype()))},
                           {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())}});
      }
    }
    m["batching"] = {{"max_batch_size", model.batching().max_batch_size()},
                     {"max_queue_delay_microseconds", model.batching().max_queue_delay_microseconds()},
                     {"max_queue_size", model.batching().max_queue_size()},
                     {"instance_count", model.batching().instance_count()}};
    out.push_back(m);
  }
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace microbatch
