// Config parsing and validation, and load failures that name the file.
#include "server/service/model_manager.h"
#include "server/service/model_repository.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/demo_models.h"
#include "server/service/warm_up_samples.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

absl::Status PlanText(const std::string& text) {
  TempDir dir("plan");
  WriteFile(dir.path() + "/config.pbtxt", text);
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(dir.path() + "/config.pbtxt");
  if (!config.ok()) return config.status();
  return PlanModel(*config, "m", "m/config.pbtxt", 0).status();
}

v1::ModelConfig ParseText(const std::string& text) {
  TempDir dir("plan");
  WriteFile(dir.path() + "/config.pbtxt", text);
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(dir.path() + "/config.pbtxt");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.value_or(v1::ModelConfig());
}

constexpr char kValid[] = R"(
input { name: "x" dtype: FP32 dims: [4] forward_arg: 0 }
output { name: "y" dtype: FP32 dims: [2] }
)";

TEST(PlanModelTest, FillsDefaults) {
  TempDir dir("plan_defaults");
  WriteFile(dir.path() + "/config.pbtxt", kValid);
  auto config = ParseModelConfig(dir.path() + "/config.pbtxt");
  ASSERT_TRUE(config.ok());
  auto plan = PlanModel(*config, "m", "m/config.pbtxt", 3);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->config.max_batch_size(), 32);
  EXPECT_EQ(plan->config.max_queue_size(), 1024);
  EXPECT_EQ(plan->config.instance_count(), 1);
  EXPECT_EQ(plan->config.device(), "cpu");
  EXPECT_EQ(plan->spec.intra_op_threads, 3);
  EXPECT_EQ(plan->batcher.max_queue_delay, absl::ZeroDuration());
  EXPECT_THAT(plan->warmup_batch_sizes, ::testing::ElementsAre(1, 32));
}

TEST(PlanModelTest, AModelWithoutABatchDimensionIsOneRowInside) {
  absl::StatusOr<ModelPlan> plan = PlanModel(
      ParseText("input { name: \"x\" dtype: FP32 dims: [-1, 3] }\n"
                "output { name: \"y\" dtype: FP32 dims: [1] reshape { shape: [] } }\n"
                "no_batch_dimension: true\n"),
      "m", "m/config.pbtxt", 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->spec.signature.has_batch_dimension);
  EXPECT_EQ(plan->config.max_batch_size(), 1);
  EXPECT_EQ(plan->batcher.max_batch_size, 1);
  EXPECT_THAT(plan->warmup_batch_sizes, ::testing::ElementsAre(1));
  EXPECT_THAT(plan->spec.signature.ClientShape(plan->spec.signature.inputs[0]), ::testing::ElementsAre(-1, 3));
  ASSERT_EQ(plan->spec.input_reshape.size(), 1u);
  EXPECT_FALSE(plan->spec.input_reshape[0].has_value());
  ASSERT_EQ(plan->spec.output_reshape.size(), 1u);
  ASSERT_TRUE(plan->spec.output_reshape[0].has_value());
  EXPECT_TRUE(plan->spec.output_reshape[0]->empty());  // a scalar per row
}

TEST(PlanModelTest, RejectsBadConfigsNamingTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"input { name: \"x\" dtype: FP32 dims: [4] }\noutput { name: \"y\" dtype: FP32 dims: [2] }\n"
       "max_batch_size: -1",
       "max_batch_size must be >= 1"},
      {"name: \"other\"\n" + std::string(kValid), "does not match the directory name 'm'"},
      {"output { name: \"y\" dtype: FP32 dims: [2] }", "the model declares no inputs"},
      {"input { name: \"x\" dtype: FP32 dims: [4] }", "the model declares no outputs"},
      {std::string(kValid) + "input { name: \"z\" dtype: FP32 dims: [4] forward_arg: 0 }",
       "inputs 'x' and 'z' both use forward_arg 0"},
      {std::string(kValid) + "input { name: \"x\" dtype: FP32 dims: [4] forward_arg: 1 }",
       "input 'x' is declared twice"},
      {"input { name: \"x\" dtype: FP32 dims: [0] }\noutput { name: \"y\" dtype: FP32 dims: [2] }",
       "dims must be positive or -1, got 0"},
      {"input { name: \"x\" dims: [4] }\noutput { name: \"y\" dtype: FP32 dims: [2] }",
       "input 'x' has no valid dtype"},
      {std::string(kValid) + "output { name: \"z\" dtype: FP32 dims: [2] }",
       "has neither tuple_index nor dict_key"},
      {"input { name: \"x\" dtype: FP32 dims: [4] }\n"
       "output { name: \"y\" dtype: FP32 tuple_index: 0 }\noutput { name: \"z\" dtype: FP32 dict_key: \"z\" }",
       "outputs mix tuple_index and dict_key"},
      {std::string(kValid) + "warmup_batch_sizes: [64]", "warmup batch size 64 is outside"},
      {std::string(kValid) + "platform: \"onnx\"", "platform 'onnx' is not supported"},
      {std::string(kValid) + "no_batch_dimension: true\nmax_batch_size: 4",
       "max_batch_size 4 with no_batch_dimension"},
      {std::string(kValid) + "no_batch_dimension: true\nwarmup_batch_sizes: [2]", "warmup batch size 2 is outside"},
      {"input { name: \"x\" dtype: FP32 dims: [4] reshape { shape: [3] } }\n"
       "output { name: \"y\" dtype: FP32 dims: [2] }",
       "input 'x': reshape [3] and dims [4] hold 3 and 4 elements; they must be equal"},
      {"input { name: \"x\" dtype: FP32 dims: [-1] reshape { shape: [2, 2] } }\n"
       "output { name: \"y\" dtype: FP32 dims: [2] }",
       "input 'x': reshape [2,2] and dims [-1]: with a variable dimension both need exactly one -1"},
      {"input { name: \"x\" dtype: FP32 dims: [4] }\n"
       "output { name: \"y\" dtype: FP32 dims: [-1, -1] reshape { shape: [-1] } }",
       "output 'y': reshape [-1] and dims [-1,-1]"},
      {"input { name: \"x\" dtype: FP32 dims: [4] }\noutput { name: \"y\" dtype: FP32 dims: [2] optional: true }",
       "output 'y': only inputs can be optional"},
      {"input { name: \"x\" dtype: FP32 dims: [4] label_filename: \"l.txt\" }\n"
       "output { name: \"y\" dtype: FP32 dims: [2] }",
       "input 'x': only outputs have a label_filename"},
      {"input { name: \"x\" dtype: FP32 dims: [4] }\n"
       "output { name: \"y\" dtype: FP32 dims: [2] label_filename: \"../other/labels.txt\" }",
       "output 'y': label_filename '../other/labels.txt' must be a path inside the model's directory"},
      {"input { name: \"x\" dtype: FP32 dims: [4] }\n"
       "output { name: \"y\" dtype: FP32 dims: [2] label_filename: \"/etc/passwd\" }",
       "output 'y': label_filename '/etc/passwd' must be a path inside the model's directory"},
      {"input { name: \"x\" dtype: FP32 dims: [4] reshape { shape: [0] } }\n"
       "output { name: \"y\" dtype: FP32 dims: [2] }",
       "input 'x': reshape dims must be positive or -1, got 0"},
  };
  for (const auto& [text, message] : cases) {
    absl::Status status = PlanText(text);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(status.message()), HasSubstr(message)) << text;
    EXPECT_THAT(std::string(status.message()), HasSubstr("m/config.pbtxt")) << text;
  }
}

constexpr char kTwoInputs[] = R"(
input { name: "x" dtype: FP32 dims: [-1] forward_arg: 0 }
input { name: "ids" dtype: INT64 dims: [2] forward_arg: 1 }
output { name: "y" dtype: FP32 dims: [1] }
max_batch_size: 8
)";

TEST(PlanModelTest, WarmUpSamplesGetDefaultsAndReplaceTheGuessedWarmUp) {
  absl::StatusOr<ModelPlan> plan = PlanModel(
      ParseText(std::string(kTwoInputs) + R"(warmup { inputs { key: "x" value { dims: [5] } }
                                                      inputs { key: "ids" value { random_data: true } } })"),
      "m", "m/config.pbtxt", 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->config.warmup_size(), 1);
  const v1::WarmUpSample& sample = plan->config.warmup(0);
  EXPECT_EQ(sample.name(), "sample_0");
  EXPECT_EQ(sample.batch_size(), 1);
  EXPECT_EQ(sample.count(), 1);
  EXPECT_THAT(sample.inputs().at("ids").dims(), ::testing::ElementsAre(2));  // the input's fixed dims
  EXPECT_TRUE(plan->warmup_batch_sizes.empty());
  plan = PlanModel(ParseText(std::string(kTwoInputs) + R"(warmup_batch_sizes: [2]
warmup { inputs { key: "x" value { dims: [5] } } inputs { key: "ids" value {} } })"),
                   "m", "m/config.pbtxt", 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->warmup_batch_sizes, ::testing::ElementsAre(2));  // both, when both are listed
  // An optional input may be left out of a sample, as out of a request.
  v1::ModelConfig optional = ParseText(std::string(kTwoInputs) + R"(warmup { inputs { key: "x" value { dims: [5] } } })");
  optional.mutable_input(1)->set_optional(true);
  plan = PlanModel(optional, "m", "m/config.pbtxt", 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<std::vector<WarmUpSample>> samples = ReadWarmUpSamples(plan->config, plan->spec.signature, "/nonexistent");
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ((*samples)[0].inputs[1].fill, WarmUpSample::Fill::kAbsent);
}

TEST(PlanModelTest, BadWarmUpSamplesAreRefusedNamingTheSample) {
  const std::string both = R"( inputs { key: "ids" value {} } })";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"(warmup { name: "w" batch_size: 9 inputs { key: "x" value { dims: [1] } })" + both,
       "warm-up sample 'w': batch_size 9 is outside [1, max_batch_size=8]"},
      {R"(warmup { name: "w" count: -1 inputs { key: "x" value { dims: [1] } })" + both,
       "warm-up sample 'w': count -1 is outside [1, 10000]"},
      {R"(warmup { name: "w" inputs { key: "x" value {} })" + both,
       "warm-up sample 'w': input 'x' has variable dims [-1]; give the sample's dims"},
      {R"(warmup { name: "w" inputs { key: "x" value { dims: [1] } } })",
       "warm-up sample 'w': gives no data for input 'ids'"},
      {R"(warmup { name: "w" inputs { key: "z" value { dims: [1] } })" + both,
       "warm-up sample 'w': input 'z' is not an input of the model"},
      {R"(warmup { name: "w" inputs { key: "x" value { dims: [1, 2] } })" + both,
       "warm-up sample 'w': input 'x': dims [1,2] do not fit the input's [-1]"},
      {R"(warmup { name: "w" inputs { key: "x" value { dims: [1] } } inputs { key: "ids" value { dims: [3] } } })",
       "warm-up sample 'w': input 'ids': dims [3] do not fit the input's [2]"},
      {R"(warmup { name: "w" inputs { key: "x" value { dims: [-3] } })" + both,
       "warm-up sample 'w': input 'x': dims [-3] do not fit"},
      {R"(warmup { name: "w" inputs { key: "x" value { dims: [1000000000] } })" + both,
       "warm-up sample 'w': input 'x': a batch of [1,1000000000] is over 1024 MiB"},
      {R"(warmup { name: "w" inputs { key: "x" value { dims: [1] input_data_file: "../../etc/passwd" } })" + both,
       "input_data_file '../../etc/passwd' must name a file inside the model's warmup/ directory"},
      {R"(warmup { name: "w" inputs { key: "x" value { dims: [1] input_data_file: "/etc/passwd" } })" + both,
       "must name a file inside the model's warmup/ directory"},
  };
  for (const auto& [warmup, message] : cases) {
    absl::Status status = PlanText(std::string(kTwoInputs) + warmup);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << warmup;
    EXPECT_THAT(std::string(status.message()), HasSubstr(message)) << warmup;
    EXPECT_THAT(std::string(status.message()), HasSubstr("m/config.pbtxt")) << warmup;
  }
}

TEST(ReadWarmUpSamplesTest, DataFilesAreReadFromTheWarmupDirectoryAndMustHoldOneRow) {
  TempDir dir("warmup_files");
  std::filesystem::create_directories(dir.path() + "/warmup");
  const std::vector<float> row = {1, 2, 3};
  std::ofstream(dir.path() + "/warmup/x.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(row.data()), sizeof(float) * row.size());
  absl::StatusOr<ModelPlan> plan = PlanModel(
      ParseText(std::string(kTwoInputs) + R"(warmup { name: "f" batch_size: 2 count: 4
          inputs { key: "ids" value { random_data: true } }
          inputs { key: "x" value { dims: [3] input_data_file: "x.bin" } } })"),
      "m", "m/config.pbtxt", 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<std::vector<WarmUpSample>> samples =
      ReadWarmUpSamples(plan->config, plan->spec.signature, dir.path());
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 1u);
  const WarmUpSample& sample = (*samples)[0];
  EXPECT_EQ(sample.name, "f");
  EXPECT_EQ(sample.rows, 2);
  EXPECT_EQ(sample.count, 4);
  ASSERT_EQ(sample.inputs.size(), 2u);  // the signature's order: x, ids
  EXPECT_EQ(sample.inputs[0].fill, WarmUpSample::Fill::kData);
  EXPECT_EQ(sample.inputs[0].data, std::string(reinterpret_cast<const char*>(row.data()), 12));
  EXPECT_EQ(sample.inputs[1].fill, WarmUpSample::Fill::kRandom);
  EXPECT_THAT(sample.inputs[1].dims, ::testing::ElementsAre(2));

  std::ofstream(dir.path() + "/warmup/x.bin", std::ios::binary) << "12345678";
  samples = ReadWarmUpSamples(plan->config, plan->spec.signature, dir.path());
  EXPECT_EQ(samples.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(samples.status().message()),
              HasSubstr("warm-up sample 'f': input 'x': " + dir.path() +
                        "/warmup/x.bin has 8 bytes; one row of [3] FP32 is 12"));
  std::filesystem::remove(dir.path() + "/warmup/x.bin");
  samples = ReadWarmUpSamples(plan->config, plan->spec.signature, dir.path());
  EXPECT_EQ(samples.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(samples.status().message()), HasSubstr("x.bin: cannot read the file"));
}

TEST(ParseModelConfigTest, SyntaxErrorsCarryLineAndColumn) {
  TempDir dir("parse");
  WriteFile(dir.path() + "/config.pbtxt", "input { name: \"x\" }\nmax_batch_size: \"many\"\n");
  auto config = ParseModelConfig(dir.path() + "/config.pbtxt");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("config.pbtxt:2:"));
  WriteFile(dir.path() + "/config.pbtxt", "no_such_field: 1\n");
  config = ParseModelConfig(dir.path() + "/config.pbtxt");
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("no_such_field"));
}

class RepositoryLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DemoModelOptions models;
    models.models = {"mlp"};
    models.versions = 3;
    ASSERT_TRUE(WriteModelRepository(dir_.path(), models).ok());
    options_.root = dir_.path();
  }
  void Append(const std::string& text) {
    std::ofstream(dir_.path() + "/mlp/config.pbtxt", std::ios::app) << text;
  }
  TempDir dir_{"repository"};
  RepositoryOptions options_;
};

TEST_F(RepositoryLoadTest, ServesLatestVersionByDefault) {
  auto repository = ModelManager::Start(options_);
  ASSERT_TRUE(repository.ok()) << repository.status();
  EXPECT_THAT((*repository)->Versions("mlp"), ::testing::ElementsAre(3));
  (*repository)->Shutdown();
}

TEST_F(RepositoryLoadTest, VersionPolicies) {
  Append("version_policy { specific { versions: [1, 3] } }\n");
  auto repository = ModelManager::Start(options_);
  ASSERT_TRUE(repository.ok()) << repository.status();
  EXPECT_THAT((*repository)->Versions("mlp"), ::testing::ElementsAre(1, 3));
  EXPECT_EQ((*(*repository)->Find("mlp", 0))->version, 3);
  EXPECT_EQ((*repository)->Find("mlp", 2).status().code(), absl::StatusCode::kNotFound);
  (*repository)->Shutdown();
}

TEST_F(RepositoryLoadTest, MissingVersionInPolicyFails) {
  Append("version_policy { specific { versions: [9] } }\n");
  auto repository = ModelManager::Start(options_);
  EXPECT_THAT(std::string(repository.status().message()),
              HasSubstr("version_policy names version 9 but only [1,2,3] exist"));
}

TEST_F(RepositoryLoadTest, CorruptModelFileNamesTheFile) {
  WriteFile(dir_.path() + "/mlp/3/model.pt", "this is not a zip archive");
  auto repository = ModelManager::Start(options_);
  ASSERT_FALSE(repository.ok());
  EXPECT_EQ(repository.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(repository.status().message()),
              HasSubstr("mlp/3/model.pt: not a loadable TorchScript model"));
}

TEST_F(RepositoryLoadTest, MissingModelFileNamesTheFile) {
  std::filesystem::remove(dir_.path() + "/mlp/3/model.pt");
  auto repository = ModelManager::Start(options_);
  EXPECT_EQ(repository.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(repository.status().message()), HasSubstr("mlp/3/model.pt"));
}

TEST_F(RepositoryLoadTest, LabelFilesAreReadPerOutputAtLoad) {
  std::string config = ReadFileOrDie(dir_.path() + "/mlp/config.pbtxt");
  const std::string probs = "output { name: \"probs\" dtype: FP32 dims: [4] tuple_index: 1 }";
  ASSERT_NE(config.find(probs), std::string::npos) << config;
  config.replace(config.find(probs), probs.size(),
                 "output { name: \"probs\" dtype: FP32 dims: [4] tuple_index: 1 "
                 "label_filename: \"meta/classes.txt\" }");
  WriteFile(dir_.path() + "/mlp/config.pbtxt", config);
  std::filesystem::create_directories(dir_.path() + "/mlp/meta");
  WriteFile(dir_.path() + "/mlp/meta/classes.txt", "low\r\nmid\n\nhigh");
  auto repository = ModelManager::Start(options_);
  ASSERT_TRUE(repository.ok()) << repository.status();
  absl::StatusOr<std::shared_ptr<ServedModel>> model = (*repository)->Find("mlp", 0);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ((*model)->signature.outputs[1].name, "probs");
  EXPECT_THAT((*model)->output_labels,
              ::testing::ElementsAre(::testing::IsEmpty(), ::testing::ElementsAre("low", "mid", "", "high")));
  (*repository)->Shutdown();

  // A label that is not UTF-8 (here Latin-1) fails the load, naming the line.
  WriteFile(dir_.path() + "/mlp/meta/classes.txt", "low\ncaf\xe9\n");
  repository = ModelManager::Start(options_);
  EXPECT_EQ(repository.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(repository.status().message()),
              HasSubstr("mlp/meta/classes.txt line 2 byte 4: not UTF-8"));

  // A label file that is not there fails the load, naming it.
  std::filesystem::remove(dir_.path() + "/mlp/meta/classes.txt");
  repository = ModelManager::Start(options_);
  EXPECT_EQ(repository.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(repository.status().message()),
              HasSubstr("mlp/meta/classes.txt: cannot read the label_filename of output 'probs'"));
}

TEST_F(RepositoryLoadTest, CudaOnCpuOnlyBuildFailsWithReason) {
  if (TorchCudaAvailable()) GTEST_SKIP() << "this machine has CUDA";
  Append("device: \"cuda:0\"\n");
  auto repository = ModelManager::Start(options_);
  EXPECT_EQ(repository.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(repository.status().message()),
              HasSubstr("device 'cuda:0' requested but this server's LibTorch has no CUDA support"));
}

TEST_F(RepositoryLoadTest, OutputBindingMismatchFailsAtWarmUp) {
  // The mlp returns a tuple; bind an output to a dict key instead.
  WriteFile(dir_.path() + "/mlp/config.pbtxt", R"(
input { name: "x" dtype: FP32 dims: [16] }
output { name: "logits" dtype: FP32 dims: [4] dict_key: "logits" }
)");
  auto repository = ModelManager::Start(options_);
  ASSERT_FALSE(repository.ok());
  EXPECT_THAT(std::string(repository.status().message()),
              HasSubstr("output 'logits' is bound to dict_key 'logits' but forward returned Tuple"));
}

// Regression: a freshly formatted volume has lost+found at its root, and a
// repository there made the server exit 1.
TEST_F(RepositoryLoadTest, NonModelEntriesAreSkipped) {
  std::filesystem::create_directories(dir_.path() + "/lost+found");
  std::filesystem::create_directories(dir_.path() + "/.snapshot/x");
  std::filesystem::create_directories(dir_.path() + "/notes");
  std::ofstream(dir_.path() + "/README.txt") << "stray file";
  absl::StatusOr<std::unique_ptr<ModelManager>> repository = ModelManager::Start(options_);
  ASSERT_TRUE(repository.ok()) << repository.status();
  ASSERT_EQ((*repository)->All().size(), 1u);
  EXPECT_EQ((*repository)->All()[0]->name, "mlp");
  (*repository)->Shutdown();
}

TEST_F(RepositoryLoadTest, MissingRepositoryFails) {
  options_.root = dir_.path() + "/no_such_directory";
  absl::StatusOr<std::unique_ptr<ModelManager>> repository = ModelManager::Start(options_);
  EXPECT_EQ(repository.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(repository.status().message()), HasSubstr("is not a directory"));
}

// Regression: an empty repository (a volume a sidecar fills after the pod
// starts) made the server exit; Triton and TF Serving start and wait.
TEST_F(RepositoryLoadTest, EmptyRepositoryStartsAndLoadsModelsWrittenLater) {
  TempDir empty("empty_repository");
  options_.root = empty.path();
  ModelControlOptions poll;
  poll.mode = ControlMode::kPoll;
  poll.poll_interval = absl::Hours(1);  // scanned by PollNow below
  absl::StatusOr<std::unique_ptr<ModelManager>> repository = ModelManager::Start(options_, poll);
  ASSERT_TRUE(repository.ok()) << repository.status();
  EXPECT_TRUE((*repository)->All().empty());
  EXPECT_EQ((*repository)->Find("mlp", 0).status().code(), absl::StatusCode::kNotFound);

  std::filesystem::copy(dir_.path() + "/mlp", empty.path() + "/mlp",
                        std::filesystem::copy_options::recursive);
  // A version is taken once two scans see it unchanged.
  for (int i = 0; i < 2; ++i) (*repository)->PollNow();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while ((*repository)->Versions("mlp").empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT((*repository)->Versions("mlp"), ::testing::ElementsAre(3));
  (*repository)->Shutdown();
}

// Triton's --load-model=*: every model, in explicit mode; only alone.
TEST_F(RepositoryLoadTest, AStarLoadsEveryModelInExplicitMode) {
  DemoModelOptions pair;
  pair.models = {"pair"};
  ASSERT_TRUE(WriteModelRepository(dir_.path(), pair).ok());
  ModelControlOptions control;
  control.mode = ControlMode::kExplicit;
  control.startup_models = {"*"};
  absl::StatusOr<std::unique_ptr<ModelManager>> repository = ModelManager::Start(options_, control);
  ASSERT_TRUE(repository.ok()) << repository.status();
  EXPECT_EQ((*repository)->All().size(), 2u);
  (*repository)->Shutdown();

  control.startup_models = {"pair"};
  repository = ModelManager::Start(options_, control);
  ASSERT_TRUE(repository.ok()) << repository.status();
  ASSERT_EQ((*repository)->All().size(), 1u);
  EXPECT_EQ((*repository)->All()[0]->name, "pair");
  (*repository)->Shutdown();

  control.startup_models = {"*", "pair"};
  repository = ModelManager::Start(options_, control);
  EXPECT_EQ(repository.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(repository.status().message()), HasSubstr("'*' (every model) must be the only value"));
}

TEST_F(RepositoryLoadTest, EmptyRepositoryStartsInExplicitMode) {
  TempDir empty("empty_repository");
  options_.root = empty.path();
  ModelControlOptions control;
  control.mode = ControlMode::kExplicit;
  absl::StatusOr<std::unique_ptr<ModelManager>> repository = ModelManager::Start(options_, control);
  ASSERT_TRUE(repository.ok()) << repository.status();
  std::filesystem::copy(dir_.path() + "/mlp", empty.path() + "/mlp",
                        std::filesystem::copy_options::recursive);
  absl::Status loaded = (*repository)->LoadModel("mlp", absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(loaded.ok()) << loaded;
  EXPECT_THAT((*repository)->Versions("mlp"), ::testing::ElementsAre(3));
  (*repository)->Shutdown();
}

}  // namespace
}  // namespace microbatch
