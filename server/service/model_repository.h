// The model repository: config.pbtxt parsing and validation, loading and
// warming every served model version, and lookup by name and version.
//
// Layout: <root>/<model>/config.pbtxt and <root>/<model>/<version>/model.pt,
// versions being positive integers. A bad config or model file fails the
// whole load with an error naming the file and the problem: the server does
// not start half-configured (a Kubernetes rollout then stops at the first pod).
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

// One loaded and warmed model version. Immutable after load except for the
// batcher, which is thread-safe.
struct ServedModel {
  std::string name;
  int64_t version = 0;
  ModelPlan plan;
  ModelSignature signature;
  std::unique_ptr<DynamicBatcher> batcher;
  absl::Duration load_time;
  absl::Duration warmup_time;
  // Never null.
  ModelMetrics* metrics = nullptr;
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
  // Not owned. Default: the wall clock.
  Clock* clock = Clock::Real();
  // Not owned; must outlive the repository. Null: the repository keeps
  // metrics of its own that nobody reads.
  ServerMetrics* metrics = nullptr;
};

// Thread-safe: immutable after Load() except through Shutdown().
class ModelRepository {
 public:
  // Loads, warms up and starts a batcher for every served version of every
  // model under options.root.
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Load(const RepositoryOptions& options);

  // A handle to a served version: `version` 0 selects the highest served
  // version. NOT_FOUND names what exists. The handle keeps the version's
  // memory alive for as long as the caller holds it.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(absl::string_view name, int64_t version) const;
  // Every served version, ordered by name then version.
  std::vector<std::shared_ptr<const ServedModel>> All() const;
  // Served versions of `name`, ascending.
  std::vector<int64_t> Versions(absl::string_view name) const;

  // Stops every batcher after it has run what was queued. Idempotent.
  void Shutdown();

 private:
  std::unique_ptr<ServerMetrics> own_metrics_;
  // name -> version -> model
  std::map<std::string, std::map<int64_t, std::shared_ptr<ServedModel>>, std::less<>> models_;
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_MODEL_REPOSITORY_H_
