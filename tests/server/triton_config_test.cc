// config.pbtxt files written for Triton's PyTorch backend, read through the
// same entry point as microbatch's own (ParseModelConfig, PlanModel).
#include "server/service/triton_config.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/inference.h"
#include "server/service/model_repository.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<v1::ModelConfig> Parse(const std::string& text) {
  TempDir dir("triton_config");
  std::ofstream(dir.path() + "/config.pbtxt") << text;
  return ParseModelConfig(dir.path() + "/config.pbtxt");
}

absl::StatusOr<ModelPlan> Plan(const std::string& text) {
  absl::StatusOr<v1::ModelConfig> config = Parse(text);
  if (!config.ok()) return config.status();
  return PlanModel(*config, "resnet", "resnet/config.pbtxt", 0);
}

// As Triton's documentation and model repositories write them: lists of
// messages without a colon, fields microbatch does not read.
constexpr char kResnet[] = R"(
name: "resnet"
platform: "pytorch_libtorch"
max_batch_size: 8
input [
  {
    name: "INPUT__0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
  }
]
output [
  {
    name: "OUTPUT__0"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    label_filename: "labels.txt"
  }
]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
  default_queue_policy { max_queue_size: 64 timeout_action: REJECT }
}
instance_group [
  {
    count: 2
    kind: KIND_CPU
    rate_limiter { resources [ { name: "R1" count: 1 } ] }
  }
]
version_policy: { latest: { num_versions: 2 } }
optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }
model_warmup [
  {
    name: "zeros"
    batch_size: 1
    inputs { key: "INPUT__0" value: { data_type: TYPE_FP32 dims: [ 3, 224, 224 ] zero_data: true } }
  }
]
parameters: { key: "INFERENCE_MODE" value: { string_value: "true" } }
parameters: { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "3" } }
response_cache { enable: true }
)";

TEST(TritonConfigTest, ATritonPytorchConfigBecomesTheSameServingPlan) {
  absl::StatusOr<ModelPlan> plan = Plan(kResnet);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const v1::ModelConfig& c = plan->config;
  EXPECT_EQ(c.name(), "resnet");
  EXPECT_EQ(c.platform(), "torchscript");
  EXPECT_EQ(c.max_batch_size(), 8);
  EXPECT_EQ(c.max_queue_delay_microseconds(), 100);
  EXPECT_EQ(c.max_queue_size(), 64);
  EXPECT_EQ(c.instance_count(), 2);
  EXPECT_EQ(c.device(), "cpu");
  EXPECT_EQ(c.intra_op_threads(), 3);
  EXPECT_EQ(c.version_policy().latest(), 2u);
  EXPECT_EQ(c.response_cache().max_bytes(), kTritonResponseCacheBytes);
  ASSERT_EQ(plan->spec.signature.inputs.size(), 1u);
  EXPECT_EQ(plan->spec.signature.inputs[0].name, "INPUT__0");
  EXPECT_EQ(plan->spec.signature.inputs[0].dtype, DType::kFloat32);
  EXPECT_THAT(plan->spec.signature.inputs[0].dims, ElementsAre(3, 224, 224));
  EXPECT_THAT(plan->spec.forward_arg, ElementsAre(0));
  EXPECT_TRUE(plan->spec.forward_arg_names.empty());
  ASSERT_EQ(plan->spec.outputs.size(), 1u);
  EXPECT_EQ(plan->spec.outputs[0].kind, OutputBinding::Kind::kTensor);  // the tensor forward returns
  EXPECT_THAT(plan->spec.signature.outputs[0].dims, ElementsAre(1000));
  EXPECT_EQ(c.output(0).label_filename(), "labels.txt");  // and reported back
  EXPECT_EQ(ToTritonConfig(c).output(0).label_filename(), "labels.txt");
  // model_warmup replaces the guessed zero-filled warm-up.
  ASSERT_EQ(c.warmup_size(), 1);
  EXPECT_EQ(c.warmup(0).name(), "zeros");
  EXPECT_EQ(c.warmup(0).batch_size(), 1);
  EXPECT_EQ(c.warmup(0).count(), 1);
  EXPECT_THAT(c.warmup(0).inputs().at("INPUT__0").dims(), ElementsAre(3, 224, 224));
  EXPECT_TRUE(plan->warmup_batch_sizes.empty());
}

TEST(TritonConfigTest, ModelWarmupBecomesWarmUpSamplesAndIsReportedBack) {
  absl::StatusOr<ModelPlan> plan = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }, { name: "ids" data_type: TYPE_INT64 dims: [ 2 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
model_warmup [
  { name: "short" batch_size: 4 count: 3
    inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 7 ] input_data_file: "x7.bin" } }
    inputs { key: "ids" value: { data_type: TYPE_INT64 dims: [ 2 ] random_data: true } } },
  { inputs [ { key: "x" value: { data_type: TYPE_FP32 dims: [ 300 ] zero_data: true } },
             { key: "ids" value: { data_type: TYPE_INT64 dims: [ 2 ] } } ] }
]
)");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const v1::ModelConfig& c = plan->config;
  ASSERT_EQ(c.warmup_size(), 2);
  EXPECT_EQ(c.warmup(0).name(), "short");
  EXPECT_EQ(c.warmup(0).batch_size(), 4);
  EXPECT_EQ(c.warmup(0).count(), 3);
  EXPECT_EQ(c.warmup(0).inputs().at("x").input_data_file(), "x7.bin");
  EXPECT_TRUE(c.warmup(0).inputs().at("ids").random_data());
  EXPECT_EQ(c.warmup(1).name(), "sample_1");
  EXPECT_EQ(c.warmup(1).batch_size(), 1);
  EXPECT_THAT(c.warmup(1).inputs().at("x").dims(), ElementsAre(300));
  triton::ModelConfig back = ToTritonConfig(c);
  ASSERT_EQ(back.model_warmup_size(), 2);
  EXPECT_EQ(back.model_warmup(0).name(), "short");
  EXPECT_EQ(back.model_warmup(0).batch_size(), 4u);
  EXPECT_EQ(back.model_warmup(0).count(), 3u);
  const triton::ModelWarmup::Input& x = back.model_warmup(0).inputs().at("x");
  EXPECT_EQ(x.data_type(), triton::TYPE_FP32);
  EXPECT_THAT(x.dims(), ElementsAre(7));
  EXPECT_EQ(x.input_data_file(), "x7.bin");
  EXPECT_EQ(back.model_warmup(0).inputs().at("ids").data_type(), triton::TYPE_INT64);
  EXPECT_TRUE(back.model_warmup(1).inputs().at("ids").zero_data());

  absl::StatusOr<ModelPlan> mistyped = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
model_warmup [ { name: "w" inputs { key: "x" value: { data_type: TYPE_FP64 dims: [ 4 ] zero_data: true } } } ]
)");
  EXPECT_EQ(mistyped.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(mistyped.status().message()),
              HasSubstr("model_warmup 'w': input 'x' has data_type TYPE_FP64, the model's input is TYPE_FP32"));
  absl::StatusOr<ModelPlan> unbatched = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 0
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
model_warmup [ { name: "w" batch_size: 2 inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } } ]
)");
  EXPECT_THAT(std::string(unbatched.status().message()),
              HasSubstr("warm-up sample 'w': batch_size 2 is outside [1, 1 (the model has no batch dimension)]"));
}

TEST(TritonConfigTest, IndexedNamesArePositionsAndOtherNamesAreForwardArguments) {
  absl::StatusOr<ModelPlan> indexed = Plan(R"(
backend: "pytorch"
max_batch_size: 4
input [ { name: "A__1" data_type: TYPE_INT64 dims: [ -1 ] }, { name: "B__0" data_type: TYPE_BOOL dims: [ -1 ] } ]
output [ { name: "SUM__1" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "DIFF__0" data_type: TYPE_FP16 dims: [ 2 ] } ]
)");
  ASSERT_TRUE(indexed.ok()) << indexed.status();
  EXPECT_THAT(indexed->spec.forward_arg, ElementsAre(1, 0));
  EXPECT_EQ(indexed->spec.signature.inputs[0].dtype, DType::kInt64);
  EXPECT_EQ(indexed->spec.signature.inputs[1].dtype, DType::kBool);
  ASSERT_EQ(indexed->spec.outputs.size(), 2u);
  EXPECT_EQ(indexed->spec.outputs[0].kind, OutputBinding::Kind::kTupleIndex);
  EXPECT_EQ(indexed->spec.outputs[0].tuple_index, 1);
  EXPECT_EQ(indexed->spec.outputs[1].tuple_index, 0);
  EXPECT_EQ(indexed->spec.signature.outputs[1].dtype, DType::kFloat16);

  absl::StatusOr<ModelPlan> named = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 4
input [ { name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] }, { name: "attention_mask" data_type: TYPE_INT64 dims: [ -1 ] } ]
output [ { name: "hidden" data_type: TYPE_FP32 dims: [ -1, 3 ] }, { name: "pooled" data_type: TYPE_FP32 dims: [ 3 ] } ]
)");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_THAT(named->spec.forward_arg_names, ElementsAre("input_ids", "attention_mask"));
  EXPECT_TRUE(named->spec.forward_arg.empty());  // taken from the model at load
  EXPECT_EQ(named->spec.outputs[0].tuple_index, 0);  // listed order
  EXPECT_EQ(named->spec.outputs[1].tuple_index, 1);
}

TEST(TritonConfigTest, InstanceGroupsAndVersionPolicies) {
  const std::string tensors = R"(
max_batch_size: 2
input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
)";
  auto gpu = Parse(tensors + "instance_group [ { count: 3 kind: KIND_GPU gpus: [ 1 ] } ]\n"
                             "version_policy: { all { } }\n");
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ(gpu->device(), "cuda:1");
  EXPECT_EQ(gpu->instance_count(), 3);
  EXPECT_TRUE(gpu->version_policy().all());
  auto groups = Parse(tensors + "instance_group [ { kind: KIND_CPU }, { count: 2 kind: KIND_CPU }, "
                                "{ count: 4 kind: KIND_CPU passive: true } ]\n"
                                "version_policy: { specific: { versions: [ 1, 3 ] } }\n");
  ASSERT_TRUE(groups.ok()) << groups.status();
  EXPECT_EQ(groups->device(), "cpu");
  EXPECT_EQ(groups->instance_count(), 3);  // 1 (count unset) + 2; passive ones get no requests
  EXPECT_THAT(groups->version_policy().specific().versions(), ElementsAre(1, 3));
  auto none = Parse(tensors + "dynamic_batching { }\n");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->instance_count(), 1);
  EXPECT_EQ(none->device(), "cpu");
  EXPECT_EQ(none->max_queue_delay_microseconds(), 0);
}

TEST(TritonConfigTest, WhatCannotBeServedAsTritonWouldIsRefusedNamingIt) {
  const std::string head = "platform: \"pytorch_libtorch\"\n";
  const std::string in = "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n";
  const std::string out = "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"platform: \"onnxruntime_onnx\"\nmax_batch_size: 2\n" + in + out,
       "platform 'onnxruntime_onnx' is not supported: microbatch serves TorchScript models"},
      {"backend: \"python\"\nmax_batch_size: 2\n" + in + out, "backend 'python' is not supported"},
      {head + "max_batch_size: -1\n" + in + out, "max_batch_size must be >= 0, got -1"},
      {head + "max_batch_size: 2\ninput [ { name: \"x\" data_type: TYPE_STRING dims: [ 1 ] } ]\n" + out,
       "input 'x' data_type TYPE_STRING is not supported"},
      {head + "max_batch_size: 2\ninput [ { name: \"x\" data_type: TYPE_UINT32 dims: [ 1 ] } ]\n" + out,
       "input 'x' data_type TYPE_UINT32 is not supported"},
      {head + "max_batch_size: 2\ninput [ { name: \"x\" dims: [ 1 ] } ]\n" + out, "input 'x' has no data_type"},
      {head + "max_batch_size: 2\n" + in + out +
           "sequence_batching { control_input [ { name: \"START\" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ] }\n",
       "sequence_batching is not supported"},
      {head + "max_batch_size: 2\n" + in + out + "model_transaction_policy { decoupled: true }\n",
       "decoupled models are not supported"},
      {head + "max_batch_size: 2\n" + in + out + "instance_group [ { kind: KIND_GPU gpus: [ 0, 1 ] } ]\n",
       "a model runs on one device here"},
      {head + "max_batch_size: 2\n" + in + out +
           "instance_group [ { kind: KIND_GPU gpus: [ 0 ] }, { kind: KIND_CPU } ]\n",
       "instance groups on cuda:0 and cpu"},
      {head + "max_batch_size: 2\n" + in + out + "default_model_filename: \"resnet.pt\"\n",
       "default_model_filename 'resnet.pt' is not supported"},
      {head + "max_batch_size: 2\n" + in + out +
           "parameters: { key: \"INTRA_OP_THREAD_COUNT\" value: { string_value: \"many\" } }\n",
       "INTRA_OP_THREAD_COUNT must be a number >= 0, got 'many'"},
  };
  for (const auto& [text, message] : cases) {
    absl::StatusOr<v1::ModelConfig> config = Parse(text);
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(message)) << text;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr("(Triton model configuration)")) << text;
  }
}

// max_batch_size 0: the model has no batch dimension; dims are the whole
// shape, and each request is one call of forward.
TEST(TritonConfigTest, MaxBatchSizeZeroIsAModelWithoutABatchDimension) {
  absl::StatusOr<ModelPlan> plan = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 0
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3, -1 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1, 10 ] } ]
)");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->config.no_batch_dimension());
  EXPECT_FALSE(plan->spec.signature.has_batch_dimension);
  EXPECT_EQ(plan->config.max_batch_size(), 1);  // inside the server: one row
  EXPECT_THAT(plan->spec.signature.inputs[0].dims, ElementsAre(3, -1));
  EXPECT_THAT(plan->spec.signature.ClientShape(plan->spec.signature.inputs[0]), ElementsAre(3, -1));
  EXPECT_THAT(plan->spec.signature.outputs[0].dims, ElementsAre(1, 10));
  // Written back as Triton has it: max_batch_size 0, no dynamic batching.
  triton::ModelConfig back = ToTritonConfig(plan->config);
  EXPECT_EQ(back.max_batch_size(), 0);
  EXPECT_FALSE(back.has_dynamic_batching());
  EXPECT_THAT(back.input(0).dims(), ElementsAre(3, -1));
}

// reshape: requests keep dims, forward sees the reshape (Triton's way of
// serving a model whose forward takes a [batch] tensor: dims [1], reshape []).
TEST(TritonConfigTest, QueuePolicyTimeoutsBecomeTheRequestTimeoutPolicy) {
  auto convert = [](const std::string& policy) {
    absl::StatusOr<ModelPlan> plan = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
dynamic_batching { default_queue_policy { )" + policy + R"( } }
)");
    EXPECT_TRUE(plan.ok()) << plan.status();
    return plan.ok() ? plan->config : v1::ModelConfig();
  };
  v1::ModelConfig c = convert("default_timeout_microseconds: 5000 allow_timeout_override: true max_queue_size: 9");
  EXPECT_EQ(c.max_queue_size(), 9);
  EXPECT_EQ(c.request_timeout().default_microseconds(), 5000);
  EXPECT_FALSE(c.request_timeout().ignore_request_timeout());
  triton::ModelQueuePolicy back = ToTritonConfig(c).dynamic_batching().default_queue_policy();
  EXPECT_EQ(back.default_timeout_microseconds(), 5000u);
  EXPECT_TRUE(back.allow_timeout_override());
  EXPECT_EQ(back.timeout_action(), triton::ModelQueuePolicy::REJECT);

  c = convert("default_timeout_microseconds: 5000");  // Triton ignores a request's own timeout
  EXPECT_EQ(c.request_timeout().default_microseconds(), 5000);
  EXPECT_TRUE(c.request_timeout().ignore_request_timeout());
  EXPECT_FALSE(ToTritonConfig(c).dynamic_batching().default_queue_policy().allow_timeout_override());

  c = convert("timeout_action: DELAY default_timeout_microseconds: 5000");  // nothing refused
  EXPECT_EQ(c.request_timeout().default_microseconds(), 0);
  EXPECT_TRUE(c.request_timeout().ignore_request_timeout());
  EXPECT_EQ(ToTritonConfig(c).dynamic_batching().default_queue_policy().timeout_action(),
            triton::ModelQueuePolicy::DELAY);

  c = convert("max_queue_size: 4");  // no timeout: a request's own applies
  EXPECT_EQ(c.request_timeout().default_microseconds(), 0);
  EXPECT_FALSE(c.request_timeout().ignore_request_timeout());

  v1::ModelConfig own = c;
  own.set_name("");
  own.mutable_request_timeout()->set_default_microseconds(-1);
  EXPECT_THAT(std::string(PlanModel(own, "resnet", "resnet/config.pbtxt", 0).status().message()),
              HasSubstr("request_timeout.default_microseconds must be >= 0, got -1"));
}

TEST(RequestDeadlineTest, TheEarlierOfTheDeadlineAndTheTimeoutThePolicyAllows) {
  const absl::Time received = absl::FromUnixSeconds(1000);
  InferenceRequest request;
  request.received = received;
  v1::RequestTimeoutConfig policy;
  EXPECT_EQ(RequestDeadline(request, policy), absl::InfiniteFuture());  // nothing set
  request.timeout = absl::Milliseconds(30);
  EXPECT_EQ(RequestDeadline(request, policy), received + absl::Milliseconds(30));  // its own
  request.deadline = received + absl::Milliseconds(10);
  EXPECT_EQ(RequestDeadline(request, policy), received + absl::Milliseconds(10));  // the earlier
  request.deadline = absl::InfiniteFuture();
  policy.set_default_microseconds(20000);
  EXPECT_EQ(RequestDeadline(request, policy), received + absl::Milliseconds(20));  // own only shortens
  request.timeout = absl::Milliseconds(5);
  EXPECT_EQ(RequestDeadline(request, policy), received + absl::Milliseconds(5));
  policy.set_ignore_request_timeout(true);
  EXPECT_EQ(RequestDeadline(request, policy), received + absl::Milliseconds(20));  // ignored
  policy.set_default_microseconds(0);
  EXPECT_EQ(RequestDeadline(request, policy), absl::InfiniteFuture());  // DELAY: nothing
  request.deadline = received + absl::Seconds(1);
  EXPECT_EQ(RequestDeadline(request, policy), received + absl::Seconds(1));  // the transport's stays
}

TEST(TritonConfigTest, OptionalInputsAreKept) {
  absl::StatusOr<ModelPlan> plan = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "ids" data_type: TYPE_INT64 dims: [ -1 ] }, { name: "mask" data_type: TYPE_INT64 dims: [ -1 ] optional: true } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ]
)");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->spec.signature.inputs[0].optional);
  EXPECT_TRUE(plan->spec.signature.inputs[1].optional);
  triton::ModelConfig back = ToTritonConfig(plan->config);
  EXPECT_FALSE(back.input(0).optional());
  EXPECT_TRUE(back.input(1).optional());
}

TEST(TritonConfigTest, ReshapeIsKeptForTheBackend) {
  absl::StatusOr<ModelPlan> plan = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2, 2 ] reshape: { shape: [ 4 ] } } ]
)");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->spec.signature.inputs[0].BatchedShape(), ElementsAre(-1, 1));
  ASSERT_TRUE(plan->spec.input_reshape[0].has_value());
  EXPECT_TRUE(plan->spec.input_reshape[0]->empty());
  ASSERT_TRUE(plan->spec.output_reshape[0].has_value());
  EXPECT_THAT(*plan->spec.output_reshape[0], ElementsAre(4));
  triton::ModelConfig back = ToTritonConfig(plan->config);
  EXPECT_TRUE(back.input(0).has_reshape());
  EXPECT_EQ(back.input(0).reshape().shape_size(), 0);
  EXPECT_THAT(back.output(0).reshape().shape(), ElementsAre(4));
  absl::StatusOr<ModelPlan> mismatch = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 3 ] } } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
)");
  EXPECT_THAT(std::string(mismatch.status().message()),
              HasSubstr("input 'INPUT__0': reshape [2,3] and dims [4] hold 6 and 4 elements"));
}

TEST(TritonConfigTest, TritonBindingsAreCheckedByTheSamePlanRules) {
  absl::StatusOr<ModelPlan> plan = Plan(R"(
platform: "pytorch_libtorch"
max_batch_size: 2
input [ { name: "A__0" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "B__0" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
)");
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("inputs 'A__0' and 'B__0' both use forward_arg 0"));
}

TEST(TritonConfigTest, OwnFormatErrorsStayOwnFormatErrors) {
  // A typo in microbatch's own format is reported as such, not read as a
  // Triton file with unknown fields.
  absl::StatusOr<v1::ModelConfig> typo = Parse("input { name: \"x\" dtyp: FP32 dims: [4] }\n");
  ASSERT_FALSE(typo.ok());
  EXPECT_THAT(std::string(typo.status().message()), HasSubstr("has no field named \"dtyp\""));
  EXPECT_THAT(std::string(typo.status().message()), ::testing::Not(HasSubstr("Triton")));
  EXPECT_FALSE(ParseTritonConfig("input { name: \"x\" dtyp: FP32 dims: [4] }\n").has_value());
  EXPECT_TRUE(ParseTritonConfig(kResnet).has_value());
  // Microbatch's format also takes Triton's platform name.
  absl::StatusOr<ModelPlan> own = Plan(
      "platform: \"pytorch_libtorch\"\ninput { name: \"x\" dtype: FP32 dims: [4] }\n"
      "output { name: \"y\" dtype: FP32 dims: [4] }\n");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->config.platform(), "torchscript");
}

TEST(ForwardArgNameTest, OwnFormatMayBindInputsByArgumentName) {
  absl::StatusOr<ModelPlan> plan = Plan(R"(
input { name: "ids" dtype: INT64 dims: [-1] forward_arg_name: "input_ids" }
input { name: "mask" dtype: INT64 dims: [-1] forward_arg_name: "attention_mask" }
output { name: "y" dtype: FP32 dims: [3] }
)");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->spec.forward_arg_names, ElementsAre("input_ids", "attention_mask"));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"input { name: \"a\" dtype: FP32 dims: [1] forward_arg_name: \"a\" }\n"
       "input { name: \"b\" dtype: FP32 dims: [1] forward_arg: 1 }\n",
       "input 'b': has no forward_arg_name; either every input names its argument or none does"},
      {"input { name: \"a\" dtype: FP32 dims: [1] forward_arg_name: \"x\" }\n"
       "input { name: \"b\" dtype: FP32 dims: [1] forward_arg_name: \"x\" }\n",
       "inputs 'a' and 'b' are both passed as argument 'x'"},
      {"input { name: \"a\" dtype: FP32 dims: [1] forward_arg_name: \"x\" forward_arg: 1 }\n",
       "forward_arg and forward_arg_name both set"},
  };
  for (const auto& [inputs, message] : cases) {
    absl::StatusOr<ModelPlan> bad = Plan(inputs + "output { name: \"y\" dtype: FP32 dims: [1] }\n");
    ASSERT_FALSE(bad.ok()) << inputs;
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(message)) << inputs;
  }
}

}  // namespace
}  // namespace microbatch
