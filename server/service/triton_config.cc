#include "server/service/triton_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace microbatch {
namespace {

namespace tr = ::microbatch::triton;

// Text that does not parse as Triton's is simply not a Triton file (its own
// format's parser reports why), and skipped unknown fields are expected:
// nothing is logged.
class Silent : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
};

// The <i> of a name <prefix>__<i> (the PyTorch backend's convention).
std::optional<int> IndexSuffix(const std::string& name) {
  const size_t cut = name.rfind("__");
  if (cut == std::string::npos || cut + 2 == name.size()) return std::nullopt;
  const std::string digits = name.substr(cut + 2);
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int index = 0;
  if (digits.size() > 6 || !absl::SimpleAtoi(digits, &index)) return std::nullopt;
  return index;
}

template <typename Tensors>
bool AllIndexed(const Tensors& tensors) {
  for (const auto& t : tensors) {
    if (!IndexSuffix(t.name())) return false;
  }
  return !tensors.empty();
}

absl::StatusOr<v1::DataType> ToDataType(tr::DataType type) {
  switch (type) {
    case tr::TYPE_BOOL: return v1::BOOL;
    case tr::TYPE_UINT8: return v1::UINT8;
    case tr::TYPE_INT8: return v1::INT8;
    case tr::TYPE_INT16: return v1::INT16;
    case tr::TYPE_INT32: return v1::INT32;
    case tr::TYPE_INT64: return v1::INT64;
    case tr::TYPE_FP16: return v1::FP16;
    case tr::TYPE_FP32: return v1::FP32;
    case tr::TYPE_FP64: return v1::FP64;
    case tr::TYPE_BF16: return v1::BF16;
    case tr::TYPE_INVALID: return absl::InvalidArgumentError("has no data_type");
    case tr::TYPE_STRING:
      return absl::InvalidArgumentError("data_type TYPE_STRING is not supported (TorchScript takes no strings here)");
    default:
      return absl::InvalidArgumentError(absl::StrCat("data_type ", tr::DataType_Name(type),
                                                     " is not supported (LibTorch has no such tensor type)"));
  }
}

tr::DataType FromDataType(v1::DataType type) {
  switch (type) {
    case v1::BOOL: return tr::TYPE_BOOL;
    case v1::UINT8: return tr::TYPE_UINT8;
    case v1::INT8: return tr::TYPE_INT8;
    case v1::INT16: return tr::TYPE_INT16;
    case v1::INT32: return tr::TYPE_INT32;
    case v1::INT64: return tr::TYPE_INT64;
    case v1::FP16: return tr::TYPE_FP16;
    case v1::FP32: return tr::TYPE_FP32;
    case v1::FP64: return tr::TYPE_FP64;
    case v1::BF16: return tr::TYPE_BF16;
    default: return tr::TYPE_INVALID;
  }
}

// The name, datatype, dims and reshape of an input or output;
// INVALID_ARGUMENT naming it for what cannot be served.
template <typename TritonTensor>
absl::Status ConvertTensor(const TritonTensor& t, const char* kind, v1::TensorConfig* out) {
  out->set_name(t.name());
  absl::StatusOr<v1::DataType> type = ToDataType(t.data_type());
  if (!type.ok()) return absl::InvalidArgumentError(absl::StrCat(kind, " '", t.name(), "' ", type.status().message()));
  out->set_dtype(*type);
  out->mutable_dims()->CopyFrom(t.dims());
  if (t.has_reshape()) out->mutable_reshape()->mutable_shape()->CopyFrom(t.reshape().shape());
  if (t.is_shape_tensor()) {
    return absl::InvalidArgumentError(absl::StrCat(kind, " '", t.name(), "': shape tensors are not supported"));
  }
  return absl::OkStatus();
}

bool IsTorchPlatform(const tr::ModelConfig& c) {
  const bool platform_ok = c.platform().empty() || c.platform() == "pytorch_libtorch";
  const bool backend_ok = c.backend().empty() || c.backend() == "pytorch";
  return platform_ok && backend_ok;
}

}  // namespace

std::optional<tr::ModelConfig> ParseTritonConfig(const std::string& text) {
  tr::ModelConfig c;
  google::protobuf::TextFormat::Parser parser;
  parser.AllowUnknownField(true);  // the fields microbatch does not declare
  Silent silent;
  parser.RecordErrorsTo(&silent);
  if (!parser.ParseFromString(text, &c)) return std::nullopt;
  auto typed = [](const auto& tensors) {
    return std::any_of(tensors.begin(), tensors.end(),
                       [](const auto& t) { return t.data_type() != tr::TYPE_INVALID; });
  };
  const bool triton = !c.backend().empty() || (!c.platform().empty() && c.platform() != "torchscript") ||
                      c.instance_group_size() > 0 ||
                      c.scheduling_choice_case() != tr::ModelConfig::SCHEDULING_CHOICE_NOT_SET ||
                      typed(c.input()) || typed(c.output());
  if (!triton) return std::nullopt;
  return c;
}

absl::StatusOr<v1::ModelConfig> ConvertTritonConfig(const tr::ModelConfig& c, const std::string& path) {
  auto error = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(path, " (Triton model configuration): ", parts...));
  };

  if (!IsTorchPlatform(c)) {
    return error(c.backend().empty() ? absl::StrCat("platform '", c.platform())
                                     : absl::StrCat("backend '", c.backend()),
                 "' is not supported: microbatch serves TorchScript models (platform "
                 "\"pytorch_libtorch\" or backend \"pytorch\")");
  }
  if (!c.default_model_filename().empty() && c.default_model_filename() != "model.pt") {
    return error("default_model_filename '", c.default_model_filename(),
                 "' is not supported: name each version's file model.pt");
  }
  if (c.max_batch_size() < 0) return error("max_batch_size must be >= 0, got ", c.max_batch_size());
  if (c.has_sequence_batching()) return error("sequence_batching is not supported");
  if (c.has_ensemble_scheduling()) return error("ensemble_scheduling is not supported");
  if (c.batch_input_size() > 0 || c.batch_output_size() > 0) {
    return error("batch_input and batch_output are not supported");
  }
  if (c.model_transaction_policy().decoupled()) return error("decoupled models are not supported");

  v1::ModelConfig out;
  out.set_name(c.name());
  out.set_platform("torchscript");
  // max_batch_size 0: Triton hands each request to the model as it is.
  if (c.max_batch_size() == 0) {
    out.set_no_batch_dimension(true);
  } else {
    out.set_max_batch_size(c.max_batch_size());
  }

  const bool inputs_indexed = AllIndexed(c.input());
  for (const tr::ModelInput& t : c.input()) {
    v1::TensorConfig* in = out.add_input();
    if (absl::Status s = ConvertTensor(t, "input", in); !s.ok()) return error(s.message());
    in->set_optional(t.optional());
    if (t.allow_ragged_batch()) return error("input '", t.name(), "': ragged batches are not supported");
    if (inputs_indexed) {
      in->set_forward_arg(*IndexSuffix(t.name()));
    } else {
      in->set_forward_arg_name(t.name());
    }
  }
  const bool outputs_indexed = AllIndexed(c.output());
  for (int i = 0; i < c.output_size(); ++i) {
    const tr::ModelOutput& t = c.output(i);
    v1::TensorConfig* o = out.add_output();
    if (absl::Status s = ConvertTensor(t, "output", o); !s.ok()) return error(s.message());
    o->set_label_filename(t.label_filename());
    const int index = outputs_indexed ? *IndexSuffix(t.name()) : i;
    // A single output at position 0 is the tensor forward returns.
    if (c.output_size() > 1 || index != 0) o->set_tuple_index(index);
  }

  if (c.has_dynamic_batching()) {
    const tr::ModelDynamicBatching& batching = c.dynamic_batching();
    if (batching.max_queue_delay_microseconds() > static_cast<uint64_t>(INT64_MAX)) {
      return error("dynamic_batching.max_queue_delay_microseconds is out of range");
    }
    out.set_max_queue_delay_microseconds(static_cast<int64_t>(batching.max_queue_delay_microseconds()));
    const tr::ModelQueuePolicy& queue = batching.default_queue_policy();
    if (queue.max_queue_size() > 0) out.set_max_queue_size(queue.max_queue_size());
    if (queue.default_timeout_microseconds() > static_cast<uint64_t>(INT64_MAX)) {
      return error("dynamic_batching.default_queue_policy.default_timeout_microseconds is out of range");
    }
    v1::RequestTimeoutConfig* timeout = out.mutable_request_timeout();
    if (queue.timeout_action() == tr::ModelQueuePolicy::DELAY) {
      // Triton only moves timed-out requests back; none is refused for it.
      timeout->set_ignore_request_timeout(true);
    } else {
      timeout->set_default_microseconds(static_cast<int64_t>(queue.default_timeout_microseconds()));
      timeout->set_ignore_request_timeout(queue.default_timeout_microseconds() > 0 &&
                                          !queue.allow_timeout_override());
    }
  }

  int instances = 0;
  std::optional<std::string> device;
  for (const tr::ModelInstanceGroup& group : c.instance_group()) {
    if (group.passive()) continue;  // Triton sends passive instances no requests
    if (group.count() < 0) return error("instance_group count must be >= 0, got ", group.count());
    const int count = group.count() == 0 ? 1 : group.count();
    std::string group_device = "cpu";
    const bool gpu = group.kind() == tr::ModelInstanceGroup::KIND_GPU ||
                     (group.kind() == tr::ModelInstanceGroup::KIND_AUTO && group.gpus_size() > 0);
    if (gpu) {
      std::set<int> gpus(group.gpus().begin(), group.gpus().end());
      if (gpus.size() > 1) {
        return error("instance_group lists GPUs ", absl::StrJoin(gpus, ","),
                     ": a model runs on one device here; serve one GPU per model (e.g. gpus: [0])");
      }
      group_device = absl::StrCat("cuda:", gpus.empty() ? 0 : *gpus.begin());
    } else if (group.gpus_size() > 0) {
      return error("instance_group of kind ", tr::ModelInstanceGroup::Kind_Name(group.kind()),
                   " cannot list gpus");
    }
    if (device && *device != group_device) {
      return error("instance groups on ", *device, " and ", group_device,
                   ": a model runs on one device here");
    }
    device = group_device;
    instances += count;
  }
  out.set_instance_count(instances == 0 ? 1 : instances);
  out.set_device(device.value_or("cpu"));

  if (c.has_version_policy()) {
    const tr::ModelVersionPolicy& policy = c.version_policy();
    switch (policy.policy_choice_case()) {
      case tr::ModelVersionPolicy::kLatest:
        out.mutable_version_policy()->set_latest(std::max<uint32_t>(1, policy.latest().num_versions()));
        break;
      case tr::ModelVersionPolicy::kAll:
        out.mutable_version_policy()->set_all(true);
        break;
      case tr::ModelVersionPolicy::kSpecific:
        out.mutable_version_policy()->mutable_specific()->mutable_versions()->CopyFrom(
            policy.specific().versions());
        break;
      case tr::ModelVersionPolicy::POLICY_CHOICE_NOT_SET:
        break;
    }
  }

  if (auto it = c.parameters().find("INTRA_OP_THREAD_COUNT"); it != c.parameters().end()) {
    int threads = 0;
    if (!absl::SimpleAtoi(it->second.string_value(), &threads) || threads < 0) {
      return error("parameters INTRA_OP_THREAD_COUNT must be a number >= 0, got '",
                   it->second.string_value().substr(0, 32), "'");
    }
    out.set_intra_op_threads(threads);
  }
  if (c.response_cache().enable()) out.mutable_response_cache()->set_max_bytes(kTritonResponseCacheBytes);

  for (int i = 0; i < c.model_warmup_size(); ++i) {
    const tr::ModelWarmup& given = c.model_warmup(i);
    const std::string sample_name = given.name().empty() ? absl::StrCat("sample_", i) : given.name().substr(0, 64);
    if (given.batch_size() > static_cast<uint32_t>(INT32_MAX) || given.count() > static_cast<uint32_t>(INT32_MAX)) {
      return error("model_warmup '", sample_name, "': batch_size or count is out of range");
    }
    v1::WarmUpSample* sample = out.add_warmup();
    sample->set_name(given.name());
    sample->set_batch_size(static_cast<int32_t>(given.batch_size()));
    sample->set_count(static_cast<int32_t>(given.count()));
    for (const auto& [name, in] : given.inputs()) {
      auto input = std::find_if(c.input().begin(), c.input().end(),
                                [&name = name](const tr::ModelInput& t) { return t.name() == name; });
      if (input != c.input().end() && in.data_type() != tr::TYPE_INVALID && in.data_type() != input->data_type()) {
        return error("model_warmup '", sample_name, "': input '", name, "' has data_type ",
                     tr::DataType_Name(in.data_type()), ", the model's input is ",
                     tr::DataType_Name(input->data_type()));
      }
      v1::WarmUpInput& converted = (*sample->mutable_inputs())[name];
      converted.mutable_dims()->CopyFrom(in.dims());
      switch (in.input_data_type_case()) {
        case tr::ModelWarmup::Input::kZeroData: converted.set_zero_data(true); break;
        case tr::ModelWarmup::Input::kRandomData: converted.set_random_data(true); break;
        case tr::ModelWarmup::Input::kInputDataFile: converted.set_input_data_file(in.input_data_file()); break;
        case tr::ModelWarmup::Input::INPUT_DATA_TYPE_NOT_SET: break;
      }
    }
  }
  return out;
}

tr::ModelConfig ToTritonConfig(const v1::ModelConfig& c) {
  tr::ModelConfig out;
  out.set_name(c.name());
  out.set_platform("pytorch_libtorch");
  out.set_backend("pytorch");
  out.set_max_batch_size(c.no_batch_dimension() ? 0 : c.max_batch_size());
  auto describe = [](const v1::TensorConfig& t, auto* out) {
    out->set_name(t.name());
    out->set_data_type(FromDataType(t.dtype()));
    out->mutable_dims()->CopyFrom(t.dims());
    if (t.has_reshape()) out->mutable_reshape()->mutable_shape()->CopyFrom(t.reshape().shape());
  };
  for (const v1::TensorConfig& t : c.input()) {
    tr::ModelInput* input = out.add_input();
    describe(t, input);
    input->set_optional(t.optional());
  }
  for (const v1::TensorConfig& t : c.output()) {
    tr::ModelOutput* output = out.add_output();
    describe(t, output);
    output->set_label_filename(t.label_filename());
  }
  // Every model with a batch dimension batches dynamically.
  if (!c.no_batch_dimension()) {
    tr::ModelDynamicBatching* batching = out.mutable_dynamic_batching();
    batching->set_max_queue_delay_microseconds(
        static_cast<uint64_t>(std::max<int64_t>(0, c.max_queue_delay_microseconds())));
    tr::ModelQueuePolicy* queue = batching->mutable_default_queue_policy();
    queue->set_max_queue_size(c.max_queue_size());
    const v1::RequestTimeoutConfig& timeout = c.request_timeout();
    if (timeout.default_microseconds() == 0 && timeout.ignore_request_timeout()) {
      queue->set_timeout_action(tr::ModelQueuePolicy::DELAY);
    } else {
      queue->set_default_timeout_microseconds(static_cast<uint64_t>(timeout.default_microseconds()));
      queue->set_allow_timeout_override(!timeout.ignore_request_timeout());
    }
  }
  tr::ModelInstanceGroup* group = out.add_instance_group();
  group->set_name(absl::StrCat(c.name(), "_0"));
  group->set_count(c.instance_count());
  if (absl::StartsWith(c.device(), "cuda")) {
    group->set_kind(tr::ModelInstanceGroup::KIND_GPU);
    int gpu = 0;
    const size_t colon = c.device().find(':');
    if (colon != std::string::npos) (void)absl::SimpleAtoi(c.device().substr(colon + 1), &gpu);
    group->add_gpus(gpu);
  } else {
    group->set_kind(tr::ModelInstanceGroup::KIND_CPU);
  }
  tr::ModelVersionPolicy* policy = out.mutable_version_policy();
  switch (c.version_policy().policy_case()) {
    case v1::VersionPolicy::kAll:
      policy->mutable_all();
      break;
    case v1::VersionPolicy::kSpecific:
      policy->mutable_specific()->mutable_versions()->CopyFrom(c.version_policy().specific().versions());
      break;
    case v1::VersionPolicy::kLatest:
    case v1::VersionPolicy::POLICY_NOT_SET:
      policy->mutable_latest()->set_num_versions(std::max<uint32_t>(1, c.version_policy().latest()));
      break;
  }
  out.set_default_model_filename("model.pt");
  if (c.intra_op_threads() > 0) {
    (*out.mutable_parameters())["INTRA_OP_THREAD_COUNT"].set_string_value(absl::StrCat(c.intra_op_threads()));
  }
  if (c.response_cache().max_bytes() > 0) out.mutable_response_cache()->set_enable(true);
  for (const v1::WarmUpSample& sample : c.warmup()) {
    tr::ModelWarmup* warmup = out.add_model_warmup();
    warmup->set_name(sample.name());
    warmup->set_batch_size(static_cast<uint32_t>(std::max(0, sample.batch_size())));
    warmup->set_count(static_cast<uint32_t>(std::max(0, sample.count())));
    for (const auto& [name, in] : sample.inputs()) {
      tr::ModelWarmup::Input& described = (*warmup->mutable_inputs())[name];
      for (const v1::TensorConfig& t : c.input()) {
        if (t.name() == name) described.set_data_type(FromDataType(t.dtype()));
      }
      described.mutable_dims()->CopyFrom(in.dims());
      switch (in.data_case()) {
        case v1::WarmUpInput::kRandomData: described.set_random_data(true); break;
        case v1::WarmUpInput::kInputDataFile: described.set_input_data_file(in.input_data_file()); break;
        case v1::WarmUpInput::kZeroData:
        case v1::WarmUpInput::DATA_NOT_SET: described.set_zero_data(true); break;
      }
    }
  }
  return out;
}

}  // namespace microbatch
