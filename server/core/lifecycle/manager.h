// Model lifecycle: which versions of which models are loaded, the state of
// each (LOADING, READY, UNLOADING, UNAVAILABLE, FAILED + reason), and the
// immutable snapshot of what is served that the request path reads.
//
// Rules the manager keeps (each a bug seen in Triton or TF Serving):
// - load before unload: a version leaving the aspired set is unloaded only
//   once an aspired version of its model is READY (or the model has no
//   aspired version left), so replacing a version never leaves a gap;
// - a failed load changes nothing that serves: the version becomes FAILED
//   with the loader's reason, and is not tried again with the same config
//   unless asked (AspiredVersions::retry_failed);
// - a version missing from the aspired set for less than
//   ManagerOptions::unload_grace is not unloaded (a half-replaced version
//   directory, a poll in the middle of a copy);
// - loads run on load threads (different models concurrently, the versions of
//   one model one after another, highest first); no input call waits for a
//   load or an unload;
// - an unloaded version first leaves the snapshot, then is drained
//   (LoadedVersion::Drain: no new work, queued and running work finishes)
//   once no snapshot still listing it is held, and only then is the
//   manager's handle dropped (the memory goes with the last handle; when the
//   version reads UNAVAILABLE, only requests still holding it keep it);
// - a label, canary or shadow can only name a READY version
//   (FAILED_PRECONDITION otherwise), and a version so named stays loaded
//   even when it leaves the aspired set, until nothing names it; relabeling
//   loads nothing and is visible in the snapshot when the call returns.
#ifndef MICROBATCH_SERVER_CORE_LIFECYCLE_MANAGER_H_
#define MICROBATCH_SERVER_CORE_LIFECYCLE_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/clock.h"
#include "server/core/lifecycle/routing.h"
#include "server/core/sync.h"

namespace microbatch::lifecycle {

class ThreadPool;
class SnapshotTracker;

enum class VersionState {
  kLoading,      // queued for or in VersionLoader::Load
  kReady,        // loaded and in the snapshot: serves requests
  kUnloading,    // out of the snapshot, draining
  kUnavailable,  // not loaded (never, or unloaded)
  kFailed,       // the last load failed; see VersionStatus::error
};

// "LOADING", "READY", "UNLOADING", "UNAVAILABLE", "FAILED".
absl::string_view VersionStateName(VersionState state);

// One loaded model version (the server wraps a version's batcher in it).
// Implementations must be thread-safe: requests use it while the manager
// drains it.
class LoadedVersion {
 public:
  virtual ~LoadedVersion() = default;
  // Stops taking new work (later work is refused) and blocks until every
  // queued or running piece of work has finished. Called once, by the
  // manager, from an unload thread, after the version has left the snapshot
  // and no snapshot that still lists it is held (or
  // ManagerOptions::snapshot_release_timeout has passed).
  virtual void Drain() = 0;
};

// Loads model versions; injected so tests need no model files.
class VersionLoader {
 public:
  virtual ~VersionLoader() = default;
  // Loads (and warms up) `version` of `model` with `config` (the opaque
  // string given in AspiredVersions). Called from a load thread, for one
  // version of a given model at a time, different models concurrently; may
  // block as long as loading takes. An error becomes the version's FAILED
  // reason; returning null counts as an INTERNAL error. Must not call the
  // manager's blocking methods (Await*, WaitUntil, Shutdown).
  virtual absl::StatusOr<std::shared_ptr<LoadedVersion>> Load(const std::string& model,
                                                             int64_t version,
                                                             const std::string& config) = 0;
};

// The wanted versions of one model (what a repository poller or an admin
// call decided, e.g. with SelectVersions()).
struct AspiredVersions {
  // The versions to serve (> 0); empty: unload the whole model (and clear its
  // labels, canaries and shadow).
  std::vector<int64_t> versions;
  // Handed to VersionLoader::Load (e.g. config.pbtxt's text). When it
  // changes, READY versions are reloaded (the new load replaces the old one
  // when READY; a failed reload keeps the old one) and FAILED ones retried.
  std::string config;
  // Load FAILED versions again even though `config` is unchanged (an
  // explicit LoadModel).
  bool retry_failed = false;
  // Unload versions that are not (or no longer) aspired without waiting for
  // ManagerOptions::unload_grace (an explicit UnloadModel).
  bool skip_grace = false;
};

// The state of one version, for RepositoryIndex and waiters. A value type.
struct VersionStatus {
  std::string model;
  int64_t version = 0;
  VersionState state = VersionState::kUnavailable;
  // Human-readable detail: why LOADING ("queued", "loading"), why a version
  // that is not aspired is still READY, a failed reload, FAILED's error.
  std::string reason;
  // FAILED (and READY after a failed reload): the loader's error.
  absl::Status error;
  bool aspired = false;
  // READY with an older config; a reload is queued or running.
  bool reload_pending = false;

  std::string DebugString() const;
};

// The READY versions of one model and its routing table, as published.
struct ServedModel {
  std::map<int64_t, std::shared_ptr<LoadedVersion>> versions;  // every READY version
  RoutingTable routing;
};

// What the request path gets from ServingSnapshot::Acquire.
struct Acquired {
  int64_t version = 0;
  std::shared_ptr<LoadedVersion> handle;
  RouteKind kind = RouteKind::kDefault;
  // Set when the request is to be mirrored (see Route()).
  int64_t shadow_version = 0;
  std::shared_ptr<LoadedVersion> shadow;
};

// An immutable view of everything served, published by the manager on every
// change. Thread-safe (const). Hold one only while looking up and handing
// work to a version (keep the handle, not the snapshot): while a snapshot is
// held, no version it lists is drained, so work given to a version acquired
// from it is accepted; a held snapshot delays unloads by up to
// ManagerOptions::snapshot_release_timeout.
class ServingSnapshot {
 public:
  // Increases by one with every publish.
  uint64_t generation() const { return generation_; }
  // Null when the model is not served (no READY version and none aspired).
  // The pointer lives as long as the snapshot.
  const ServedModel* Find(absl::string_view model) const;
  std::vector<std::string> ModelNames() const;
  // Routes a request (see Route()) and returns the handles. NOT_FOUND when
  // the model is unknown (naming some served models), else Route's errors.
  absl::StatusOr<Acquired> Acquire(absl::string_view model, const VersionSelector& selector,
                                   absl::string_view routing_key = {}, uint64_t draw = 0) const;

 private:
  friend class LifecycleManager;
  ServingSnapshot() = default;

  uint64_t generation_ = 0;
  std::map<std::string, std::shared_ptr<const ServedModel>, std::less<>> models_;
};

struct ManagerOptions {
  // Threads running VersionLoader::Load. Default 2.
  int load_threads = 2;
  // Threads draining unloaded versions (a drain waits for running work).
  // Default 2.
  int unload_threads = 2;
  // How long a READY version may be missing from its aspired set before it
  // is unloaded; coming back within it keeps it loaded. A directory poller
  // should use at least two poll intervals. Default 10 s.
  absl::Duration unload_grace = absl::Seconds(10);
  // How long an unload waits for the snapshots that still list the version
  // to be released before draining it anyway (logging a warning). Default
  // 30 s.
  absl::Duration snapshot_release_timeout = absl::Seconds(30);
  // The label that, when set, names a model's default version (see
  // RoutingTable::Build); empty: none. Default "stable".
  std::string default_label = std::string(kDefaultLabel);
  // Not owned; must outlive the manager. Grace periods, deadlines and
  // timeouts use it. Default: the wall clock.
  Clock* clock = Clock::Real();
  // Optional. Called after snapshots are published, in increasing generation
  // order, never concurrently, without the manager's lock (so it may call
  // the manager, but not wait in it). Publishes in quick succession may be
  // reported once, with the newest snapshot. Called from whichever thread
  // published: an input call, a load or unload thread, the timer thread.
  std::function<void(const std::shared_ptr<const ServingSnapshot>&)> on_publish;
};

// The lifecycle state machine. Thread-safe: every method may be called from
// any thread. Input calls (SetAspiredVersions, SetLabel, ...) never wait for
// a load or unload: they record the change, start what it needs and publish
// the resulting snapshot before returning. Snapshot() takes a short mutex
// only. Every state change writes one log line (event
// "model_version_state": model, version, state, from, reason).
class LifecycleManager {
 public:
  // `loader` is not owned and must outlive the manager.
  explicit LifecycleManager(VersionLoader* loader, ManagerOptions options = {});
  // Shutdown().
  ~LifecycleManager();
  LifecycleManager(const LifecycleManager&) = delete;
  LifecycleManager& operator=(const LifecycleManager&) = delete;

  // Replaces the aspired versions of `model` (see AspiredVersions and the
  // rules above). New versions become LOADING before the call returns.
  // INVALID_ARGUMENT for a version <= 0; FAILED_PRECONDITION after Shutdown.
  absl::Status SetAspiredVersions(absl::string_view model, AspiredVersions aspired);

  // Routing changes: atomic, load nothing, published before they return.
  // NOT_FOUND for an unknown model, INVALID_ARGUMENT for a malformed label,
  // weight or fraction, FAILED_PRECONDITION when a named version is not READY.
  absl::Status SetLabel(absl::string_view model, absl::string_view label, int64_t version);
  // NOT_FOUND when the model has no such label.
  absl::Status RemoveLabel(absl::string_view model, absl::string_view label);
  // Replaces the canaries (empty: none).
  absl::Status SetCanary(absl::string_view model, std::vector<CanaryWeight> canary);
  // Sets or (nullopt) clears the shadow.
  absl::Status SetShadow(absl::string_view model, std::optional<ShadowSpec> shadow);
  // Replaces labels, canaries and shadow at once.
  absl::Status SetRouting(absl::string_view model, RoutingSpec spec);
  // NOT_FOUND for an unknown model.
  absl::StatusOr<RoutingSpec> GetRouting(absl::string_view model) const;

  // The current snapshot; never null.
  std::shared_ptr<const ServingSnapshot> Snapshot() const;

  // Every version of every model the manager has seen, by model then version.
  std::vector<VersionStatus> Index() const;
  // NOT_FOUND when the manager has never seen that version.
  absl::StatusOr<VersionStatus> GetStatus(absl::string_view model, int64_t version) const;

  // Blocks until `done` is true of the version's status (a version never
  // seen reads as UNAVAILABLE, not aspired), then returns that status; or
  // DEADLINE_EXCEEDED with the last status once the clock reaches
  // `deadline`; or CANCELLED when the manager shuts down first. Never
  // returns before one of these. `done` runs with the manager's lock held: it
  // must not call the manager.
  absl::StatusOr<VersionStatus> WaitUntil(absl::string_view model, int64_t version,
                                          std::function<bool(const VersionStatus&)> done,
                                          absl::Time deadline);
  // WaitUntil READY (OK), FAILED (the load's error, naming model and
  // version) or UNAVAILABLE and not aspired (FAILED_PRECONDITION: nothing
  // will load it). A READY version with a reload pending counts as READY.
  absl::Status AwaitReady(absl::string_view model, int64_t version, absl::Time deadline);
  // WaitUntil the version is not loaded (UNAVAILABLE or FAILED): OK.
  absl::Status AwaitUnloaded(absl::string_view model, int64_t version, absl::Time deadline);
  // Blocks until nothing is queued, loading, reloading, draining or waiting
  // out a grace period; OK, or DEADLINE_EXCEEDED naming what is pending.
  absl::Status AwaitIdle(absl::Time deadline);

  // Refuses further input, waits for running loads (queued ones are
  // dropped), unloads and drains every version, and stops the threads.
  // Idempotent; blocks until done.
  void Shutdown();

 private:
  struct VersionSlot {
    VersionState state = VersionState::kUnavailable;
    std::string reason;
    // The last load's error, kept as code and text: an absl::Status shared
    // between threads is reference-counted inside Debian's abseil, which
    // ThreadSanitizer cannot see.
    absl::StatusCode error_code = absl::StatusCode::kOk;
    std::string error_message;
    std::shared_ptr<LoadedVersion> handle;  // READY
    std::string loaded_config;              // the config `handle` was loaded with
    bool has_failed_config = false;         // the last load with failed_config failed
    std::string failed_config;
    bool load_running = false;  // a Load() for this version is running
    bool reload_pending = false;
    bool retry_requested = false;
    bool aspired = false;
    bool skip_grace = false;
    absl::Time unaspired_since = absl::InfinitePast();
  };
  struct ModelSlot {
    std::map<int64_t, VersionSlot> versions;
    std::string config;
    RoutingSpec routing;
    bool load_running = false;
    bool dirty = false;  // the published ServedModel is out of date
    absl::Time next_wake = absl::InfiniteFuture();  // earliest grace period end
    std::shared_ptr<const ServedModel> published;
  };
  // A handle leaving service: drained once snapshots older than
  // `generation` are released; `unload` also ends the version's UNLOADING.
  struct Retire {
    std::string model;
    int64_t version = 0;
    std::shared_ptr<LoadedVersion> handle;
    bool unload = true;
    uint64_t generation = 0;
  };

  VersionStatus StatusOf(const std::string& model, int64_t version, const VersionSlot& slot) const;
  VersionStatus LookupStatus(absl::string_view model, int64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetState(const std::string& model, int64_t version, VersionSlot& slot, VersionState state,
                std::string reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Decides what `model` needs now: queues, starts a load, starts unloads.
  void Reconcile(const std::string& model, ModelSlot& m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartUnload(const std::string& model, int64_t version, VersionSlot& slot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes a new snapshot if a model changed, then schedules the drains
  // waiting for it.
  void Publish(bool force = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls on_publish with the newest snapshot if it has not seen it.
  void DeliverPublished();
  absl::Status UpdateRouting(absl::string_view model,
                             const std::function<absl::Status(RoutingSpec&)>& edit);
  void RunLoad(std::string model, int64_t version, std::string config);
  void RunRetire(std::shared_ptr<Retire> retire);
  void TimerLoop();

  VersionLoader* const loader_;
  const ManagerOptions options_;
  Clock* const clock_;
  const std::shared_ptr<SnapshotTracker> tracker_;
  int clock_listener_ = 0;

  mutable Mutex mu_;
  CondVar state_cv_;  // any state change, shutdown
  CondVar timer_cv_;  // a new grace deadline, shutdown
  std::map<std::string, ModelSlot, std::less<>> models_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::shared_ptr<Retire>> pending_retires_ ABSL_GUARDED_BY(mu_);
  int retires_running_ ABSL_GUARDED_BY(mu_) = 0;
  int loads_running_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_timer_ ABSL_GUARDED_BY(mu_) = false;

  mutable Mutex snap_mu_;
  std::shared_ptr<const ServingSnapshot> current_ ABSL_GUARDED_BY(snap_mu_);

  Mutex cb_mu_;
  bool delivering_ ABSL_GUARDED_BY(cb_mu_) = false;
  uint64_t delivered_ ABSL_GUARDED_BY(cb_mu_) = 0;

  std::unique_ptr<ThreadPool> load_pool_;
  std::unique_ptr<ThreadPool> unload_pool_;
  std::thread timer_;
};

}  // namespace microbatch::lifecycle

#endif  // MICROBATCH_SERVER_CORE_LIFECYCLE_MANAGER_H_
