// Models as PyTorch users write them, served end to end through the REST
// front end: what `forward` may return (a tensor, a tuple, a list, a dict),
// and repositories written for Triton's PyTorch backend.
#include <cstring>
#include <thread>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/backend/demo_models.h"
#include "server/service/server.h"
#include "tests/server/loopback_server.h"
#include "tests/server/test_util.h"
#include "tests/v2/v2_test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Http;
using ::microbatch::testing::HttpResult;
using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;
using json = nlohmann::json;

// A model repository written by the test, served on loopback.
class Repository {
 public:
  explicit Repository(const std::string& name) : dir_(name) {}

  // Writes <model>/config.pbtxt and <model>/1/model.pt (TorchScript `source`).
  void Add(const std::string& model, const std::string& source, const std::string& config) {
    absl::Status written = WriteScriptModel(dir_.path() + "/" + model + "/1/model.pt", source);
    ASSERT_TRUE(written.ok()) << written;
    std::ofstream(dir_.path() + "/" + model + "/config.pbtxt") << config;
  }

  // Writes `bytes` to <model>/<relative>.
  void AddFile(const std::string& model, const std::string& relative, const std::string& bytes) {
    std::filesystem::create_directories(std::filesystem::path(dir_.path() + "/" + model + "/" + relative).parent_path());
    std::ofstream(dir_.path() + "/" + model + "/" + relative, std::ios::binary) << bytes;
  }

  absl::Status Start() {
    server_ = std::make_unique<InferenceServer>(testing::LoopbackOptions(dir_.path()));
    absl::Status status = server_->StartListening();
    if (!status.ok()) return status;
    return server_->LoadModels();
  }

  ~Repository() {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  }

  HttpResult Infer(const std::string& model, const std::string& body) {
    return Http(server_->metrics_port(), "POST", "/v2/models/" + model + "/infer", body);
  }
  HttpResult Get(const std::string& path) { return Http(server_->metrics_port(), "GET", path); }
  int grpc_port() const { return server_->grpc_port(); }

 private:
  TempDir dir_;
  std::unique_ptr<InferenceServer> server_;
};

// Why a server on a repository holding only `model` (TorchScript `source`
// with `config`) refused to start.
std::string StartError(const std::string& repository_name, const std::string& model,
                       const std::string& source, const std::string& config) {
  Repository repository(repository_name);
  repository.Add(model, source, config);
  absl::Status status = repository.Start();
  EXPECT_FALSE(status.ok());
  return std::string(status.message());
}

// The outputs of an infer answer by name: {"y": {"shape": [...], "data": [...]}}.
json OutputsByName(const HttpResult& result) {
  json body = json::parse(result.body, nullptr, false);
  json outputs = json::object();
  if (!body.is_object() || !body.contains("outputs")) return outputs;
  for (const json& output : body["outputs"]) {
    outputs[output["name"].get<std::string>()] = {{"shape", output["shape"]}, {"data", output["data"]}};
  }
  return outputs;
}

// Regression: a model returning List[Tensor] failed at warm-up ("output 'two'
// is bound to tuple_index 0 but forward returned GenericList"), so the server
// refused to start; tuple_index now indexes a list as it does a tuple.
TEST(PytorchModelsTest, ForwardMayReturnATupleAListOrADict) {
  Repository repository("pytorch_returns");
  const std::string two_outputs = R"(input { name: "a" dtype: FP32 dims: [2] }
output { name: "two" dtype: FP32 dims: [2] tuple_index: 0 }
output { name: "three" dtype: FP32 dims: [2] tuple_index: 1 }
max_batch_size: 4
)";
  repository.Add("as_list", R"(
def forward(self, a: Tensor) -> List[Tensor]:
    return [a * 2.0, a * 3.0]
)", two_outputs);
  repository.Add("as_tuple", R"(
def forward(self, a: Tensor) -> Tuple[Tensor, Tensor]:
    return a * 2.0, a * 3.0
)", two_outputs);
  repository.Add("as_dict", R"(
def forward(self, a: Tensor) -> Dict[str, Tensor]:
    return {"three": a * 3.0, "two": a * 2.0}
)", R"(input { name: "a" dtype: FP32 dims: [2] }
output { name: "two" dtype: FP32 dims: [2] dict_key: "two" }
output { name: "three" dtype: FP32 dims: [2] dict_key: "three" }
max_batch_size: 4
)");
  ASSERT_TRUE(repository.Start().ok());
  const json expected = {{"two", {{"shape", {1, 2}}, {"data", {2, 4}}}},
                         {"three", {{"shape", {1, 2}}, {"data", {3, 6}}}}};
  for (const char* model : {"as_list", "as_tuple", "as_dict"}) {
    HttpResult result =
        repository.Infer(model, R"({"inputs":[{"name":"a","shape":[1,2],"datatype":"FP32","data":[1,2]}]})");
    ASSERT_EQ(result.status, 200) << model << ": " << result.body;
    EXPECT_EQ(OutputsByName(result), expected) << model << ": " << result.body;
  }
}

TEST(PytorchModelsTest, AListShorterThanTheConfigFailsAtLoadNamingTheOutput) {
  EXPECT_THAT(StartError("pytorch_short_list", "short", R"(
def forward(self, a: Tensor) -> List[Tensor]:
    return [a]
)", R"(input { name: "a" dtype: FP32 dims: [2] }
output { name: "one" dtype: FP32 dims: [2] tuple_index: 0 }
output { name: "two" dtype: FP32 dims: [2] tuple_index: 1 }
)"),
              HasSubstr("output 'two': tuple_index 1 but forward returned 1 values"));
}

// A repository written for Triton's PyTorch backend is served unchanged:
// <name>__<i> inputs and outputs by position, other input names by forward's
// argument names (here listed in another order than forward takes them).
TEST(TritonRepositoryTest, IsServedAsTritonWouldServeIt) {
  Repository repository("triton_repository");
  repository.Add("scaled", R"(
def forward(self, scale: Tensor, x: Tensor) -> Tuple[Tensor, Tensor]:
    return x * scale, x + scale
)", R"(name: "scaled"
backend: "pytorch"
max_batch_size: 8
input [
  { name: "x" data_type: TYPE_FP32 dims: [ 2 ] },
  { name: "scale" data_type: TYPE_FP32 dims: [ 1 ] }
]
output [
  { name: "product" data_type: TYPE_FP32 dims: [ 2 ] },
  { name: "sum" data_type: TYPE_FP32 dims: [ 2 ] }
]
dynamic_batching { max_queue_delay_microseconds: 100 }
instance_group [ { count: 2 kind: KIND_CPU } ]
)");
  repository.Add("doubler", R"(
def forward(self, x: Tensor) -> Tensor:
    return x * 2.0
)", R"(platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_INT64 dims: [ 3 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
)");
  absl::Status started = repository.Start();
  ASSERT_TRUE(started.ok()) << started;

  HttpResult scaled = repository.Infer("scaled", R"({"inputs":[
      {"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]},
      {"name":"scale","shape":[2,1],"datatype":"FP32","data":[10,100]}]})");
  ASSERT_EQ(scaled.status, 200) << scaled.body;
  EXPECT_EQ(OutputsByName(scaled), json({{"product", {{"shape", {2, 2}}, {"data", {10, 20, 300, 400}}}},
                                         {"sum", {{"shape", {2, 2}}, {"data", {11, 12, 103, 104}}}}}))
      << scaled.body;

  // INT64 in, FP32 out (x * 2.0 promotes), as the config declares.
  HttpResult doubled = repository.Infer(
      "doubler", R"({"inputs":[{"name":"INPUT__0","shape":[1,3],"datatype":"INT64","data":[1,2,3]}]})");
  ASSERT_EQ(doubled.status, 200) << doubled.body;
  EXPECT_EQ(OutputsByName(doubled), json({{"OUTPUT__0", {{"shape", {1, 3}}, {"data", {2, 4, 6}}}}}))
      << doubled.body;
  // The configuration reported back is the one the Triton file gave.
  HttpResult config = repository.Get("/v2/models/scaled/config");
  ASSERT_EQ(config.status, 200) << config.body;
  json c = json::parse(config.body);
  EXPECT_EQ(c["max_batch_size"], 8);
  EXPECT_EQ(c["dynamic_batching"]["max_queue_delay_microseconds"], 100);
  EXPECT_EQ(c["instance_group"][0]["count"], 2);
  EXPECT_EQ(c["output"][1],
            json({{"name", "sum"}, {"data_type", "TYPE_FP32"}, {"dims", {2}}, {"label_filename", ""},
                  {"is_shape_tensor", false}}));

  HttpResult meta = repository.Get("/v2/models/scaled");
  ASSERT_EQ(meta.status, 200) << meta.body;
  json body = json::parse(meta.body);
  EXPECT_EQ(body["platform"], "pytorch_libtorch");
  EXPECT_EQ(body["inputs"][1], json({{"name", "scale"}, {"datatype", "FP32"}, {"shape", {-1, 1}}}));
}

// max_batch_size 0: a model without a batch dimension. Each request has
// exactly the declared shape and is one call of forward with that tensor.
// cumsum(0) tells the two apart: on [n] it is a running sum, on a [1, n]
// batch it would change nothing.
TEST(TritonRepositoryTest, AModelWithoutABatchDimensionGetsTheRequestTensorAsItIs) {
  Repository repository("triton_unbatched");
  repository.Add("running", R"(
def forward(self, x: Tensor) -> Tensor:
    return x.cumsum(0)
)", R"(platform: "pytorch_libtorch"
max_batch_size: 0
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] } ]
)");
  repository.Add("total", R"(
def forward(self, x: Tensor) -> Tensor:
    return x.sum(1, keepdim=True)
)", R"(platform: "pytorch_libtorch"
max_batch_size: 0
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 1, 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1, 1 ] } ]
)");
  absl::Status started = repository.Start();
  ASSERT_TRUE(started.ok()) << started;

  HttpResult four = repository.Infer(
      "running", R"({"inputs":[{"name":"INPUT__0","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]})");
  ASSERT_EQ(four.status, 200) << four.body;
  EXPECT_EQ(OutputsByName(four), json({{"OUTPUT__0", {{"shape", {4}}, {"data", {1, 3, 6, 10}}}}})) << four.body;
  HttpResult two = repository.Infer(
      "running", R"({"inputs":[{"name":"INPUT__0","shape":[2],"datatype":"FP32","data":[5,6]}]})");
  ASSERT_EQ(two.status, 200) << two.body;
  EXPECT_EQ(OutputsByName(two), json({{"OUTPUT__0", {{"shape", {2}}, {"data", {5, 11}}}}})) << two.body;
  HttpResult batched = repository.Infer(
      "running", R"({"inputs":[{"name":"INPUT__0","shape":[1,2],"datatype":"FP32","data":[5,6]}]})");
  EXPECT_EQ(batched.status, 400) << batched.body;
  EXPECT_THAT(batched.body, HasSubstr("input 'INPUT__0': expected shape [-1], got [1,2]")) << batched.body;

  HttpResult one = repository.Infer(
      "total", R"({"inputs":[{"name":"INPUT__0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(OutputsByName(one), json({{"OUTPUT__0", {{"shape", {1, 1}}, {"data", {10}}}}})) << one.body;
  HttpResult rows = repository.Infer(
      "total", R"({"inputs":[{"name":"INPUT__0","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]})");
  EXPECT_EQ(rows.status, 400) << rows.body;
  EXPECT_THAT(rows.body, HasSubstr("expected shape [1,4], got [2,4]")) << rows.body;

  // Metadata and config say so: no -1 batch dimension, max_batch_size 0.
  HttpResult meta = repository.Get("/v2/models/running");
  ASSERT_EQ(meta.status, 200) << meta.body;
  EXPECT_EQ(json::parse(meta.body)["inputs"][0]["shape"], json({-1})) << meta.body;
  EXPECT_EQ(json::parse(meta.body)["outputs"][0]["shape"], json({-1})) << meta.body;
  HttpResult config = repository.Get("/v2/models/running/config");
  ASSERT_EQ(config.status, 200) << config.body;
  EXPECT_EQ(json::parse(config.body)["max_batch_size"], 0) << config.body;

  // The same over gRPC (ModelInfer, raw contents).
  auto stub = testing::V2Stub(repository.grpc_port());
  inference::ModelInferRequest request;
  request.set_model_name("running");
  auto* input = request.add_inputs();
  input->set_name("INPUT__0");
  input->set_datatype("FP32");
  input->add_shape(3);
  const float values[] = {1, 1, 1};
  request.add_raw_input_contents(reinterpret_cast<const char*>(values), sizeof(values));
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub->ModelInfer(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_THAT(response.outputs(0).shape(), ::testing::ElementsAre(3));
  ASSERT_EQ(response.raw_output_contents(0).size(), sizeof(values));
  float sums[3];
  std::memcpy(sums, response.raw_output_contents(0).data(), sizeof(sums));
  EXPECT_THAT(sums, ::testing::ElementsAre(1, 2, 3));
  inference::ModelMetadataRequest meta_request;
  meta_request.set_name("running");
  inference::ModelMetadataResponse meta_response;
  grpc::ClientContext meta_context;
  ASSERT_TRUE(stub->ModelMetadata(&meta_context, meta_request, &meta_response).ok());
  EXPECT_THAT(meta_response.inputs(0).shape(), ::testing::ElementsAre(-1));
}

// reshape: requests and answers keep dims ([n, 1]); forward takes and
// returns the reshape ([n]), which its assert checks.
TEST(TritonRepositoryTest, ReshapeGivesForwardItsShapeAndClientsTheDims) {
  Repository repository("triton_reshape");
  repository.Add("double", R"(
def forward(self, x: Tensor) -> Tensor:
    assert x.dim() == 1
    return x * 2.0
)", R"(platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]
)");
  repository.Add("square", R"(
def forward(self, x: Tensor) -> Tensor:
    assert x.dim() == 3
    return x.reshape(x.size(0), 4) + 1.0
)", R"(input { name: "x" dtype: FP32 dims: [4] reshape { shape: [2, 2] } }
output { name: "y" dtype: FP32 dims: [2, 2] reshape { shape: [4] } }
max_batch_size: 4
)");
  absl::Status started = repository.Start();
  ASSERT_TRUE(started.ok()) << started;
  HttpResult doubled = repository.Infer(
      "double", R"({"inputs":[{"name":"INPUT__0","shape":[3,1],"datatype":"FP32","data":[1,2,3]}]})");
  ASSERT_EQ(doubled.status, 200) << doubled.body;
  EXPECT_EQ(OutputsByName(doubled), json({{"OUTPUT__0", {{"shape", {3, 1}}, {"data", {2, 4, 6}}}}})) << doubled.body;
  HttpResult squared = repository.Infer(
      "square", R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})");
  ASSERT_EQ(squared.status, 200) << squared.body;
  EXPECT_EQ(OutputsByName(squared), json({{"y", {{"shape", {1, 2, 2}}, {"data", {2, 3, 4, 5}}}}})) << squared.body;
  HttpResult meta = repository.Get("/v2/models/double");
  EXPECT_EQ(json::parse(meta.body)["inputs"][0]["shape"], json({-1, 1})) << meta.body;
  HttpResult config = repository.Get("/v2/models/double/config");
  EXPECT_TRUE(json::parse(config.body)["input"][0].contains("reshape")) << config.body;
}

// Regression: a model returning [batch] for an output declared dims: [1]
// (the common Triton config of a per-row score, without a reshape) failed
// its warm-up ("the model returned shape [1], the config declares [-1,1]"),
// so the server did not start. Rows that differ from the declared shape only
// by unit dimensions are answered in the declared shape; anything else is
// still refused.
TEST(TritonRepositoryTest, OutputsThatDifferOnlyByUnitDimensionsTakeTheDeclaredShape) {
  Repository repository("triton_unit_dims");
  repository.Add("row_sum", R"(
def forward(self, x: Tensor) -> Tensor:
    return x.sum(1)
)", R"(platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] } ]
)");
  repository.Add("unsqueezed", R"(
def forward(self, x: Tensor) -> Tensor:
    return (x * 2.0).unsqueeze(1).unsqueeze(3)
)", R"(input { name: "x" dtype: FP32 dims: [-1] }
output { name: "y" dtype: FP32 dims: [-1] }
max_batch_size: 8
)");
  repository.Add("unbatched", R"(
def forward(self, x: Tensor) -> Tensor:
    return x.sum()
)", R"(platform: "pytorch_libtorch"
max_batch_size: 0
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] } ]
)");
  absl::Status started = repository.Start();
  ASSERT_TRUE(started.ok()) << started;
  HttpResult sums = repository.Infer(
      "row_sum", R"({"inputs":[{"name":"INPUT__0","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]})");
  ASSERT_EQ(sums.status, 200) << sums.body;
  EXPECT_EQ(OutputsByName(sums), json({{"OUTPUT__0", {{"shape", {2, 1}}, {"data", {6, 15}}}}})) << sums.body;
  HttpResult doubled = repository.Infer(
      "unsqueezed", R"({"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]})");
  ASSERT_EQ(doubled.status, 200) << doubled.body;
  EXPECT_EQ(OutputsByName(doubled), json({{"y", {{"shape", {2, 3}}, {"data", {2, 4, 6, 8, 10, 12}}}}}))
      << doubled.body;
  HttpResult total = repository.Infer(
      "unbatched", R"({"inputs":[{"name":"INPUT__0","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]})");
  ASSERT_EQ(total.status, 200) << total.body;
  EXPECT_EQ(OutputsByName(total), json({{"OUTPUT__0", {{"shape", {1}}, {"data", {10}}}}})) << total.body;
}

// Triton's PyTorch convention: a forward taking one Dict[str, Tensor] gets
// the inputs in it by name; an optional input left out is not in it.
TEST(TritonRepositoryTest, AForwardTakingADictGetsTheInputsByName) {
  Repository repository("triton_dict_input");
  repository.Add("keyed", R"(
def forward(self, inputs: Dict[str, Tensor]) -> Tensor:
    y = inputs["a"] * 2.0 + inputs["b"]
    if "mask" in inputs:
        y = y * inputs["mask"]
    return y
)", R"(platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "b" data_type: TYPE_FP32 dims: [ 2 ] },
        { name: "a" data_type: TYPE_FP32 dims: [ 2 ] },
        { name: "mask" data_type: TYPE_FP32 dims: [ 2 ] optional: true } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
)");
  absl::Status started = repository.Start();
  ASSERT_TRUE(started.ok()) << started;
  HttpResult both = repository.Infer("keyed", R"({"inputs":[)"
                                              R"({"name":"a","shape":[1,2],"datatype":"FP32","data":[1,2]},)"
                                              R"({"name":"b","shape":[1,2],"datatype":"FP32","data":[10,20]}]})");
  ASSERT_EQ(both.status, 200) << both.body;
  EXPECT_EQ(OutputsByName(both), json({{"OUTPUT__0", {{"shape", {1, 2}}, {"data", {12, 24}}}}})) << both.body;
  HttpResult masked = repository.Infer("keyed", R"({"inputs":[)"
                                                R"({"name":"a","shape":[1,2],"datatype":"FP32","data":[1,2]},)"
                                                R"({"name":"b","shape":[1,2],"datatype":"FP32","data":[10,20]},)"
                                                R"({"name":"mask","shape":[1,2],"datatype":"FP32","data":[0,1]}]})");
  ASSERT_EQ(masked.status, 200) << masked.body;
  EXPECT_EQ(OutputsByName(masked), json({{"OUTPUT__0", {{"shape", {1, 2}}, {"data", {0, 24}}}}})) << masked.body;
}

TEST(TritonRepositoryTest, ADictReturnedToPositionalOutputsFailsTheLoadSayingHowToBindIt) {
  EXPECT_THAT(StartError("triton_dict", "dict", R"(
def forward(self, x: Tensor) -> Dict[str, Tensor]:
    return {"neg": -x, "double": x * 2.0}
)", R"(platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "neg" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "double" data_type: TYPE_FP32 dims: [ 2 ] } ]
)"),
              HasSubstr("output 'neg' is bound to tuple_index 0 but forward returned GenericDict (bind each "
                        "output to its key with dict_key"));
}

TEST(TritonRepositoryTest, AnOutputOfAnotherShapeStillFailsTheLoadNamingIt) {
  EXPECT_THAT(StartError("triton_wrong_shape", "transposed", R"(
def forward(self, x: Tensor) -> Tensor:
    return x.reshape(x.size(0), 3, 2)
)", R"(platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 6 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2, 3 ] } ]
)"),
              HasSubstr("output 'OUTPUT__0': the model returned shape [1,3,2], the config declares [-1,2,3]"));
}

std::string FloatBytes(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// A model that runs only on rows of exactly 3 values starting with 0.5
// (neither zeros nor the guessed widths 1 and 64 run it), warmed up with
// Triton's model_warmup from a file in <model>/warmup/.
constexpr char kPickyModel[] = R"(
def forward(self, x: Tensor) -> Tensor:
    assert x.size(1) == 3
    assert bool((x[:, 0] == 0.5).all())
    return x.sum(1, keepdim=True)
)";
constexpr char kPickyConfig[] = R"(platform: "pytorch_libtorch"
max_batch_size: 4
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
model_warmup [ { name: "row" batch_size: 4 count: 2
  inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 3 ] input_data_file: "row.bin" } } } ]
)";

TEST(TritonRepositoryTest, ModelWarmupRunsTheConfiguredSamples) {
  Repository repository("triton_warmup");
  repository.Add("picky", kPickyModel, kPickyConfig);
  repository.AddFile("picky", "warmup/row.bin", FloatBytes({0.5f, 1.0f, 2.0f}));
  absl::Status started = repository.Start();
  ASSERT_TRUE(started.ok()) << started;
  HttpResult summed =
      repository.Infer("picky", R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[0.5,2,4]}]})");
  ASSERT_EQ(summed.status, 200) << summed.body;
  EXPECT_EQ(OutputsByName(summed), json({{"y", {{"shape", {1, 1}}, {"data", {6.5}}}}})) << summed.body;
  HttpResult config = repository.Get("/v2/models/picky/config");
  const json warmup = json::parse(config.body)["model_warmup"];
  ASSERT_EQ(warmup.size(), 1u) << config.body;
  EXPECT_EQ(warmup[0]["name"], "row");
  EXPECT_EQ(warmup[0]["batch_size"], 4);
  EXPECT_EQ(warmup[0]["inputs"]["x"]["input_data_file"], "row.bin") << config.body;
  EXPECT_EQ(warmup[0]["inputs"]["x"]["data_type"], "TYPE_FP32") << config.body;
}

// The sample's bytes are what the model gets: a row it rejects fails the
// load, naming the sample, as a broken model must not be marked ready.
TEST(TritonRepositoryTest, AFailingWarmupSampleFailsTheLoadNamingIt) {
  Repository repository("triton_warmup_fails");
  repository.Add("picky", kPickyModel, kPickyConfig);
  repository.AddFile("picky", "warmup/row.bin", FloatBytes({0.25f, 1.0f, 2.0f}));
  absl::Status status = repository.Start();
  EXPECT_THAT(std::string(status.message()), HasSubstr("warm-up sample 'row' (batch size 4) failed"));
  Repository missing("triton_warmup_no_file");
  missing.Add("picky", kPickyModel, kPickyConfig);
  status = missing.Start();
  EXPECT_THAT(std::string(status.message()), HasSubstr("warmup/row.bin: cannot read the file"));
}

// Triton's queue policy: a default timeout per request, which a request's
// own `timeout` parameter may only shorten, and only with
// allow_timeout_override; DELAY refuses nothing for a timeout.
TEST(TritonRepositoryTest, QueuePolicyTimeoutsBoundRequestsAsTritonDoes) {
  Repository repository("triton_queue_policy");
  auto add = [&](const std::string& name, const std::string& policy) {
    repository.Add(name, R"(
def forward(self, x: Tensor) -> Tensor:
    return x * 2.0
)", R"(platform: "pytorch_libtorch"
max_batch_size: 4
input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
dynamic_batching { default_queue_policy { )" + policy + R"( } }
)");
  };
  add("expired", "default_timeout_microseconds: 1 allow_timeout_override: true");
  add("overridable", "default_timeout_microseconds: 60000000 allow_timeout_override: true");
  add("fixed", "default_timeout_microseconds: 60000000");
  add("delay", "timeout_action: DELAY default_timeout_microseconds: 1");
  add("plain", "max_queue_size: 8");
  absl::Status started = repository.Start();
  ASSERT_TRUE(started.ok()) << started;
  auto infer = [&](const std::string& model, const std::string& timeout) {
    const std::string parameters = timeout.empty() ? "" : R"("parameters":{"timeout":)" + timeout + "},";
    return repository.Infer(model, "{" + parameters + R"("inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}]})");
  };
  // A 1 us default: every request's deadline has passed when it is queued,
  // and a request's own longer timeout does not lengthen it.
  HttpResult expired = infer("expired", "");
  EXPECT_EQ(expired.status, 504) << expired.body;
  EXPECT_THAT(expired.body, HasSubstr("the deadline passed"));
  EXPECT_EQ(infer("expired", "60000000").status, 504);
  // With allow_timeout_override a request may shorten the default ...
  EXPECT_EQ(infer("overridable", "1").status, 504);
  EXPECT_EQ(infer("overridable", "").status, 200);
  // ... without it, its own timeout is ignored.
  EXPECT_EQ(infer("fixed", "1").status, 200);
  // DELAY: Triton only moves timed-out requests back; nothing is refused.
  EXPECT_EQ(infer("delay", "1").status, 200);
  // No timeout in the policy: a request's own timeout applies.
  EXPECT_EQ(infer("plain", "1").status, 504);
  EXPECT_EQ(infer("plain", "").status, 200);
  const json policy = json::parse(repository.Get("/v2/models/fixed/config").body)["dynamic_batching"]["default_queue_policy"];
  EXPECT_EQ(policy["default_timeout_microseconds"], 60000000) << policy;  // a number, as Triton writes it
  EXPECT_EQ(policy["allow_timeout_override"], false) << policy;
  EXPECT_EQ(policy["timeout_action"], "REJECT") << policy;
  const json delay = json::parse(repository.Get("/v2/models/delay/config").body)["dynamic_batching"]["default_queue_policy"];
  EXPECT_EQ(delay["timeout_action"], "DELAY") << delay;
}

// Triton's optional inputs, as Hugging Face style models take an
// attention mask: forward gets None for a left-out input, and requests with
// and without it are answered each by its own rule, also when they arrive
// together (they never share a batch).
TEST(TritonRepositoryTest, AnOptionalInputMayBeLeftOut) {
  Repository repository("triton_optional");
  const std::string config = R"(platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] },
        { name: "mask" data_type: TYPE_FP32 dims: [ 2 ] optional: true } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ]
dynamic_batching { max_queue_delay_microseconds: 20000 }
)";
  repository.Add("masked", R"(
def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    if mask is None:
        return x * 10.0
    return x * mask
)", config);
  absl::Status started = repository.Start();
  ASSERT_TRUE(started.ok()) << started;
  HttpResult without =
      repository.Infer("masked", R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]})");
  ASSERT_EQ(without.status, 200) << without.body;
  EXPECT_EQ(OutputsByName(without), json({{"y", {{"shape", {1, 2}}, {"data", {10, 20}}}}})) << without.body;
  HttpResult with = repository.Infer("masked", R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]},
      {"name":"mask","shape":[1,2],"datatype":"FP32","data":[0,1]}]})");
  ASSERT_EQ(with.status, 200) << with.body;
  EXPECT_EQ(OutputsByName(with), json({{"y", {{"shape", {1, 2}}, {"data", {0, 2}}}}})) << with.body;
  HttpResult config_json = repository.Get("/v2/models/masked/config");
  EXPECT_EQ(json::parse(config_json.body)["input"][1]["optional"], true) << config_json.body;

  // Over gRPC, both kinds at once (the 20 ms queue delay lets them meet).
  auto stub = testing::V2Stub(repository.grpc_port());
  std::vector<std::thread> callers;
  std::atomic<int> right{0};
  for (int i = 0; i < 16; ++i) {
    callers.emplace_back([&, i] {
      inference::ModelInferRequest request;
      request.set_model_name("masked");
      const float x[] = {static_cast<float>(i), 1};
      const float mask[] = {2, 3};
      auto add = [&](const char* name, const float* values) {
        auto* input = request.add_inputs();
        input->set_name(name);
        input->set_datatype("FP32");
        input->add_shape(1);
        input->add_shape(2);
        request.add_raw_input_contents(reinterpret_cast<const char*>(values), 2 * sizeof(float));
      };
      add("x", x);
      if (i % 2 == 1) add("mask", mask);
      inference::ModelInferResponse response;
      grpc::ClientContext context;
      grpc::Status status = stub->ModelInfer(&context, request, &response);
      if (!status.ok() || response.raw_output_contents_size() != 1) return;
      float y[2];
      std::memcpy(y, response.raw_output_contents(0).data(), sizeof(y));
      const bool ok = i % 2 == 1 ? (y[0] == 2.0f * i && y[1] == 3) : (y[0] == 10.0f * i && y[1] == 10);
      right += ok;
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(right.load(), 16);
}

TEST(TritonRepositoryTest, AnOptionalInputWhoseArgumentTakesNoNoneFailsAtLoad) {
  EXPECT_THAT(StartError("triton_optional_not_optional", "strict", R"(
def forward(self, x: Tensor, mask: Tensor) -> Tensor:
    return x * mask
)", R"(platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] },
        { name: "mask" data_type: TYPE_FP32 dims: [ 2 ] optional: true } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ]
)"),
              HasSubstr("input 'mask' is optional, but forward's argument 'mask' is Tensor; declare it "
                        "Optional[Tensor]"));
}

TEST(TritonRepositoryTest, AnInputNamedAfterNoArgumentFailsAtLoadListingTheSignature) {
  EXPECT_THAT(StartError("triton_bad_names", "m", R"(
def forward(self, scale: Tensor, x: Tensor) -> Tensor:
    return x * scale
)", R"(platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "factor" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
)"),
              HasSubstr("input 'factor' is passed as argument 'factor' but the model's signature is forward(scale, x)"));
}

}  // namespace
}  // namespace microbatch
