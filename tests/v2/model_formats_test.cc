// Models as PyTorch users write them, served end to end through the REST
// front end: what `forward` may return (a tensor, a tuple, a list, a dict).
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

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

 private:
  TempDir dir_;
  std::unique_ptr<InferenceServer> server_;
};

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
  Repository repository("pytorch_short_list");
  repository.Add("short", R"(
def forward(self, a: Tensor) -> List[Tensor]:
    return [a]
)", R"(input { name: "a" dtype: FP32 dims: [2] }
output { name: "one" dtype: FP32 dims: [2] tuple_index: 0 }
output { name: "two" dtype: FP32 dims: [2] tuple_index: 1 }
)");
  absl::Status status = repository.Start();
  EXPECT_THAT(std::string(status.message()), HasSubstr("output 'two': tuple_index 1 but forward returned 1 values"));
}

}  // namespace
}  // namespace microbatch
