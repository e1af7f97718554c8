// The model repository on disk: config.pbtxt parsing and validation, the
// scan of model and version directories, and loading and warming one model
// version. Which versions are loaded when is the ModelManager's business
// (server/service/model_manager.h).
//
// Layout: <root>/<model>/config.pbtxt and <root>/<model>/<version>/model.pt,
// versions being positive integers.
#ifndef MICROBATCH_SERVER_SERVICE_MODEL_REPOSITORY_H_
#define MICROBATCH_SERVER_SERVICE_MODEL_REPOSITORY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "microbatch/v1/model_config.pb.h"
#include "server/backend/torch_backend.h"
#include "server/core/batcher.h"
#include "server/core/clock.h"
#include "server/core/lifecycle/manager.h"
#include "server/core/response_cache.h"
#include "server/core/signature.h"
#include "server/service/server_metrics.h"

namespace microbatch {

// A validated model config with every default filled in.
struct ModelPlan {
  v1::ModelConfig config;
  TorchModelSpec spec;  // path left empty: it differs per version
  BatcherOptions batcher;
  std::vector<int> warmup_batch_sizes;
};

// Checks `config` (read from `source`, used in messages) for the model in
// directory `model_name` and fills defaults. `default_intra_op_threads`
// applies when the config sets none; when that is 0 too, each instance gets
// cores / instance_count threads (at least 1). Errors are INVALID_ARGUMENT and start
// with `source`.
absl::StatusOr<ModelPlan> PlanModel(const v1::ModelConfig& config, const std::string& model_name,
                                    const std::string& source, int default_intra_op_threads);

// Parses protobuf text format; errors carry file:line:column.
absl::StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& path);

// One loaded and warmed model version: what a request's handle keeps alive.
// Immutable after load except for the batcher, which is thread-safe.
// Drain() (called by the lifecycle manager once the version left service)
// stops the batcher after it has run what was queued.
struct ServedModel final : public lifecycle::LoadedVersion {
  ~ServedModel() override;
  void Drain() override;

  std::string name;
  int64_t version = 0;
  ModelPlan plan;
  ModelSignature signature;
  // By output (signature order): the class labels of its label_filename, by
  // element index, for the classification extension; empty without one.
  std::vector<std::vector<std::string>> output_labels;
  std::unique_ptr<DynamicBatcher> batcher;
  absl::Duration load_time;
  absl::Duration warmup_time;
  // Never null.
  ModelMetrics* metrics = nullptr;
  // Null unless the config asks for a response cache. Dropped with the
  // version, entries included.
  std::unique_ptr<ResponseCache> cache;
};

struct RepositoryOptions {
  std::string root;
  // Intra-op threads for models whose config sets none; 0 keeps LibTorch's
  // default.
  int default_intra_op_threads = 0;
  // Time every model's batcher keeps between an answer's estimated end and
  // its deadline (BatcherOptions::deadline_margin). Default 5 ms.
  absl::Duration deadline_margin = absl::Milliseconds(5);
  // How long an idle executor polls for work before it sleeps
  // (BatcherOptions::idle_spin). Default 0.
  absl::Duration idle_spin = absl::ZeroDuration();
  // (BatcherOptions::inline_max_compute); zero: never. Default 50 us.
  absl::Duration inline_max_compute = absl::Microseconds(50);
  // Not owned. Default: the wall clock.
  Clock* clock = Clock::Real();
  // Not owned; must outlive every loaded version. Null: versions keep
  // metrics of their own that nobody reads.
  ServerMetrics* metrics = nullptr;
};

// Reads (with `source` in messages) and checks the config text of the model
// in directory `model_name`, and plans it with `options`' defaults.
absl::StatusOr<ModelPlan> PlanModelText(const std::string& text, const std::string& model_name,
                                        const std::string& source,
                                        const RepositoryOptions& options);

// Loads `version` of the planned model from <model_dir>/<version>/model.pt,
// warms it up and starts its batcher. Errors name the file.
absl::StatusOr<std::shared_ptr<ServedModel>> LoadServedModel(const ModelPlan& plan,
                                                             const std::string& model_dir,
                                                             int64_t version,
                                                             const RepositoryOptions& options);

// One version directory on disk.
struct VersionOnDisk {
  int64_t version = 0;
  // Size and modification time of model.pt ("" when it is missing).
  std::string fingerprint;
  // model.pt exists and ends with a complete zip directory (TorchScript
  // files are zip archives): a file still being copied does not.
  bool complete = false;
};

// One model directory on disk.
struct ModelOnDisk {
  std::string name;
  std::string dir;
  std::string config_path;
  std::string config_text;  // empty when unreadable
  std::vector<VersionOnDisk> versions;  // ascending
};

// Every model directory under `root` (a directory with a config.pbtxt),
// ascending by name. Other entries (lost+found, dot-directories, stray files)
// are skipped with a log line when `log_skipped`. Version directories are
// the positive integers; others (a temporary ".3.tmp" being copied) are not
// versions. NOT_FOUND when root is not a directory.
absl::StatusOr<std::vector<ModelOnDisk>> ScanRepository(const std::string& root, bool log_skipped);

// The versions of `model` that `policy` serves. With `strict`, a policy
// naming a version that is not on disk, or a model without versions, is
// INVALID_ARGUMENT (startup); otherwise such versions are left out.
absl::StatusOr<std::vector<int64_t>> SelectServedVersions(const v1::VersionPolicy& policy,
                                                          const ModelOnDisk& model, bool strict);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_MODEL_REPOSITORY_H_
