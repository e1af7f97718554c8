#include "server/service/model_repository.h"

#include "server/core/text.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "server/core/log.h"
#include "server/service/convert.h"
#include "server/service/triton_config.h"
#include "server/service/warm_up_samples.h"

namespace microbatch {
namespace {

namespace fs = std::filesystem;

constexpr int kDefaultMaxBatchSize = 32;
constexpr int kDefaultMaxQueueSize = 1024;

class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit ErrorCollector(std::string path) : path_(std::move(path)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) first_ = absl::StrCat(path_, ":", line + 1, ":", column + 1, ": ", message);
  }
  const std::string& first() const { return first_; }

 private:
  std::string path_;
  std::string first_;
};

// A reshape holds the same elements as the dims it stands for: equal
// products when both are fixed; with a variable dimension, one -1 in each.
absl::Status CheckReshape(const v1::TensorConfig& t) {
  const auto& dims = t.dims();
  const auto& shape = t.reshape().shape();
  const std::string written =
      absl::StrCat("reshape [", absl::StrJoin(shape, ","), "] and dims [", absl::StrJoin(dims, ","), "]");
  for (int64_t d : shape) {
    if (d < 1 && d != -1) {
      return absl::InvalidArgumentError(absl::StrCat("reshape dims must be positive or -1, got ", d));
    }
  }
  const auto variable = [](const auto& v) { return std::count(v.begin(), v.end(), int64_t{-1}); };
  if (variable(dims) > 1 || variable(shape) > 1 || (variable(dims) == 0) != (variable(shape) == 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        written, ": with a variable dimension both need exactly one -1, else neither has one"));
  }
  if (variable(dims) == 0) {
    const std::optional<int64_t> from = ElementCount(absl::MakeConstSpan(dims.data(), dims.size()));
    const std::optional<int64_t> to = ElementCount(absl::MakeConstSpan(shape.data(), shape.size()));
    if (!from || !to) return absl::InvalidArgumentError(absl::StrCat(written, ": too many elements"));
    if (*from != *to) {
      return absl::InvalidArgumentError(
          absl::StrCat(written, " hold ", *to, " and ", *from, " elements; they must be equal"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTensors(const google::protobuf::RepeatedPtrField<v1::TensorConfig>& tensors,
                          const char* kind, const std::string& source) {
  if (tensors.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the model declares no ", kind, "s"));
  }
  std::set<std::string> names;
  for (const v1::TensorConfig& t : tensors) {
    if (t.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": an ", kind, " has no name"));
    }
    if (!names.insert(t.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", kind, " '", t.name(), "' is declared twice"));
    }
    if (FromProtoDType(t.dtype()) == DType::kInvalid) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", kind, " '", t.name(), "' has no valid dtype"));
    }
    for (int64_t d : t.dims()) {
      if (d < 1 && d != -1) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": ", kind, " '", t.name(),
                                                       "': dims must be positive or -1, got ", d));
      }
    }
    if (!t.label_filename().empty()) {
      if (absl::string_view(kind) != "output") {
        return absl::InvalidArgumentError(absl::StrCat(source, ": input '", t.name(),
                                                       "': only outputs have a label_filename"));
      }
      const fs::path label_path(t.label_filename());
      const bool escapes = std::any_of(label_path.begin(), label_path.end(),
                                       [](const fs::path& part) { return part == ".."; });
      if (label_path.is_absolute() || escapes) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": output '", t.name(), "': label_filename '", t.label_filename(),
            "' must be a path inside the model's directory"));
      }
    }
    if (t.optional() && absl::string_view(kind) == "output") {
      return absl::InvalidArgumentError(absl::StrCat(source, ": output '", t.name(),
                                                     "': only inputs can be optional"));
    }
    if (t.has_reshape()) {
      if (absl::Status s = CheckReshape(t); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": ", kind, " '", t.name(), "': ", s.message()));
      }
    }
  }
  return absl::OkStatus();
}

TensorSpec ToSpec(const v1::TensorConfig& t) {
  return TensorSpec{t.name(), FromProtoDType(t.dtype()), {t.dims().begin(), t.dims().end()}, t.optional()};
}

// Whether the file at `path` ends with a zip end-of-central-directory
// record: a TorchScript file that was completely written does.
bool EndsWithZipDirectory(const fs::path& path, uintmax_t size) {
  constexpr size_t kRecord = 22;          // the record without its comment
  constexpr size_t kMaxComment = 0xffff;  // a zip comment is at most this long
  if (size < kRecord) return false;
  const size_t tail = static_cast<size_t>(std::min<uintmax_t>(size, kRecord + kMaxComment));
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  in.seekg(static_cast<std::streamoff>(size - tail));
  std::string bytes(tail, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(tail))) return false;
  for (size_t i = tail - kRecord + 1; i-- > 0;) {
    if (bytes.compare(i, 4, "PK\x05\x06") == 0) {
      // The record's comment length must reach exactly to the end.
      const size_t comment = static_cast<uint8_t>(bytes[i + 20]) |
                             static_cast<size_t>(static_cast<uint8_t>(bytes[i + 21])) << 8;
      return i + kRecord + comment == tail;
    }
  }
  return false;
}

}  // namespace

namespace {

absl::StatusOr<v1::ModelConfig> ParseModelConfigText(const std::string& text,
                                                     const std::string& path) {
  v1::ModelConfig config;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors(path);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    // A repository written for Triton's PyTorch backend is served as is.
    if (std::optional<triton::ModelConfig> triton = ParseTritonConfig(text)) {
      return ConvertTritonConfig(*triton, path);
    }
    return absl::InvalidArgumentError(errors.first().empty() ? absl::StrCat(path, ": parse error")
                                                             : errors.first());
  }
  return config;
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the model config"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The labels of a label_filename: one per line (a trailing CR dropped).
absl::StatusOr<std::vector<std::string>> ReadLabels(const fs::path& path, const std::string& output) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": cannot read the label_filename of output '",
                                            output, "'"));
  }
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // Labels go out in JSON strings, which are UTF-8.
    if (const size_t bad = FirstInvalidUtf8(line); bad != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), " line ", labels.size() + 1, " byte ",
                                                     bad + 1, ": not UTF-8 (labels are UTF-8 text)"));
    }
    labels.push_back(std::move(line));
  }
  return labels;
}

}  // namespace

absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadText(path);
  if (!text.ok()) return text.status();
  return ParseModelConfigText(*text, path);
}

absl::StatusOr<ModelPlan> PlanModel(const v1::ModelConfig& input, const std::string& model_name,
                                    const std::string& source, int default_intra_op_threads) {
  ModelPlan plan;
  v1::ModelConfig& c = plan.config;
  c = input;
  auto error = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", parts...));
  };
  if (!c.name().empty() && c.name() != model_name) {
    return error("name '", c.name(), "' does not match the directory name '", model_name, "'");
  }
  c.set_name(model_name);
  // "pytorch_libtorch" is Triton's name for the same thing.
  if (c.platform().empty() || c.platform() == "pytorch_libtorch") c.set_platform("torchscript");
  if (c.platform() != "torchscript") {
    return error("platform '", c.platform(),
                 "' is not supported (only \"torchscript\", also called \"pytorch_libtorch\")");
  }
  if (absl::Status s = CheckTensors(c.input(), "input", source); !s.ok()) return s;
  if (absl::Status s = CheckTensors(c.output(), "output", source); !s.ok()) return s;

  if (c.no_batch_dimension()) {
    if (c.max_batch_size() > 1) {
      return error("max_batch_size ", c.max_batch_size(),
                   " with no_batch_dimension: such a model runs each request alone; leave "
                   "max_batch_size unset");
    }
    c.set_max_batch_size(1);  // inside the server: one row, the request
  }
  if (c.max_batch_size() == 0) c.set_max_batch_size(kDefaultMaxBatchSize);
  if (c.max_batch_size() < 1) return error("max_batch_size must be >= 1, got ", c.max_batch_size());
  if (c.max_queue_delay_microseconds() < 0) return error("max_queue_delay_microseconds must be >= 0");
  if (c.request_timeout().default_microseconds() < 0) {
    return error("request_timeout.default_microseconds must be >= 0, got ", c.request_timeout().default_microseconds());
  }
  if (c.max_queue_size() == 0) c.set_max_queue_size(kDefaultMaxQueueSize);
  if (c.max_queue_size() < 1) return error("max_queue_size must be >= 1, got ", c.max_queue_size());
  if (c.response_cache().max_bytes() < 0) {
    return error("response_cache.max_bytes must be >= 0, got ", c.response_cache().max_bytes());
  }
  if (c.instance_count() == 0) c.set_instance_count(1);
  if (c.instance_count() < 1) return error("instance_count must be >= 1, got ", c.instance_count());
  if (c.device().empty()) c.set_device("cpu");
  if (c.intra_op_threads() < 0) return error("intra_op_threads must be >= 0");
  if (c.intra_op_threads() == 0) c.set_intra_op_threads(default_intra_op_threads);
  if (c.intra_op_threads() == 0) {
    // Unset everywhere: share the cores among the instances. Always a
    // concrete number, set on every executor thread: LibTorch's own default
    // depends on what ran on the thread before.
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    c.set_intra_op_threads(std::max(1, cores / c.instance_count()));
  }
  // Samples replace the zero-filled warm-up unless its batch sizes are listed too.
  if (c.warmup_batch_sizes().empty() && c.warmup().empty()) {
    c.add_warmup_batch_sizes(1);
    if (c.max_batch_size() > 1) c.add_warmup_batch_sizes(c.max_batch_size());
  }
  for (int size : c.warmup_batch_sizes()) {
    if (size < 1 || size > c.max_batch_size()) {
      return error("warmup batch size ", size, " is outside [1, max_batch_size=",
                   c.max_batch_size(), "]");
    }
  }
  if (absl::Status s = CheckWarmUpSamples(&c, source); !s.ok()) return s;

  TorchModelSpec& spec = plan.spec;
  spec.device = c.device();
  spec.intra_op_threads = c.intra_op_threads();
  spec.optimize_for_inference = c.optimize_for_inference();
  std::vector<std::string> arg_owner(c.input_size());
  const bool by_name = !c.input().empty() && !c.input(0).forward_arg_name().empty();
  std::map<std::string, std::string> name_owner;  // forward_arg_name -> input
  for (const v1::TensorConfig& t : c.input()) {
    if (t.forward_arg_name().empty() == by_name) {
      return error("input '", t.name(), "': ",
                   by_name ? "has no forward_arg_name; either every input names its argument or none does"
                           : "has a forward_arg_name; either every input names its argument or none does");
    }
    if (by_name) {
      if (t.forward_arg() != 0) {
        return error("input '", t.name(), "': forward_arg and forward_arg_name both set; use one");
      }
      auto [it, inserted] = name_owner.emplace(t.forward_arg_name(), t.name());
      if (!inserted) {
        return error("inputs '", it->second, "' and '", t.name(), "' are both passed as argument '",
                     t.forward_arg_name(), "'");
      }
      spec.forward_arg_names.push_back(t.forward_arg_name());  // positions: at load
      spec.signature.inputs.push_back(ToSpec(t));
      continue;
    }
    const int arg = t.forward_arg();
    if (arg < 0 || arg >= c.input_size()) {
      return error("input '", t.name(), "': forward_arg ", arg, " is outside [0, ", c.input_size() - 1,
                   "]");
    }
    if (!arg_owner[arg].empty()) {
      return error("inputs '", arg_owner[arg], "' and '", t.name(), "' both use forward_arg ", arg,
                   "; give each input its own position");
    }
    arg_owner[arg] = t.name();
    spec.forward_arg.push_back(arg);
    spec.signature.inputs.push_back(ToSpec(t));
  }
  std::set<std::string> keys;
  std::set<int> indices;
  for (const v1::TensorConfig& t : c.output()) {
    OutputBinding binding;
    switch (t.source_case()) {
      case v1::TensorConfig::kTupleIndex:
        binding.kind = OutputBinding::Kind::kTupleIndex;
        binding.tuple_index = t.tuple_index();
        if (t.tuple_index() < 0) return error("output '", t.name(), "': tuple_index must be >= 0");
        if (!indices.insert(t.tuple_index()).second) {
          return error("output '", t.name(), "': tuple_index ", t.tuple_index(), " is used twice");
        }
        break;
      case v1::TensorConfig::kDictKey:
        binding.kind = OutputBinding::Kind::kDictKey;
        binding.dict_key = t.dict_key();
        if (!keys.insert(t.dict_key()).second) {
          return error("output '", t.name(), "': dict_key '", t.dict_key(), "' is used twice");
        }
        break;
      case v1::TensorConfig::SOURCE_NOT_SET:
        if (c.output_size() != 1) {
          return error("output '", t.name(),
                       "' has neither tuple_index nor dict_key; only a single-output model may "
                       "omit both");
        }
        break;
    }
    if (!indices.empty() && !keys.empty()) {
      return error("outputs mix tuple_index and dict_key; forward returns either a tuple or a dict");
    }
    spec.outputs.push_back(binding);
    spec.signature.outputs.push_back(ToSpec(t));
  }

  spec.signature.has_batch_dimension = !c.no_batch_dimension();
  auto reshape_of = [](const v1::TensorConfig& t) -> std::optional<std::vector<int64_t>> {
    if (!t.has_reshape()) return std::nullopt;
    return std::vector<int64_t>(t.reshape().shape().begin(), t.reshape().shape().end());
  };
  for (const v1::TensorConfig& t : c.input()) spec.input_reshape.push_back(reshape_of(t));
  for (const v1::TensorConfig& t : c.output()) spec.output_reshape.push_back(reshape_of(t));

  plan.batcher.max_batch_size = c.max_batch_size();
  plan.batcher.max_queue_delay = absl::Microseconds(c.max_queue_delay_microseconds());
  plan.batcher.max_queue_size = c.max_queue_size();
  if (c.bulk_run_budget_microseconds() != 0) {
    // Negative turns the bound off (BatcherOptions: a budget <= 0).
    plan.batcher.bulk_run_budget =
        absl::Microseconds(std::max<int64_t>(c.bulk_run_budget_microseconds(), 0));
  }
  plan.warmup_batch_sizes.assign(c.warmup_batch_sizes().begin(), c.warmup_batch_sizes().end());
  return plan;
}

absl::StatusOr<ModelPlan> PlanModelText(const std::string& text, const std::string& model_name,
                                        const std::string& source,
                                        const RepositoryOptions& options) {
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfigText(text, source);
  if (!config.ok()) return config.status();
  absl::StatusOr<ModelPlan> plan =
      PlanModel(*config, model_name, source, options.default_intra_op_threads);
  if (!plan.ok()) return plan.status();
  plan->batcher.deadline_margin = options.deadline_margin;
  plan->batcher.idle_spin = options.idle_spin;
  plan->batcher.inline_max_compute = options.inline_max_compute;
  plan->batcher.clock = options.clock;
  return plan;
}

ServedModel::~ServedModel() {
  if (batcher) batcher->Shutdown();
}

void ServedModel::Drain() { batcher->Shutdown(); }

namespace {

// Versions loaded without a ServerMetrics share these (nobody reads them).
ServerMetrics* OrphanMetrics() {
  static ServerMetrics* metrics = new ServerMetrics();
  return metrics;
}

}  // namespace

absl::StatusOr<std::shared_ptr<ServedModel>> LoadServedModel(const ModelPlan& plan,
                                                             const std::string& model_dir,
                                                             int64_t version,
                                                             const RepositoryOptions& options) {
  ServerMetrics* metrics = options.metrics != nullptr ? options.metrics : OrphanMetrics();
  const std::string name = fs::path(model_dir).filename().string();
  auto model = std::make_shared<ServedModel>();
  model->name = name;
  model->version = version;
  model->plan = plan;
  model->plan.spec.path = (fs::path(model_dir) / std::to_string(version) / "model.pt").string();
  model->metrics = metrics->ForModel(name, version);
  model->plan.batcher.on_batch = [m = model->metrics](const BatchInfo& info, const absl::Status&) {
    m->RecordBatch(info);
  };
  model->signature = model->plan.spec.signature;
  model->output_labels.resize(model->signature.outputs.size());
  for (const v1::TensorConfig& output : model->plan.config.output()) {
    if (output.label_filename().empty()) continue;
    absl::StatusOr<std::vector<std::string>> labels =
        ReadLabels(fs::path(model_dir) / output.label_filename(), output.name());
    if (!labels.ok()) return labels.status();
    for (size_t i = 0; i < model->signature.outputs.size(); ++i) {
      if (model->signature.outputs[i].name == output.name()) model->output_labels[i] = *labels;
    }
  }
  const absl::Time load_start = absl::Now();
  std::vector<std::unique_ptr<ModelInstance>> instances;
  for (int i = 0; i < model->plan.config.instance_count(); ++i) {
    absl::StatusOr<std::unique_ptr<ModelInstance>> instance = LoadTorchInstance(model->plan.spec);
    if (!instance.ok()) return instance.status();
    instances.push_back(std::move(*instance));
  }
  model->load_time = absl::Now() - load_start;
  const absl::Time warm_start = absl::Now();
  absl::StatusOr<std::vector<WarmUpSample>> samples =
      ReadWarmUpSamples(model->plan.config, model->signature, model_dir);
  if (!samples.ok()) {
    return absl::Status(samples.status().code(),
                        absl::StrCat(model->plan.spec.path, ": ", samples.status().message()));
  }
  // Each instance is warmed up on the executor thread that will run it (see
  // DynamicBatcher::Create), all instances at once.
  std::vector<std::string> skipped(instances.size());
  const ModelSignature& signature = model->signature;
  const std::vector<int>& batch_sizes = model->plan.warmup_batch_sizes;
  auto warm_up = [&](size_t index, ModelInstance& instance) {
    absl::Status warm = RunWarmUpSamples(instance, signature, *samples);
    if (warm.ok()) warm = WarmUp(instance, signature, batch_sizes, &skipped[index]);
    return warm;
  };
  absl::StatusOr<std::unique_ptr<DynamicBatcher>> batcher =
      DynamicBatcher::Create(model->plan.batcher, std::move(instances), warm_up);
  if (!batcher.ok()) {
    return absl::Status(batcher.status().code(),
                        absl::StrCat(model->plan.spec.path, ": ", batcher.status().message()));
  }
  model->batcher = std::move(*batcher);
  if (!skipped[0].empty()) {
    // Every instance guesses the same shapes: one warning says it.
    Log(LogLevel::kWarning, "warm_up_skipped",
        {{"model", name}, {"version", version}, {"reason", skipped[0]}});
  }
  model->warmup_time = absl::Now() - warm_start;
  metrics->RecordLoad(name, version, model->load_time, model->warmup_time);
  if (model->plan.config.response_cache().max_bytes() > 0) {
    ResponseCacheOptions cache;
    cache.max_bytes = model->plan.config.response_cache().max_bytes();
    model->cache = std::make_unique<ResponseCache>(cache);
  }
  const v1::ModelConfig& c = model->plan.config;
  Log(LogLevel::kInfo, "model_loaded",
      {{"model", name},
       {"version", version},
       {"device", c.device()},
       {"instances", c.instance_count()},
       {"max_batch_size", c.max_batch_size()},
       {"max_queue_delay_us", c.max_queue_delay_microseconds()},
       {"max_queue_size", c.max_queue_size()},
       {"intra_op_threads", c.intra_op_threads()},
       {"optimize_for_inference", c.optimize_for_inference() ? "true" : "false"},
       {"warmup_batch_sizes", absl::StrJoin(c.warmup_batch_sizes(), ",")},
       {"warmup_samples", c.warmup_size()},
       {"load_ms", absl::ToDoubleMilliseconds(model->load_time)},
       {"warmup_ms", absl::ToDoubleMilliseconds(model->warmup_time)}});
  return model;
}

absl::StatusOr<std::vector<ModelOnDisk>> ScanRepository(const std::string& root_path,
                                                        bool log_skipped) {
  std::error_code ec;
  const fs::path root(root_path);
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat(root_path, ": model repository is not a directory"));
  }
  std::vector<ModelOnDisk> models;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    const char* skip = nullptr;
    if (name.empty() || name[0] == '.') {
      skip = "hidden";
    } else if (!entry.is_directory(ec)) {
      skip = "not a directory";
    } else if (!fs::exists(entry.path() / "config.pbtxt", ec)) {
      skip = "no config.pbtxt";
    }
    if (skip != nullptr) {
      if (log_skipped) {
        Log(LogLevel::kInfo, "repository_entry_skipped", {{"entry", name}, {"reason", skip}});
      }
      continue;
    }
    ModelOnDisk model;
    model.name = name;
    model.dir = entry.path().string();
    model.config_path = (entry.path() / "config.pbtxt").string();
    absl::StatusOr<std::string> text = ReadText(model.config_path);
    if (text.ok()) model.config_text = std::move(*text);
    for (const auto& version_entry : fs::directory_iterator(entry.path(), ec)) {
      int64_t v = 0;
      if (!version_entry.is_directory(ec) ||
          !absl::SimpleAtoi(version_entry.path().filename().string(), &v) || v <= 0 ||
          version_entry.path().filename().string() != std::to_string(v)) {
        continue;
      }
      VersionOnDisk version;
      version.version = v;
      const fs::path file = version_entry.path() / "model.pt";
      std::error_code file_ec;
      const uintmax_t size = fs::file_size(file, file_ec);
      if (!file_ec) {
        const auto mtime = fs::last_write_time(file, file_ec).time_since_epoch().count();
        version.fingerprint = absl::StrCat(size, "@", mtime);
        version.complete = EndsWithZipDirectory(file, size);
      }
      model.versions.push_back(version);
    }
    std::sort(model.versions.begin(), model.versions.end(),
              [](const VersionOnDisk& a, const VersionOnDisk& b) { return a.version < b.version; });
    models.push_back(std::move(model));
  }
  std::sort(models.begin(), models.end(),
            [](const ModelOnDisk& a, const ModelOnDisk& b) { return a.name < b.name; });
  return models;
}

absl::StatusOr<std::vector<int64_t>> SelectServedVersions(const v1::VersionPolicy& policy,
                                                          const ModelOnDisk& model, bool strict) {
  std::vector<int64_t> found;
  for (const VersionOnDisk& v : model.versions) found.push_back(v.version);
  if (found.empty()) {
    if (!strict) return found;
    return absl::InvalidArgumentError(
        absl::StrCat(model.dir, ": no version directories (expected ", model.dir, "/1/model.pt)"));
  }
  switch (policy.policy_case()) {
    case v1::VersionPolicy::kAll:
      return found;
    case v1::VersionPolicy::kSpecific: {
      std::vector<int64_t> chosen;
      for (int64_t v : policy.specific().versions()) {
        if (std::find(found.begin(), found.end(), v) == found.end()) {
          if (!strict) continue;
          return absl::InvalidArgumentError(absl::StrCat(model.dir, ": version_policy names version ",
                                                         v, " but only [", absl::StrJoin(found, ","),
                                                         "] exist"));
        }
        chosen.push_back(v);
      }
      std::sort(chosen.begin(), chosen.end());
      chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
      if (chosen.empty() && strict) {
        return absl::InvalidArgumentError(absl::StrCat(model.dir, ": version_policy.specific is empty"));
      }
      return chosen;
    }
    case v1::VersionPolicy::kLatest:
    case v1::VersionPolicy::POLICY_NOT_SET: {
      const size_t n = policy.policy_case() == v1::VersionPolicy::kLatest ? policy.latest() : 1;
      if (n == 0) {
        return absl::InvalidArgumentError(absl::StrCat(model.dir, ": version_policy.latest must be >= 1"));
      }
      if (found.size() > n) found.erase(found.begin(), found.end() - static_cast<std::ptrdiff_t>(n));
      return found;
    }
  }
  return found;
}

}  // namespace microbatch
