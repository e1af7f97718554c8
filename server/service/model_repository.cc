#include "server/service/model_repository.h"

#include "server/core/text.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/core/log.h"
#include "server/service/convert.h"

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
  }
  return absl::OkStatus();
}

TensorSpec ToSpec(const v1::TensorConfig& t) {
  return TensorSpec{t.name(), FromProtoDType(t.dtype()), {t.dims().begin(), t.dims().end()}};
}

// Numeric version directories under `model_dir`, ascending.
std::vector<int64_t> FindVersions(const fs::path& model_dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
    int64_t v;
    if (entry.is_directory() && absl::SimpleAtoi(entry.path().filename().string(), &v) && v > 0) {
      versions.push_back(v);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<std::vector<int64_t>> SelectVersions(const v1::VersionPolicy& policy,
                                                     std::vector<int64_t> found,
                                                     const std::string& model_dir) {
  if (found.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir, ": no version directories (expected ", model_dir, "/1/model.pt)"));
  }
  switch (policy.policy_case()) {
    case v1::VersionPolicy::kAll:
      return found;
    case v1::VersionPolicy::kSpecific: {
      std::vector<int64_t> chosen;
      for (int64_t v : policy.specific().versions()) {
        if (std::find(found.begin(), found.end(), v) == found.end()) {
          return absl::InvalidArgumentError(absl::StrCat(model_dir, ": version_policy names version ",
                                                         v, " but only [", absl::StrJoin(found, ","),
                                                         "] exist"));
        }
        chosen.push_back(v);
      }
      std::sort(chosen.begin(), chosen.end());
      chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
      if (chosen.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(model_dir, ": version_policy.specific is empty"));
      }
      return chosen;
    }
    case v1::VersionPolicy::kLatest:
    case v1::VersionPolicy::POLICY_NOT_SET: {
      const size_t n = policy.policy_case() == v1::VersionPolicy::kLatest ? policy.latest() : 1;
      if (n == 0) {
        return absl::InvalidArgumentError(absl::StrCat(model_dir, ": version_policy.latest must be >= 1"));
      }
      if (found.size() > n) found.erase(found.begin(), found.end() - n);
      return found;
    }
  }
  return found;
}

}  // namespace

absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the model config"));
  std::stringstream text;
  text << in.rdbuf();
  v1::ModelConfig config;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors(path);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text.str(), &config)) {
    return absl::InvalidArgumentError(errors.first().empty() ? absl::StrCat(path, ": parse error")
                                                             : errors.first());
  }
  return config;
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
  if (c.platform().empty()) c.set_platform("torchscript");
  if (c.platform() != "torchscript") {
    return error("platform '", c.platform(), "' is not supported (only \"torchscript\")");
  }
  if (absl::Status s = CheckTensors(c.input(), "input", source); !s.ok()) return s;
  if (absl::Status s = CheckTensors(c.output(), "output", source); !s.ok()) return s;

  if (c.max_batch_size() == 0) c.set_max_batch_size(kDefaultMaxBatchSize);
  if (c.max_batch_size() < 1) return error("max_batch_size must be >= 1, got ", c.max_batch_size());
  if (c.max_queue_delay_microseconds() < 0) return error("max_queue_delay_microseconds must be >= 0");
  if (c.max_queue_size() == 0) c.set_max_queue_size(kDefaultMaxQueueSize);
  if (c.max_queue_size() < 1) return error("max_queue_size must be >= 1, got ", c.max_queue_size());
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
  if (c.warmup_batch_sizes().empty()) {
    c.add_warmup_batch_sizes(1);
    if (c.max_batch_size() > 1) c.add_warmup_batch_sizes(c.max_batch_size());
  }
  for (int size : c.warmup_batch_sizes()) {
    if (size < 1 || size > c.max_batch_size()) {
      return error("warmup batch size ", size, " is outside [1, max_batch_size=",
                   c.max_batch_size(), "]");
    }
  }

  TorchModelSpec& spec = plan.spec;
  spec.device = c.device();
  spec.intra_op_threads = c.intra_op_threads();
  spec.optimize_for_inference = c.optimize_for_inference();
  std::vector<std::string> arg_owner(c.input_size());
  for (const v1::TensorConfig& t : c.input()) {
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

  plan.batcher.max_batch_size = c.max_batch_size();
  plan.batcher.max_queue_delay = absl::Microseconds(c.max_queue_delay_microseconds());
  plan.batcher.max_queue_size = c.max_queue_size();
  plan.warmup_batch_sizes.assign(c.warmup_batch_sizes().begin(), c.warmup_batch_sizes().end());
  return plan;
}

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Load(
    const RepositoryOptions& options) {
  std::error_code ec;
  const fs::path root(options.root);
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat(options.root, ": model repository is not a directory"));
  }
  // A model is a directory with a config.pbtxt. Anything else at the root
  // (lost+found on a fresh volume, dot-directories, stray files) is skipped
  // with a log line, never fatal.
  std::vector<fs::path> model_dirs;
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
      Log(LogLevel::kInfo, "repository_entry_skipped", {{"entry", name}, {"reason", skip}});
      continue;
    }
    model_dirs.push_back(entry.path());
  }
  std::sort(model_dirs.begin(), model_dirs.end());
  if (model_dirs.empty()) {
    return absl::NotFoundError(absl::StrCat(
        options.root, ": no model directories found (a model is a directory with a config.pbtxt)"));
  }

  auto repository = std::make_unique<ModelRepository>();
  ServerMetrics* metrics = options.metrics;
  if (metrics == nullptr) {
    repository->own_metrics_ = std::make_unique<ServerMetrics>();
    metrics = repository->own_metrics_.get();
  }
  for (const fs::path& dir : model_dirs) {
    const std::string name = dir.filename().string();
    const std::string config_path = (dir / "config.pbtxt").string();
    absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(config_path);
    if (!config.ok()) return config.status();
    absl::StatusOr<ModelPlan> plan =
        PlanModel(*config, name, config_path, options.default_intra_op_threads);
    if (!plan.ok()) return plan.status();
    plan->batcher.deadline_margin = options.deadline_margin;
    plan->batcher.idle_spin = options.idle_spin;
    absl::StatusOr<std::vector<int64_t>> versions =
        SelectVersions(plan->config.version_policy(), FindVersions(dir), dir.string());
    if (!versions.ok()) return versions.status();

    for (int64_t version : *versions) {
      auto model = std::make_shared<ServedModel>();
      model->name = name;
      model->version = version;
      model->plan = *plan;
      model->plan.spec.path = (dir / std::to_string(version) / "model.pt").string();
      model->plan.batcher.clock = options.clock;
      model->metrics = metrics->ForModel(name, version);
      model->plan.batcher.on_batch = [m = model->metrics](const BatchInfo& info,
                                                          const absl::Status& status) {
        m->RecordBatch(info);
      };
      model->signature = model->plan.spec.signature;
      const absl::Time load_start = absl::Now();
      std::vector<std::unique_ptr<ModelInstance>> instances;
      for (int i = 0; i < model->plan.config.instance_count(); ++i) {
        absl::StatusOr<std::unique_ptr<ModelInstance>> instance =
            LoadTorchInstance(model->plan.spec);
        if (!instance.ok()) return instance.status();
        instances.push_back(std::move(*instance));
      }
      model->load_time = absl::Now() - load_start;
      const absl::Time warm_start = absl::Now();
      for (auto& instance : instances) {
        absl::Status warm = WarmUp(*instance, model->signature, model->plan.warmup_batch_sizes);
        if (!warm.ok()) {
          return absl::Status(warm.code(), absl::StrCat(model->plan.spec.path, ": ", warm.message()));
        }
      }
      model->warmup_time = absl::Now() - warm_start;
      metrics->RecordLoad(name, version, model->load_time, model->warmup_time);
      model->batcher = std::make_unique<DynamicBatcher>(model->plan.batcher, std::move(instances));
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
           {"load_ms", absl::ToDoubleMilliseconds(model->load_time)},
           {"warmup_ms", absl::ToDoubleMilliseconds(model->warmup_time)}});
      repository->models_[name][version] = std::move(model);
    }
  }
  return repository;
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelRepository::Find(absl::string_view name, int64_t version) const {
  auto it = models_.find(name);
  if (it == models_.end()) {
    std::vector<std::string> names;
    for (const auto& [n, versions] : models_) names.push_back("'" + n + "'");
    return absl::NotFoundError(absl::StrCat("model '", ClientText(name), "' is not served; models: ",
                                            absl::StrJoin(names, ", ")));
  }
  if (version == 0) return it->second.rbegin()->second;
  auto v = it->second.find(version);
  if (v == it->second.end()) {
    return absl::NotFoundError(absl::StrCat("model '", ClientText(name), "' has no served version ", version,
                                            "; served versions: [",
                                            absl::StrJoin(Versions(name), ","), "]"));
  }
  return v->second;
}

std::vector<std::shared_ptr<const ServedModel>> ModelRepository::All() const {
  std::vector<std::shared_ptr<const ServedModel>> all;
  for (const auto& [name, versions] : models_) {
    for (const auto& [v, model] : versions) all.push_back(model);
  }
  return all;
}

std::vector<int64_t> ModelRepository::Versions(absl::string_view name) const {
  std::vector<int64_t> versions;
  auto it = models_.find(name);
  if (it != models_.end()) {
    for (const auto& [v, model] : it->second) versions.push_back(v);
  }
  return versions;
}

void ModelRepository::Shutdown() {
  for (auto& [name, versions] : models_) {
    for (auto& [v, model] : versions) model->batcher->Shutdown();
  }
}

}  // namespace microbatch
