// The live model repository: which model versions are served, loaded and
// unloaded while the server runs, and the handles the request path gets.
//
// The state machine (lifecycle::LifecycleManager, torch-free, in the core)
// decides; this class feeds it from the repository on disk (a poller, or
// admin calls), loads versions with LibTorch (through LoadServedModel), and
// routes requests (labels, canary, shadow) on its published snapshots.
//
// Control modes (ModelControlOptions::mode):
// - kPoll: the repository is rescanned every poll_interval; new, removed and
//   changed versions and models are applied. A version directory is picked
//   up only when it is complete: its name is the version number (so a copy
//   under a temporary name, then a rename, is atomic), it holds model.pt,
//   that file ends with a complete zip directory (a TorchScript file still
//   being written does not) and is unchanged since the previous scan.
// - kExplicit: nothing changes after startup until LoadModel / UnloadModel.
#ifndef MICROBATCH_SERVER_SERVICE_MODEL_MANAGER_H_
#define MICROBATCH_SERVER_SERVICE_MODEL_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/lifecycle/manager.h"
#include "server/core/lifecycle/routing.h"
#include "server/core/sync.h"
#include "server/service/model_repository.h"

namespace microbatch {

enum class ControlMode { kPoll, kExplicit };

// "poll" / "explicit"; nullopt otherwise.
std::optional<ControlMode> ParseControlMode(absl::string_view text);

struct ModelControlOptions {
  // Default kPoll.
  ControlMode mode = ControlMode::kPoll;
  // kPoll: time between scans of the repository. Zero: no scans after
  // startup. Default 5 s.
  absl::Duration poll_interval = absl::Seconds(5);
  // How long a served version may be missing (from disk, or from the
  // version policy's choice) before it is unloaded; back within it, nothing
  // happens. Default 10 s.
  absl::Duration unload_grace = absl::Seconds(10);
  // kExplicit: the models loaded at startup; empty, or "*" alone (Triton's
  // --load-model=*), loads every model.
  std::vector<std::string> startup_models;
  // Threads loading versions (different models load concurrently). Default 2.
  int load_threads = 2;
  // How long startup waits for the startup models to be READY. Default 10 min.
  absl::Duration startup_timeout = absl::Minutes(10);
};

// What routing gave one request. Keep `snapshot` only until the work is
// handed to the batchers (it holds off drains); keep the handles until the
// answers.
struct RoutedRequest {
  std::shared_ptr<const lifecycle::ServingSnapshot> snapshot;
  std::shared_ptr<ServedModel> primary;
  // Set when the request is to be mirrored to a shadow version.
  std::shared_ptr<ServedModel> shadow;
};

// One row of the repository index.
struct ModelVersionIndex {
  std::string model;
  int64_t version = 0;
  // "LOADING", "READY", "UNLOADING", "UNAVAILABLE", "FAILED".
  std::string state;
  // Why (FAILED's error, "on disk, not loaded", ...); may be empty.
  std::string reason;
  // Labels naming this version.
  std::vector<std::string> labels;
  // Canary weight in percent of the unpinned traffic (0: none).
  double canary_percent = 0;
  // Shadow fraction (0: not the shadow).
  double shadow_fraction = 0;
  bool is_default = false;
};

// Thread-safe. Every method may be called from any thread; the admin
// methods block (never call them from a gRPC reaction).
class ModelManager {
 public:
  // Loads the startup models (every model in kPoll mode) and waits until
  // they are READY. Any version failing to load fails startup with that
  // version's error (the server does not start half-configured), as does a
  // bad config; NOT_FOUND when the repository is not a directory. An empty
  // repository starts with nothing served (a warning is logged).
  static absl::StatusOr<std::unique_ptr<ModelManager>> Start(const RepositoryOptions& repository,
                                                             const ModelControlOptions& control = {});
  // Shutdown().
  ~ModelManager();

  // --- The request path ---
  // Routes a request for `name` (a number, the default version, or a label)
  // with `routing_key` (sticky canary and shadow choice; may be empty).
  // NOT_FOUND names what is served.
  absl::StatusOr<RoutedRequest> Route(absl::string_view name, const lifecycle::VersionSelector& selector,
                                      absl::string_view routing_key) const;
  // A served version: `version` 0 is the default one. NOT_FOUND names what
  // is served.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(absl::string_view name, int64_t version) const;
  // The version `label` names when it is not empty (INVALID_ARGUMENT when
  // `version` is set too), else Find(name, version).
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(absl::string_view name, int64_t version,
                                                    absl::string_view label) const;
  // READY versions of `name`, ascending.
  std::vector<int64_t> Versions(absl::string_view name) const;
  // Every READY version, by name then version.
  std::vector<std::shared_ptr<const ServedModel>> All() const;

  // --- Administration ---
  ControlMode mode() const { return control_.mode; }
  // Every version of every model known to the lifecycle and, with
  // `include_disk`, every version directory on disk (a scan).
  std::vector<ModelVersionIndex> Index(bool include_disk = true) const;
  // kExplicit: loads (or reloads, after a config change) the versions the
  // model's policy selects on disk, and returns when all are READY (OK) or
  // one has FAILED (its error), or at `deadline` (DEADLINE_EXCEEDED). What
  // served before keeps serving until its replacement is READY, and keeps
  // serving if the load fails. FAILED_PRECONDITION in kPoll mode.
  absl::Status LoadModel(const std::string& name, absl::Time deadline);
  // kExplicit: unloads every version of the model once the requests queued
  // on it are answered; returns when they are unloaded.
  absl::Status UnloadModel(const std::string& name, absl::Time deadline);
  // Routing changes, atomic and effective when they return (no load):
  // NOT_FOUND for an unknown model, FAILED_PRECONDITION for a version that
  // is not READY, INVALID_ARGUMENT for a malformed label or weight.
  absl::Status SetLabel(const std::string& name, const std::string& label, int64_t version);
  absl::Status RemoveLabel(const std::string& name, const std::string& label);
  // Replaces the model's canaries; percents of the unpinned traffic.
  absl::Status SetCanary(const std::string& name, const std::vector<std::pair<int64_t, double>>& canary);
  // Sets (version > 0) or clears (version 0) the shadow.
  absl::Status SetShadow(const std::string& name, int64_t version, double fraction);
  // Scans the repository now (kPoll), as the poller would.
  void PollNow();

  // Stops polling, then unloads every version after it has answered what
  // was queued. Idempotent.
  void Shutdown();

 private:
  class Loader;
  // What the poller last saw of a model, to tell what changed.
  struct Seen {
    std::string config_text;
    // model.pt fingerprints of the versions last aspired.
    std::map<int64_t, std::string> fingerprints;
    // model.pt fingerprints of every version directory at the last scan.
    std::map<int64_t, std::string> observed;
    // The fingerprint each version had when it was last aspired, kept while
    // it is missing from disk: the same file back after a short absence is
    // wanted again at the next scan (inside the grace period), without
    // waiting a second scan for it to settle.
    std::map<int64_t, std::string> last_aspired;
    lifecycle::RoutingSpec config_routing;        // from config.pbtxt
    bool routing_applied = false;
  };

  ModelManager(RepositoryOptions repository, ModelControlOptions control);
  // Aspires the versions `model`'s config selects. `strict` at startup.
  absl::Status Aspire(const ModelOnDisk& model, bool strict, bool retry_failed,
                      std::vector<int64_t>* aspired);
  // Applies config routing that is pending (its versions may be READY now).
  void ApplyPendingRouting();
  void Scan(bool startup);
  void PollLoop();
  void OnPublish(const std::shared_ptr<const lifecycle::ServingSnapshot>& snapshot);

  const RepositoryOptions repository_;
  const ModelControlOptions control_;
  std::unique_ptr<Loader> loader_;
  std::unique_ptr<lifecycle::LifecycleManager> lifecycle_;
  mutable lifecycle::RouteCounter draws_;

  mutable Mutex mu_;
  CondVar wake_;
  std::map<std::string, Seen> seen_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool routing_pending_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, int64_t> default_versions_ ABSL_GUARDED_BY(mu_);
  std::thread poller_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_MODEL_MANAGER_H_
