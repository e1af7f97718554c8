// config.pbtxt parsing and planning: the fuzz input is written to a file and
// read by ParseModelConfig; a config that parses goes through PlanModel.
// Checks the plan's invariants (every default filled, limits in range,
// forward_arg a permutation, one binding per output). Links the torch-free
// fake backend (tests/service/fake_torch_backend.cc) in place of LibTorch:
// planning never loads a model.
#include <algorithm>
#include <set>
#include <string>

#include "absl/strings/match.h"

#include "server/service/model_repository.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microbatch;
  const std::string path = fuzz::WriteTempFile("-config.pbtxt", data, size);
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(path);
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(config.status().message(), path));
    return 0;
  }
  for (int default_threads : {0, 3}) {
    absl::StatusOr<ModelPlan> plan = PlanModel(*config, "m", path, default_threads);
    if (!plan.ok()) {
      FUZZ_CHECK(plan.status().code() == absl::StatusCode::kInvalidArgument);
      FUZZ_CHECK(absl::StartsWith(plan.status().message(), path + ": "));
      continue;
    }
    const v1::ModelConfig& c = plan->config;
    FUZZ_CHECK(c.name() == "m");
    FUZZ_CHECK(c.platform() == "torchscript");
    FUZZ_CHECK(c.max_batch_size() >= 1 && c.max_queue_size() >= 1 && c.instance_count() >= 1);
    FUZZ_CHECK(c.intra_op_threads() >= 1);
    FUZZ_CHECK(plan->batcher.max_batch_size == c.max_batch_size());
    FUZZ_CHECK(plan->batcher.max_queue_delay >= absl::ZeroDuration());
    FUZZ_CHECK(c.request_timeout().default_microseconds() >= 0);
    FUZZ_CHECK(!plan->warmup_batch_sizes.empty() || c.warmup_size() > 0);
    for (const v1::WarmUpSample& sample : c.warmup()) {
      FUZZ_CHECK(!sample.name().empty());
      FUZZ_CHECK(sample.batch_size() >= 1 && sample.batch_size() <= c.max_batch_size());
      FUZZ_CHECK(sample.count() >= 1);
      FUZZ_CHECK(sample.inputs_size() <= c.input_size());
      for (const v1::TensorConfig& t : c.input()) {
        const auto it = sample.inputs().find(t.name());
        FUZZ_CHECK(it != sample.inputs().end() || t.optional());
        if (it == sample.inputs().end()) continue;
        FUZZ_CHECK(it->second.dims_size() == t.dims_size());
        for (int d = 0; d < t.dims_size(); ++d) {
          FUZZ_CHECK(it->second.dims(d) >= 0);
          FUZZ_CHECK(t.dims(d) == -1 || t.dims(d) == it->second.dims(d));
        }
        if (it->second.has_input_data_file()) {
          const std::string& file = it->second.input_data_file();
          FUZZ_CHECK(!file.empty() && file[0] != '/');
          FUZZ_CHECK(file != ".." && !absl::StartsWith(file, "../") && !absl::EndsWith(file, "/..") &&
                     file.find("/../") == std::string::npos);
        }
      }
    }
    for (int s : plan->warmup_batch_sizes) FUZZ_CHECK(s >= 1 && s <= c.max_batch_size());
    const TorchModelSpec& spec = plan->spec;
    FUZZ_CHECK(spec.signature.has_batch_dimension == !c.no_batch_dimension());
    if (c.no_batch_dimension()) FUZZ_CHECK(c.max_batch_size() == 1);
    FUZZ_CHECK(spec.input_reshape.size() == static_cast<size_t>(c.input_size()));
    FUZZ_CHECK(spec.output_reshape.size() == static_cast<size_t>(c.output_size()));
    for (const auto* reshapes : {&spec.input_reshape, &spec.output_reshape}) {
      for (const auto& reshape : *reshapes) {
        if (!reshape) continue;
        FUZZ_CHECK(std::count(reshape->begin(), reshape->end(), int64_t{-1}) <= 1);
        for (int64_t d : *reshape) FUZZ_CHECK(d >= 1 || d == -1);
      }
    }
    FUZZ_CHECK(spec.signature.inputs.size() == static_cast<size_t>(c.input_size()));
    if (spec.forward_arg_names.empty()) {
      FUZZ_CHECK(spec.forward_arg.size() == spec.signature.inputs.size());
      FUZZ_CHECK(std::set<int>(spec.forward_arg.begin(), spec.forward_arg.end()).size() ==
                 spec.forward_arg.size());
      for (int arg : spec.forward_arg) FUZZ_CHECK(arg >= 0 && arg < c.input_size());
    } else {  // bound by name: positions come from the model at load
      FUZZ_CHECK(spec.forward_arg.empty());
      FUZZ_CHECK(spec.forward_arg_names.size() == spec.signature.inputs.size());
      FUZZ_CHECK(std::set<std::string>(spec.forward_arg_names.begin(), spec.forward_arg_names.end()).size() ==
                 spec.forward_arg_names.size());
      for (const std::string& name : spec.forward_arg_names) FUZZ_CHECK(!name.empty());
    }
    FUZZ_CHECK(spec.outputs.size() == spec.signature.outputs.size());
    FUZZ_CHECK(!spec.signature.outputs.empty());
    for (const auto* list : {&spec.signature.inputs, &spec.signature.outputs}) {
      for (const TensorSpec& t : *list) {
        FUZZ_CHECK(t.dtype != DType::kInvalid && !t.name.empty());
        if (list == &spec.signature.outputs) FUZZ_CHECK(!t.optional);
        for (int64_t d : t.dims) FUZZ_CHECK(d >= 1 || d == -1);
      }
    }
  }
  return 0;
}
