#include "server/core/lifecycle/manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "server/core/lifecycle/thread_pool.h"
#include "server/core/log.h"

namespace microbatch::lifecycle {

// Which snapshot generations are still held by someone. Shared with the
// snapshots' deleters, which may run after the manager is gone. Thread-safe.
class SnapshotTracker {
 public:
  void Add(uint64_t generation) {
    MutexLock lock(&mu_);
    live_.insert(generation);
  }
  void Remove(uint64_t generation) {
    MutexLock lock(&mu_);
    live_.erase(generation);
    cv_.NotifyAll();
  }
  // Wakes waiters to re-check the clock.
  void Wake() {
    MutexLock lock(&mu_);
    cv_.NotifyAll();
  }
  // Blocks until no snapshot older than `generation` is held (true) or the
  // clock reaches `deadline` (false).
  bool WaitOlderReleased(uint64_t generation, Clock* clock, absl::Time deadline) {
    MutexLock lock(&mu_);
    while (!live_.empty() && *live_.begin() < generation) {
      if (clock->Now() >= deadline) return false;
      clock->WaitUntil(&cv_, &mu_, deadline);
    }
    return true;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::set<uint64_t> live_ ABSL_GUARDED_BY(mu_);
};

namespace {

constexpr size_t kMaxNamesInErrors = 8;
// Starts the reason of a READY version that is no longer aspired.
constexpr absl::string_view kNotAspired = "not aspired; ";

std::string NameList(const std::vector<std::string>& names) {
  if (names.empty()) return "none";
  if (names.size() <= kMaxNamesInErrors) return absl::StrJoin(names, ", ");
  return absl::StrCat(absl::StrJoin(names.begin(), names.begin() + kMaxNamesInErrors, ", "),
                      " and ", names.size() - kMaxNamesInErrors, " more");
}

}  // namespace

absl::string_view VersionStateName(VersionState state) {
  switch (state) {
    case VersionState::kLoading: return "LOADING";
    case VersionState::kReady: return "READY";
    case VersionState::kUnloading: return "UNLOADING";
    case VersionState::kUnavailable: return "UNAVAILABLE";
    case VersionState::kFailed: return "FAILED";
  }
  return "UNKNOWN";
}

std::string VersionStatus::DebugString() const {
  std::string out = absl::StrCat("model '", model, "' version ", version, " ",
                                 VersionStateName(state));
  if (!reason.empty()) absl::StrAppend(&out, " (", reason, ")");
  return out;
}

// ---------------------------------------------------------------- snapshot

const ServedModel* ServingSnapshot::Find(absl::string_view model) const {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : it->second.get();
}

std::vector<std::string> ServingSnapshot::ModelNames() const {
  std::vector<std::string> names;
  names.reserve(models_.size());
  for (const auto& [name, m] : models_) names.push_back(name);
  return names;
}

absl::StatusOr<Acquired> ServingSnapshot::Acquire(absl::string_view model,
                                                  const VersionSelector& selector,
                                                  absl::string_view routing_key,
                                                  uint64_t draw) const {
  const ServedModel* served = Find(model);
  if (served == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("model '", model, "' is not served (served: ", NameList(ModelNames()), ")"));
  }
  absl::StatusOr<RouteResult> route = Route(served->routing, selector, routing_key, draw);
  if (!route.ok()) return route.status();
  Acquired out;
  out.version = route->version;
  out.kind = route->kind;
  auto it = served->versions.find(route->version);
  if (it == served->versions.end()) {
    return absl::InternalError(absl::StrCat("model '", model, "': routed to version ",
                                            route->version, ", which has no handle"));
  }
  out.handle = it->second;
  if (route->shadow_version) {
    auto shadow = served->versions.find(*route->shadow_version);
    if (shadow != served->versions.end()) {
      out.shadow_version = shadow->first;
      out.shadow = shadow->second;
    }
  }
  return out;
}

// ----------------------------------------------------------------- manager

LifecycleManager::LifecycleManager(VersionLoader* loader, ManagerOptions options)
    : loader_(loader),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      tracker_(std::make_shared<SnapshotTracker>()) {
  load_pool_ = std::make_unique<ThreadPool>(options_.load_threads);
  unload_pool_ = std::make_unique<ThreadPool>(options_.unload_threads);
  {
    MutexLock lock(&mu_);
    Publish(/*force=*/true);
  }
  clock_listener_ = clock_->AddListener([this, tracker = tracker_] {
    {
      MutexLock lock(&mu_);
      state_cv_.NotifyAll();
      timer_cv_.NotifyAll();
    }
    tracker->Wake();
  });
  timer_ = std::thread([this] { TimerLoop(); });
}

LifecycleManager::~LifecycleManager() { Shutdown(); }

VersionStatus LifecycleManager::StatusOf(const std::string& model, int64_t version,
                                         const VersionSlot& slot) const {
  VersionStatus status;
  status.model = model;
  status.version = version;
  status.state = slot.state;
  status.reason = slot.reason;
  status.error = absl::Status(slot.error_code, slot.error_message);
  status.aspired = slot.aspired;
  status.reload_pending = slot.reload_pending;
  return status;
}

VersionStatus LifecycleManager::LookupStatus(absl::string_view model, int64_t version) const {
  auto it = models_.find(model);
  if (it != models_.end()) {
    auto v = it->second.versions.find(version);
    if (v != it->second.versions.end()) return StatusOf(it->first, version, v->second);
  }
  VersionStatus status;
  status.model = std::string(model);
  status.version = version;
  status.state = VersionState::kUnavailable;
  status.reason = "unknown version";
  return status;
}

void LifecycleManager::SetState(const std::string& model, int64_t version, VersionSlot& slot,
                                VersionState state, std::string reason) {
  const VersionState from = slot.state;
  slot.state = state;
  slot.reason = std::move(reason);
  if ((from == VersionState::kReady) != (state == VersionState::kReady)) {
    models_.find(model)->second.dirty = true;
  }
  const LogLevel level = state == VersionState::kFailed ? LogLevel::kWarning : LogLevel::kInfo;
  if (slot.reason.empty()) {
    Log(level, "model_version_state",
        {{"model", model},
         {"version", version},
         {"state", VersionStateName(state)},
         {"from", VersionStateName(from)}});
  } else {
    Log(level, "model_version_state",
        {{"model", model},
         {"version", version},
         {"state", VersionStateName(state)},
         {"from", VersionStateName(from)},
         {"reason", slot.reason}});
  }
  state_cv_.NotifyAll();
}

void LifecycleManager::Reconcile(const std::string& model, ModelSlot& m) {
  const absl::Time now = clock_->Now();

  // Queue what the aspired set wants loaded; drop queued loads it no longer
  // wants.
  for (auto& [version, s] : m.versions) {
    const bool failed_with_config = s.has_failed_config && s.failed_config == m.config;
    const bool may_load = s.retry_requested || !failed_with_config;
    if (s.aspired && !shutting_down_) {
      if (s.state == VersionState::kUnavailable ||
          (s.state == VersionState::kFailed && may_load)) {
        SetState(model, version, s, VersionState::kLoading, "queued");
      } else if (s.state == VersionState::kReady && !s.load_running) {
        s.reload_pending = s.loaded_config != m.config && may_load;
        if (absl::StartsWith(s.reason, kNotAspired)) s.reason.clear();  // aspired again
      }
    } else {
      if (s.state == VersionState::kLoading && !s.load_running) {
        SetState(model, version, s, VersionState::kUnavailable,
                 shutting_down_ ? "shut down" : "no longer aspired");
      }
      if (!s.load_running) s.reload_pending = false;
    }
    s.retry_requested = false;
  }

  // One load per model at a time, the highest version first.
  if (!m.load_running && !shutting_down_) {
    for (auto it = m.versions.rbegin(); it != m.versions.rend(); ++it) {
      const int64_t version = it->first;
      VersionSlot& s = it->second;
      if (!s.aspired || s.load_running) continue;
      const bool fresh = s.state == VersionState::kLoading;
      const bool reload = s.state == VersionState::kReady && s.reload_pending;
      if (!fresh && !reload) continue;
      s.load_running = true;
      m.load_running = true;
      ++loads_running_;
      if (fresh) {
        s.reason = "loading";
      } else {
        Log(LogLevel::kInfo, "model_version_reload", {{"model", model}, {"version", version}});
      }
      load_pool_->Schedule([this, model, version, config = m.config] {
        RunLoad(model, version, config);
      });
      break;
    }
  }

  // Unload READY versions that are not aspired, when nothing needs them.
  bool any_aspired = false;
  bool aspired_ready = false;
  for (const auto& [version, s] : m.versions) {
    if (!s.aspired) continue;
    any_aspired = true;
    if (s.state == VersionState::kReady) aspired_ready = true;
  }
  const std::set<int64_t> referenced = m.routing.ReferencedVersions();
  m.next_wake = absl::InfiniteFuture();
  for (auto& [version, s] : m.versions) {
    if (s.state != VersionState::kReady || s.aspired) continue;
    if (s.load_running) {
      s.reason = absl::StrCat(kNotAspired, "unloads once its reload ends");
      continue;
    }
    if (referenced.count(version) > 0) {
      s.reason = absl::StrCat(kNotAspired, "kept while a label, canary or shadow names it");
      continue;
    }
    if (any_aspired && !aspired_ready) {
      s.reason = absl::StrCat(kNotAspired, "kept until an aspired version is ready");
      continue;
    }
    const absl::Time due = s.unaspired_since + options_.unload_grace;
    if (!s.skip_grace && now < due) {
      s.reason = absl::StrCat(kNotAspired, "unloads at the end of its grace period, ",
                              absl::FormatTime(due));
      m.next_wake = std::min(m.next_wake, due);
      continue;
    }
    StartUnload(model, version, s);
  }
  if (m.next_wake != absl::InfiniteFuture()) timer_cv_.NotifyAll();
}

void LifecycleManager::StartUnload(const std::string& model, int64_t version, VersionSlot& s) {
  auto retire = std::make_shared<Retire>();
  retire->model = model;
  retire->version = version;
  retire->handle = std::move(s.handle);
  retire->unload = true;
  pending_retires_.push_back(std::move(retire));
  s.skip_grace = false;
  s.reload_pending = false;
  SetState(model, version, s, VersionState::kUnloading, "draining");
}

void LifecycleManager::Publish(bool force) {
  bool changed = force || !pending_retires_.empty();
  for (auto& [name, m] : models_) {
    if (!m.dirty) continue;
    m.dirty = false;
    changed = true;
    auto served = std::make_shared<ServedModel>();
    std::vector<int64_t> ready;
    bool any_aspired = false;
    for (const auto& [version, s] : m.versions) {
      any_aspired = any_aspired || s.aspired;
      if (s.state == VersionState::kReady && s.handle != nullptr) {
        served->versions[version] = s.handle;
        ready.push_back(version);
      }
    }
    if (ready.empty() && !any_aspired) {
      m.published = nullptr;
      continue;
    }
    absl::StatusOr<RoutingTable> table =
        RoutingTable::Build(name, ready, m.routing, options_.default_label);
    if (!table.ok()) {
      // Cannot happen: a named version never leaves READY. Serve without the
      // routing rather than not at all.
      Log(LogLevel::kError, "routing_table_invalid",
          {{"model", name}, {"error", table.status().ToString()}});
      table = RoutingTable::Build(name, ready, RoutingSpec(), options_.default_label);
    }
    served->routing = *std::move(table);
    m.published = std::move(served);
  }
  if (!changed) return;

  const uint64_t generation = next_generation_++;
  auto* raw = new ServingSnapshot();
  raw->generation_ = generation;
  for (const auto& [name, m] : models_) {
    if (m.published != nullptr) raw->models_.emplace(name, m.published);
  }
  tracker_->Add(generation);
  std::shared_ptr<const ServingSnapshot> snapshot(
      raw, [tracker = tracker_](const ServingSnapshot* s) {
        const uint64_t g = s->generation();
        delete s;
        tracker->Remove(g);
      });
  std::shared_ptr<const ServingSnapshot> previous;
  {
    MutexLock lock(&snap_mu_);
    previous = std::move(current_);
    current_ = std::move(snapshot);
  }
  // The drains wait for every snapshot older than this one.
  for (std::shared_ptr<Retire>& retire : pending_retires_) {
    retire->generation = generation;
    ++retires_running_;
    unload_pool_->Schedule([this, retire = std::move(retire)] { RunRetire(retire); });
  }
  pending_retires_.clear();
  state_cv_.NotifyAll();
  // `previous` goes here: its deleter takes only the tracker's mutex, and the
  // handles it lists are also held by their slots or their drains.
}

void LifecycleManager::DeliverPublished() {
  if (!options_.on_publish) return;
  {
    MutexLock lock(&cb_mu_);
    if (delivering_) return;  // that thread will deliver ours too
    delivering_ = true;
  }
  while (true) {
    std::shared_ptr<const ServingSnapshot> snapshot;
    {
      MutexLock lock(&cb_mu_);
      snapshot = Snapshot();
      if (snapshot->generation() <= delivered_) {
        delivering_ = false;
        return;
      }
      delivered_ = snapshot->generation();
    }
    options_.on_publish(snapshot);
  }
}

void LifecycleManager::RunLoad(std::string model, int64_t version, std::string config) {
  absl::StatusOr<std::shared_ptr<LoadedVersion>> result = loader_->Load(model, version, config);
  if (result.ok() && *result == nullptr) {
    result = absl::InternalError("the loader returned no version");
  }
  {
    MutexLock lock(&mu_);
    ModelSlot& m = models_.find(model)->second;  // slots are never erased
    VersionSlot& s = m.versions[version];
    s.load_running = false;
    m.load_running = false;
    --loads_running_;
    if (result.ok()) {
      s.has_failed_config = false;
      s.error_code = absl::StatusCode::kOk;
      s.error_message.clear();
      s.loaded_config = config;
      if (s.state == VersionState::kReady) {
        // A reload: the new load serves from the next snapshot on, the old
        // one is drained once no older snapshot is held.
        auto retire = std::make_shared<Retire>();
        retire->model = model;
        retire->version = version;
        retire->handle = std::move(s.handle);
        retire->unload = false;
        pending_retires_.push_back(std::move(retire));
        s.handle = *std::move(result);
        s.reload_pending = false;
        s.reason.clear();
        m.dirty = true;
        Log(LogLevel::kInfo, "model_version_reloaded", {{"model", model}, {"version", version}});
      } else {
        s.handle = *std::move(result);
        SetState(model, version, s, VersionState::kReady, "");
      }
    } else {
      s.has_failed_config = true;
      s.failed_config = config;
      s.error_code = result.status().code();
      s.error_message = std::string(result.status().message());
      if (s.state == VersionState::kReady) {
        s.reload_pending = false;
        s.reason = absl::StrCat("reload failed, the previous load still serves: ",
                                result.status().ToString());
        Log(LogLevel::kWarning, "model_version_reload_failed",
            {{"model", model}, {"version", version}, {"error", result.status().ToString()}});
      } else {
        SetState(model, version, s, VersionState::kFailed, result.status().ToString());
      }
    }
    Reconcile(model, m);
    Publish();
    state_cv_.NotifyAll();
  }
  DeliverPublished();
}

void LifecycleManager::RunRetire(std::shared_ptr<Retire> retire) {
  const absl::Time deadline = clock_->Now() + options_.snapshot_release_timeout;
  if (!tracker_->WaitOlderReleased(retire->generation, clock_, deadline)) {
    Log(LogLevel::kWarning, "snapshot_release_timeout",
        {{"model", retire->model},
         {"version", retire->version},
         {"timeout", absl::FormatDuration(options_.snapshot_release_timeout)}});
  }
  retire->handle->Drain();
  // Dropped before the version reads UNAVAILABLE: once it does, only requests
  // still holding the handle keep the memory.
  retire->handle.reset();
  {
    MutexLock lock(&mu_);
    if (retire->unload) {
      ModelSlot& m = models_.find(retire->model)->second;
      VersionSlot& s = m.versions[retire->version];
      SetState(retire->model, retire->version, s, VersionState::kUnavailable, "unloaded");
      Reconcile(retire->model, m);
      Publish();
    }
    --retires_running_;
    state_cv_.NotifyAll();
  }
  DeliverPublished();
}

void LifecycleManager::TimerLoop() {
  mu_.Lock();
  while (!stop_timer_) {
    const absl::Time now = clock_->Now();
    absl::Time next = absl::InfiniteFuture();
    bool reconciled = false;
    for (auto& [name, m] : models_) {
      if (m.next_wake <= now) {
        Reconcile(name, m);
        reconciled = true;
      }
      next = std::min(next, m.next_wake);
    }
    if (reconciled) {
      Publish();
      mu_.Unlock();
      DeliverPublished();
      mu_.Lock();
      continue;
    }
    clock_->WaitUntil(&timer_cv_, &mu_, next);
  }
  mu_.Unlock();
}

// ------------------------------------------------------------------ inputs

absl::Status LifecycleManager::SetAspiredVersions(absl::string_view model,
                                                  AspiredVersions aspired) {
  if (model.empty()) return absl::InvalidArgumentError("a model name cannot be empty");
  for (int64_t v : aspired.versions) {
    if (v <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", model, "': version ", v, " is not a positive number"));
    }
  }
  const std::set<int64_t> wanted(aspired.versions.begin(), aspired.versions.end());
  {
    MutexLock lock(&mu_);
    if (shutting_down_) return absl::FailedPreconditionError("the lifecycle manager is shut down");
    auto it = models_.find(model);
    if (it == models_.end()) it = models_.emplace(std::string(model), ModelSlot()).first;
    const std::string& name = it->first;
    ModelSlot& m = it->second;
    const absl::Time now = clock_->Now();
    for (int64_t v : wanted) m.versions.try_emplace(v);
    for (auto& [version, s] : m.versions) {
      const bool want = wanted.count(version) > 0;
      if (want != s.aspired) m.dirty = true;
      if (want) {
        s.aspired = true;
        s.skip_grace = false;
        s.retry_requested = aspired.retry_failed;
      } else {
        if (s.aspired) s.unaspired_since = now;
        s.aspired = false;
        if (aspired.skip_grace) s.skip_grace = true;
      }
    }
    m.config = std::move(aspired.config);
    if (wanted.empty() && m.routing != RoutingSpec()) {
      m.routing = RoutingSpec();
      m.dirty = true;
      Log(LogLevel::kInfo, "model_routing",
          {{"model", name}, {"routing", "cleared: no version is aspired"}});
    }
    Reconcile(name, m);
    Publish();
  }
  DeliverPublished();
  return absl::OkStatus();
}

absl::Status LifecycleManager::UpdateRouting(
    absl::string_view model, const std::function<absl::Status(RoutingSpec&)>& edit) {
  {
    MutexLock lock(&mu_);
    if (shutting_down_) return absl::FailedPreconditionError("the lifecycle manager is shut down");
    auto it = models_.find(model);
    if (it == models_.end()) {
      std::vector<std::string> names;
      for (const auto& [name, m] : models_) names.push_back(name);
      return absl::NotFoundError(
          absl::StrCat("model '", model, "' is unknown (models: ", NameList(names), ")"));
    }
    const std::string& name = it->first;
    ModelSlot& m = it->second;
    RoutingSpec spec = m.routing;
    absl::Status edited = edit(spec);
    if (!edited.ok()) return edited;
    std::vector<int64_t> ready;
    for (const auto& [version, s] : m.versions) {
      if (s.state == VersionState::kReady) ready.push_back(version);
    }
    absl::StatusOr<RoutingTable> table =
        RoutingTable::Build(name, std::move(ready), spec, options_.default_label);
    if (!table.ok()) return table.status();
    if (spec == m.routing) return absl::OkStatus();
    m.routing = std::move(spec);
    m.dirty = true;
    Log(LogLevel::kInfo, "model_routing", {{"model", name}, {"routing", m.routing.DebugString()}});
    Reconcile(name, m);  // a version no longer named may now unload
    Publish();
  }
  DeliverPublished();
  return absl::OkStatus();
}

absl::Status LifecycleManager::SetLabel(absl::string_view model, absl::string_view label,
                                        int64_t version) {
  absl::Status valid = ValidateLabel(label);
  if (!valid.ok()) return valid;
  return UpdateRouting(model, [&](RoutingSpec& spec) {
    spec.labels[std::string(label)] = version;
    return absl::OkStatus();
  });
}

absl::Status LifecycleManager::RemoveLabel(absl::string_view model, absl::string_view label) {
  return UpdateRouting(model, [&](RoutingSpec& spec) {
    if (spec.labels.erase(std::string(label)) == 0) {
      return absl::NotFoundError(
          absl::StrCat("model '", model, "' has no version label '", label, "'"));
    }
    return absl::OkStatus();
  });
}

absl::Status LifecycleManager::SetCanary(absl::string_view model,
                                         std::vector<CanaryWeight> canary) {
  return UpdateRouting(model, [&](RoutingSpec& spec) {
    spec.canary = std::move(canary);
    return absl::OkStatus();
  });
}

absl::Status LifecycleManager::SetShadow(absl::string_view model,
                                         std::optional<ShadowSpec> shadow) {
  return UpdateRouting(model, [&](RoutingSpec& spec) {
    spec.shadow = shadow;
    return absl::OkStatus();
  });
}

absl::Status LifecycleManager::SetRouting(absl::string_view model, RoutingSpec routing) {
  return UpdateRouting(model, [&](RoutingSpec& spec) {
    spec = std::move(routing);
    return absl::OkStatus();
  });
}

absl::StatusOr<RoutingSpec> LifecycleManager::GetRouting(absl::string_view model) const {
  MutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model '", model, "' is unknown"));
  }
  return it->second.routing;
}

// ----------------------------------------------------------------- reading

std::shared_ptr<const ServingSnapshot> LifecycleManager::Snapshot() const {
  MutexLock lock(&snap_mu_);
  return current_;
}

std::vector<VersionStatus> LifecycleManager::Index() const {
  MutexLock lock(&mu_);
  std::vector<VersionStatus> out;
  for (const auto& [name, m] : models_) {
    for (const auto& [version, s] : m.versions) out.push_back(StatusOf(name, version, s));
  }
  return out;
}

absl::StatusOr<VersionStatus> LifecycleManager::GetStatus(absl::string_view model,
                                                          int64_t version) const {
  MutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model '", model, "' is unknown"));
  }
  auto v = it->second.versions.find(version);
  if (v == it->second.versions.end()) {
    std::vector<int64_t> known;
    for (const auto& [k, s] : it->second.versions) known.push_back(k);
    return absl::NotFoundError(absl::StrCat("model '", model, "' has no version ", version,
                                            " (known: ", absl::StrJoin(known, ", "), ")"));
  }
  return StatusOf(it->first, version, v->second);
}

// ----------------------------------------------------------------- waiting

absl::StatusOr<VersionStatus> LifecycleManager::WaitUntil(
    absl::string_view model, int64_t version, std::function<bool(const VersionStatus&)> done,
    absl::Time deadline) {
  MutexLock lock(&mu_);
  while (true) {
    VersionStatus status = LookupStatus(model, version);
    if (done(status)) return status;
    if (shutting_down_) {
      return absl::CancelledError(absl::StrCat("the lifecycle manager shut down while waiting on ",
                                               status.DebugString()));
    }
    if (clock_->Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("deadline reached while waiting on ", status.DebugString()));
    }
    clock_->WaitUntil(&state_cv_, &mu_, deadline);
  }
}

absl::Status LifecycleManager::AwaitReady(absl::string_view model, int64_t version,
                                          absl::Time deadline) {
  absl::StatusOr<VersionStatus> status = WaitUntil(
      model, version,
      [](const VersionStatus& s) {
        return s.state == VersionState::kReady || s.state == VersionState::kFailed ||
               (s.state == VersionState::kUnavailable && !s.aspired);
      },
      deadline);
  if (!status.ok()) return status.status();
  switch (status->state) {
    case VersionState::kReady:
      return absl::OkStatus();
    case VersionState::kFailed:
      return absl::Status(status->error.code(),
                          absl::StrCat("model '", model, "' version ", version,
                                       " failed to load: ", status->error.message()));
    default:
      return absl::FailedPreconditionError(absl::StrCat(
          status->DebugString(), " is not aspired: nothing will load it"));
  }
}

absl::Status LifecycleManager::AwaitUnloaded(absl::string_view model, int64_t version,
                                             absl::Time deadline) {
  absl::StatusOr<VersionStatus> status = WaitUntil(
      model, version,
      [](const VersionStatus& s) {
        return s.state == VersionState::kUnavailable || s.state == VersionState::kFailed;
      },
      deadline);
  return status.status();
}

absl::Status LifecycleManager::AwaitIdle(absl::Time deadline) {
  MutexLock lock(&mu_);
  while (true) {
    std::vector<std::string> pending;
    if (loads_running_ > 0) pending.push_back(absl::StrCat(loads_running_, " loads running"));
    const int retires = retires_running_ + static_cast<int>(pending_retires_.size());
    if (retires > 0) pending.push_back(absl::StrCat(retires, " drains"));
    for (const auto& [name, m] : models_) {
      if (m.next_wake != absl::InfiniteFuture()) {
        pending.push_back(absl::StrCat("model '", name, "' grace period"));
      }
      for (const auto& [version, s] : m.versions) {
        if (s.state == VersionState::kLoading || s.state == VersionState::kUnloading ||
            s.reload_pending) {
          pending.push_back(StatusOf(name, version, s).DebugString());
        }
      }
    }
    if (pending.empty()) return absl::OkStatus();
    if (shutting_down_) {
      return absl::CancelledError("the lifecycle manager shut down while waiting to be idle");
    }
    if (clock_->Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("deadline reached; still pending: ", NameList(pending)));
    }
    clock_->WaitUntil(&state_cv_, &mu_, deadline);
  }
}

// ---------------------------------------------------------------- shutdown

void LifecycleManager::Shutdown() {
  {
    MutexLock lock(&mu_);
    if (shutting_down_) {
      while (!shut_down_) state_cv_.Wait(&mu_);
      return;
    }
    shutting_down_ = true;
    state_cv_.NotifyAll();
    for (auto& [name, m] : models_) Reconcile(name, m);  // drops queued loads
    while (loads_running_ > 0) state_cv_.Wait(&mu_);
    for (auto& [name, m] : models_) {
      m.routing = RoutingSpec();
      m.dirty = true;
      for (auto& [version, s] : m.versions) {
        s.aspired = false;
        if (s.state == VersionState::kReady) StartUnload(name, version, s);
      }
      m.next_wake = absl::InfiniteFuture();
    }
    Publish(/*force=*/true);
  }
  DeliverPublished();
  {
    MutexLock lock(&mu_);
    while (retires_running_ > 0 || !pending_retires_.empty()) state_cv_.Wait(&mu_);
    stop_timer_ = true;
    timer_cv_.NotifyAll();
  }
  timer_.join();
  load_pool_.reset();
  unload_pool_.reset();
  clock_->RemoveListener(clock_listener_);
  MutexLock lock(&mu_);
  shut_down_ = true;
  state_cv_.NotifyAll();
}

}  // namespace microbatch::lifecycle
