#include "server/service/model_manager.h"

#if defined(MICROBATCH_TCMALLOC)
#include <gperftools/malloc_extension_c.h>
#elif defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/core/log.h"
#include "server/core/text.h"

namespace microbatch {
namespace {

namespace fs = std::filesystem;

// The routing a config.pbtxt asks for. INVALID_ARGUMENT names the field.
absl::StatusOr<lifecycle::RoutingSpec> ConfigRouting(const v1::ModelConfig& config,
                                                     const std::string& source) {
  lifecycle::RoutingSpec spec;
  for (const auto& [label, version] : config.version_labels()) spec.labels[label] = version;
  for (const v1::CanaryConfig& canary : config.canary()) {
    if (!(canary.percent() > 0 && canary.percent() <= 100)) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": canary for version ", canary.version(),
                                                     ": percent must be in (0, 100], got ",
                                                     canary.percent()));
    }
    spec.canary.push_back(
        {canary.version(), static_cast<int32_t>(std::lround(canary.percent() * 100))});
  }
  if (config.has_shadow() && config.shadow().version() != 0) {
    spec.shadow = lifecycle::ShadowSpec{config.shadow().version(), config.shadow().fraction()};
  }
  if (absl::Status s = lifecycle::ValidateRoutingSpec(spec); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  }
  return spec;
}

// A lookup error that echoes at most kMaxEchoBytes of what the client sent.
absl::Status BoundedLookupError(const absl::Status& status, absl::string_view name,
                                const lifecycle::VersionSelector& selector) {
  const bool long_or_odd = ClientText(name) != name || ClientText(selector.label) != selector.label;
  if (!long_or_odd) return status;
  return absl::Status(status.code(), absl::StrCat("model '", ClientText(name), "' (",
                                                  ClientText(selector.DebugString()),
                                                  ") is not served"));
}

}  // namespace

std::optional<ControlMode> ParseControlMode(absl::string_view text) {
  if (text == "poll") return ControlMode::kPoll;
  if (text == "explicit") return ControlMode::kExplicit;
  return std::nullopt;
}

namespace {

// Owns a loaded version; destroying it destroys the version (its batcher,
// instances and weights), then returns the freed heap pages to the system,
// which the allocator would otherwise keep, so that RSS drops after an
// unload: tcmalloc's page heap (the server's allocator, MICROBATCH_TCMALLOC),
// or with glibc's malloc the arenas, where weights below its mmap threshold
// (up to 32 MiB) live. glibc's malloc_trim must not run beside tcmalloc: it
// walks arenas that glibc never set up (a crash on unload).
struct TrimOnRelease {
  explicit TrimOnRelease(std::shared_ptr<ServedModel> m) : model(std::move(m)) {}
  ~TrimOnRelease() {
    model.reset();
#if defined(MICROBATCH_TCMALLOC)
    MallocExtension_ReleaseFreeMemory();
#elif defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    malloc_trim(0);  // under a sanitizer, its allocator holds the memory
#endif
  }
  std::shared_ptr<ServedModel> model;
};

}  // namespace

// Loads versions with LibTorch for the lifecycle manager.
class ModelManager::Loader final : public lifecycle::VersionLoader {
 public:
  explicit Loader(const RepositoryOptions* options) : options_(options) {}

  absl::StatusOr<std::shared_ptr<lifecycle::LoadedVersion>> Load(const std::string& model,
                                                                 int64_t version,
                                                                 const std::string& config) override {
    const std::string dir = (fs::path(options_->root) / model).string();
    absl::StatusOr<std::shared_ptr<ServedModel>> loaded = [&]() -> absl::StatusOr<std::shared_ptr<ServedModel>> {
      absl::StatusOr<ModelPlan> plan = PlanModelText(config, model, dir + "/config.pbtxt", *options_);
      if (!plan.ok()) return plan.status();
      return LoadServedModel(*plan, dir, version, *options_);
    }();
    if (!loaded.ok()) {
      if (options_->metrics != nullptr) {
        options_->metrics->RecordLoadFailure(model, loaded.status().code());
      }
      return loaded.status();
    }
    // The handles share one holder: when the last goes, the version is
    // destroyed and the heap memory it freed is handed back to the system.
    auto holder = std::make_shared<TrimOnRelease>(std::move(*loaded));
    ServedModel* version_model = holder->model.get();
    return std::shared_ptr<lifecycle::LoadedVersion>(std::move(holder), version_model);
  }

 private:
  const RepositoryOptions* const options_;
};

ModelManager::ModelManager(RepositoryOptions repository, ModelControlOptions control)
    : repository_(std::move(repository)), control_(std::move(control)) {}

ModelManager::~ModelManager() { Shutdown(); }

absl::StatusOr<std::unique_ptr<ModelManager>> ModelManager::Start(
    const RepositoryOptions& repository, const ModelControlOptions& control) {
  std::unique_ptr<ModelManager> manager(new ModelManager(repository, control));
  ModelManager* raw = manager.get();
  manager->loader_ = std::make_unique<Loader>(&manager->repository_);
  lifecycle::ManagerOptions options;
  options.load_threads = std::max(1, control.load_threads);
  options.unload_grace = control.unload_grace;
  options.on_publish = [raw](const std::shared_ptr<const lifecycle::ServingSnapshot>& snapshot) {
    raw->OnPublish(snapshot);
  };
  manager->lifecycle_ =
      std::make_unique<lifecycle::LifecycleManager>(manager->loader_.get(), std::move(options));

  absl::StatusOr<std::vector<ModelOnDisk>> scan = ScanRepository(repository.root, /*log_skipped=*/true);
  if (!scan.ok()) return scan.status();
  std::vector<std::string> wanted = control.startup_models;
  if (std::find(wanted.begin(), wanted.end(), "*") != wanted.end()) {
    // Triton's --load-model=*: every model; only as the one value.
    if (wanted.size() != 1) {
      return absl::InvalidArgumentError("--load_model: '*' (every model) must be the only value");
    }
    wanted.clear();
  }
  std::vector<const ModelOnDisk*> startup;
  for (const ModelOnDisk& model : *scan) {
    if (control.mode == ControlMode::kPoll || wanted.empty() ||
        std::find(wanted.begin(), wanted.end(), model.name) != wanted.end()) {
      startup.push_back(&model);
    }
  }
  for (const std::string& name : wanted) {
    if (control.mode == ControlMode::kExplicit &&
        std::none_of(scan->begin(), scan->end(), [&](const ModelOnDisk& m) { return m.name == name; })) {
      return absl::NotFoundError(absl::StrCat(repository.root, ": startup model '", name,
                                              "' has no directory with a config.pbtxt"));
    }
  }
  if (scan->empty()) {
    // Like Triton and TF Serving, an empty repository is served (nothing
    // yet): models a sidecar or volume sync writes later are loaded by the
    // poller (kPoll) or by a load request (kExplicit).
    Log(LogLevel::kWarning, "repository_empty",
        {{"root", repository.root},
         {"message", "no model directories yet (a model is a directory with a config.pbtxt)"}});
  }
  std::vector<std::pair<std::string, int64_t>> loading;
  for (const ModelOnDisk* model : startup) {
    std::vector<int64_t> aspired;
    if (absl::Status s = manager->Aspire(*model, /*strict=*/true, /*retry_failed=*/false, &aspired);
        !s.ok()) {
      manager->Shutdown();
      return s;
    }
    for (int64_t v : aspired) loading.emplace_back(model->name, v);
  }
  const absl::Time deadline = absl::Now() + control.startup_timeout;
  for (const auto& [name, version] : loading) {
    absl::Status ready = manager->lifecycle_->AwaitReady(name, version, deadline);
    if (!ready.ok()) {
      // The loader's own error (code and message naming the file), if any.
      absl::StatusOr<lifecycle::VersionStatus> status = manager->lifecycle_->GetStatus(name, version);
      manager->Shutdown();
      if (status.ok() && !status->error.ok()) return status->error;
      return ready;
    }
  }
  manager->ApplyPendingRouting();
  // Config routing that cannot apply at startup (a label on a version that
  // is not served) fails startup like any bad config.
  for (const ModelOnDisk* model : startup) {
    absl::StatusOr<lifecycle::RoutingSpec> want;
    bool applied = true;
    {
      MutexLock lock(&manager->mu_);
      auto it = manager->seen_.find(model->name);
      if (it != manager->seen_.end() && !it->second.routing_applied) {
        applied = false;
        want = it->second.config_routing;
      }
    }
    if (!applied) {
      absl::Status s = manager->lifecycle_->SetRouting(model->name, *want);
      manager->Shutdown();
      return absl::InvalidArgumentError(absl::StrCat(model->config_path, ": ", s.message()));
    }
  }
  manager->poller_ = std::thread([raw] { raw->PollLoop(); });
  return manager;
}

absl::Status ModelManager::Aspire(const ModelOnDisk& model, bool strict, bool retry_failed,
                                  std::vector<int64_t>* aspired) {
  absl::StatusOr<ModelPlan> plan =
      PlanModelText(model.config_text, model.name, model.config_path, repository_);
  if (model.config_text.empty()) {
    plan = absl::NotFoundError(absl::StrCat(model.config_path, ": cannot read the model config"));
  }
  if (!plan.ok()) return plan.status();
  absl::StatusOr<lifecycle::RoutingSpec> routing = ConfigRouting(plan->config, model.config_path);
  if (!routing.ok()) return routing.status();
  absl::StatusOr<std::vector<int64_t>> versions =
      SelectServedVersions(plan->config.version_policy(), model, strict);
  if (!versions.ok()) return versions.status();
  lifecycle::AspiredVersions wanted;
  wanted.versions = *versions;
  wanted.config = model.config_text;
  wanted.retry_failed = retry_failed;
  wanted.skip_grace = control_.mode == ControlMode::kExplicit;
  if (absl::Status s = lifecycle_->SetAspiredVersions(model.name, std::move(wanted)); !s.ok()) {
    return s;
  }
  *aspired = *versions;
  MutexLock lock(&mu_);
  Seen& seen = seen_[model.name];
  seen.config_text = model.config_text;
  seen.fingerprints.clear();
  for (const VersionOnDisk& v : model.versions) {
    if (std::find(versions->begin(), versions->end(), v.version) != versions->end()) {
      seen.fingerprints[v.version] = v.fingerprint;
      seen.last_aspired[v.version] = v.fingerprint;
    }
  }
  if (versions->empty()) {
    // Nothing aspired: the lifecycle clears the model's routing. The
    // config's is applied again once versions are aspired again (not before:
    // a label naming a version keeps it loaded, past its grace period).
    seen.config_routing = *routing;
    seen.routing_applied = false;
  } else if (!(seen.config_routing == *routing) || !seen.routing_applied) {
    seen.config_routing = *routing;
    seen.routing_applied = false;
    routing_pending_ = true;
  }
  return absl::OkStatus();
}

void ModelManager::ApplyPendingRouting() {
  std::vector<std::pair<std::string, lifecycle::RoutingSpec>> pending;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, seen] : seen_) {
      // A model with nothing aspired waits until versions are back.
      if (!seen.routing_applied && !seen.fingerprints.empty()) {
        pending.emplace_back(name, seen.config_routing);
      }
    }
  }
  for (const auto& [name, spec] : pending) {
    absl::Status s = lifecycle_->SetRouting(name, spec);
    if (s.ok()) {
      MutexLock lock(&mu_);
      auto it = seen_.find(name);
      if (it != seen_.end() && it->second.config_routing == spec && !it->second.fingerprints.empty()) {
        it->second.routing_applied = true;
      }
      Log(LogLevel::kInfo, "model_routing_applied", {{"model", name}, {"routing", spec.DebugString()}});
    }
  }
}

void ModelManager::OnPublish(const std::shared_ptr<const lifecycle::ServingSnapshot>& snapshot) {
  MutexLock lock(&mu_);
  for (const std::string& name : snapshot->ModelNames()) {
    const lifecycle::ServedModel* model = snapshot->Find(name);
    const int64_t now = model != nullptr ? model->routing.default_version() : 0;
    int64_t& before = default_versions_[name];
    if (before != 0 && now != 0 && before != now && repository_.metrics != nullptr) {
      repository_.metrics->RecordSwap(name);
    }
    if (now != 0) before = now;
  }
  // Config routing waiting for versions to be READY: try again.
  for (const auto& [name, seen] : seen_) {
    if (!seen.routing_applied && !seen.fingerprints.empty()) {
      routing_pending_ = true;
      wake_.NotifyAll();
      break;
    }
  }
}

void ModelManager::Scan(bool startup) {
  absl::StatusOr<std::vector<ModelOnDisk>> scan = ScanRepository(repository_.root, startup);
  if (!scan.ok()) {
    static RateLimitedLog* log = new RateLimitedLog(2);
    log->Log(LogLevel::kWarning, "repository_scan_failed", {{"message", scan.status().message()}});
    return;
  }
  std::set<std::string> on_disk;
  for (ModelOnDisk& model : *scan) {
    on_disk.insert(model.name);
    // Eligible versions: complete, and unchanged since the previous scan or
    // since they were last aspired (so a version back from a short absence
    // is taken again at once).
    std::vector<VersionOnDisk> eligible;
    bool failed_changed = false;
    {
      MutexLock lock(&mu_);
      Seen& seen = seen_[model.name];
      std::map<int64_t, std::string> observed;
      for (const VersionOnDisk& v : model.versions) {
        observed[v.version] = v.fingerprint;
        if (!v.complete) continue;
        auto previous = seen.observed.find(v.version);
        auto aspired = seen.fingerprints.find(v.version);
        auto before = seen.last_aspired.find(v.version);
        const bool settled = previous != seen.observed.end() && previous->second == v.fingerprint;
        const bool known = before != seen.last_aspired.end() && before->second == v.fingerprint;
        if (settled || known) eligible.push_back(v);
        if (settled && aspired != seen.fingerprints.end() && aspired->second != v.fingerprint) {
          failed_changed = true;  // a file replaced in place: retry it if it failed
        }
      }
      seen.observed = std::move(observed);
    }
    ModelOnDisk filtered = model;
    filtered.versions = std::move(eligible);
    std::vector<int64_t> wanted_versions;
    bool changed = false;
    {
      MutexLock lock(&mu_);
      const Seen& seen = seen_[model.name];
      std::vector<int64_t> last;
      for (const auto& [v, fp] : seen.fingerprints) last.push_back(v);
      absl::StatusOr<ModelPlan> plan =
          PlanModelText(model.config_text, model.name, model.config_path, repository_);
      if (!plan.ok()) {
        if (seen.config_text != model.config_text) {
          Log(LogLevel::kWarning, "model_config_invalid",
              {{"model", model.name}, {"message", plan.status().message()}});
        }
        continue;
      }
      absl::StatusOr<std::vector<int64_t>> selected =
          SelectServedVersions(plan->config.version_policy(), filtered, /*strict=*/false);
      if (!selected.ok()) continue;
      wanted_versions = *selected;
      changed = wanted_versions != last || seen.config_text != model.config_text || failed_changed;
    }
    if (!changed) continue;
    std::vector<int64_t> aspired;
    absl::Status s = Aspire(filtered, /*strict=*/false, /*retry_failed=*/failed_changed, &aspired);
    if (!s.ok()) {
      Log(LogLevel::kWarning, "model_update_refused", {{"model", model.name}, {"message", s.message()}});
    }
  }
  // Models gone from disk: unaspire (the grace period keeps a short absence
  // harmless).
  std::vector<std::string> gone;
  {
    MutexLock lock(&mu_);
    for (auto it = seen_.begin(); it != seen_.end();) {
      if (on_disk.count(it->first) == 0 && !it->second.fingerprints.empty()) {
        gone.push_back(it->first);
        it->second.fingerprints.clear();
        it->second.config_text.clear();
        it->second.routing_applied = false;  // the lifecycle clears it; see Aspire()
      }
      ++it;
    }
  }
  for (const std::string& name : gone) {
    absl::Status s = lifecycle_->SetAspiredVersions(name, lifecycle::AspiredVersions{});
    if (!s.ok()) Log(LogLevel::kWarning, "model_update_refused", {{"model", name}, {"message", s.message()}});
  }
}

void ModelManager::PollLoop() {
  absl::Time next_scan = absl::Now() + control_.poll_interval;
  const bool polling = control_.mode == ControlMode::kPoll && control_.poll_interval > absl::ZeroDuration();
  while (true) {
    bool routing = false;
    {
      MutexLock lock(&mu_);
      while (!stop_ && !routing_pending_ && (!polling || absl::Now() < next_scan)) {
        const absl::Duration wait = polling ? next_scan - absl::Now() : absl::Seconds(1);
        wake_.WaitFor(&mu_, absl::ToChronoNanoseconds(std::max(wait, absl::Milliseconds(1))));
      }
      if (stop_) return;
      routing = routing_pending_;
      routing_pending_ = false;
    }
    if (routing) ApplyPendingRouting();
    if (polling && absl::Now() >= next_scan) {
      Scan(/*startup=*/false);
      ApplyPendingRouting();
      next_scan = absl::Now() + control_.poll_interval;
    }
  }
}

void ModelManager::PollNow() {
  Scan(/*startup=*/false);
  ApplyPendingRouting();
}

absl::StatusOr<RoutedRequest> ModelManager::Route(absl::string_view name,
                                                  const lifecycle::VersionSelector& selector,
                                                  absl::string_view routing_key) const {
  RoutedRequest routed;
  routed.snapshot = lifecycle_->Snapshot();
  absl::StatusOr<lifecycle::Acquired> acquired = routed.snapshot->Acquire(
      name, selector, routing_key, routing_key.empty() ? draws_.Next() : 0);
  if (!acquired.ok()) return BoundedLookupError(acquired.status(), name, selector);
  routed.primary = std::static_pointer_cast<ServedModel>(acquired->handle);
  if (acquired->shadow != nullptr) {
    routed.shadow = std::static_pointer_cast<ServedModel>(acquired->shadow);
  }
  return routed;
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelManager::Find(absl::string_view name,
                                                                int64_t version) const {
  absl::StatusOr<RoutedRequest> routed = Route(
      name,
      version == 0 ? lifecycle::VersionSelector::Default() : lifecycle::VersionSelector::Number(version),
      {});
  if (!routed.ok()) return routed.status();
  return routed->primary;
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelManager::Find(absl::string_view name,
                                                                int64_t version,
                                                                absl::string_view label) const {
  if (label.empty()) return Find(name, version);
  if (version != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", ClientText(name), "': set either version (", version, ") or version_label ('",
        ClientText(label), "'), not both"));
  }
  absl::StatusOr<RoutedRequest> routed =
      Route(name, lifecycle::VersionSelector::Label(std::string(label)), {});
  if (!routed.ok()) return routed.status();
  return routed->primary;
}

std::vector<int64_t> ModelManager::Versions(absl::string_view name) const {
  std::shared_ptr<const lifecycle::ServingSnapshot> snapshot = lifecycle_->Snapshot();
  const lifecycle::ServedModel* model = snapshot->Find(name);
  if (model == nullptr) return {};
  return model->routing.ready_versions();
}

std::vector<std::shared_ptr<const ServedModel>> ModelManager::All() const {
  std::shared_ptr<const lifecycle::ServingSnapshot> snapshot = lifecycle_->Snapshot();
  std::vector<std::shared_ptr<const ServedModel>> all;
  for (const std::string& name : snapshot->ModelNames()) {
    const lifecycle::ServedModel* model = snapshot->Find(name);
    if (model == nullptr) continue;
    for (const auto& [version, handle] : model->versions) {
      all.push_back(std::static_pointer_cast<const ServedModel>(handle));
    }
  }
  return all;
}

std::vector<ModelVersionIndex> ModelManager::Index(bool include_disk) const {
  std::map<std::pair<std::string, int64_t>, ModelVersionIndex> rows;
  for (const lifecycle::VersionStatus& status : lifecycle_->Index()) {
    ModelVersionIndex& row = rows[{status.model, status.version}];
    row.model = status.model;
    row.version = status.version;
    row.state = std::string(lifecycle::VersionStateName(status.state));
    row.reason = !status.error.ok() ? std::string(status.error.message()) : status.reason;
  }
  absl::StatusOr<std::vector<ModelOnDisk>> scan =
      include_disk ? ScanRepository(repository_.root, false)
                   : absl::StatusOr<std::vector<ModelOnDisk>>(std::vector<ModelOnDisk>());
  if (scan.ok()) {
    for (const ModelOnDisk& model : *scan) {
      for (const VersionOnDisk& v : model.versions) {
        auto [it, inserted] = rows.try_emplace({model.name, v.version});
        if (inserted) {
          it->second.model = model.name;
          it->second.version = v.version;
          it->second.state = "UNAVAILABLE";
          it->second.reason = v.complete ? "on disk, not loaded" : "on disk, incomplete (no complete model.pt)";
        }
      }
    }
  }
  std::shared_ptr<const lifecycle::ServingSnapshot> snapshot = lifecycle_->Snapshot();
  for (auto& [key, row] : rows) {
    const lifecycle::ServedModel* model = snapshot->Find(row.model);
    if (model == nullptr) continue;
    const lifecycle::RoutingSpec& spec = model->routing.spec();
    for (const auto& [label, version] : spec.labels) {
      if (version == row.version) row.labels.push_back(label);
    }
    for (const lifecycle::CanaryWeight& c : spec.canary) {
      if (c.version == row.version) row.canary_percent = c.weight / 100.0;
    }
    if (spec.shadow && spec.shadow->version == row.version) row.shadow_fraction = spec.shadow->fraction;
    row.is_default = model->routing.default_version() == row.version;
  }
  std::vector<ModelVersionIndex> out;
  for (auto& [key, row] : rows) out.push_back(std::move(row));
  return out;
}

absl::Status ModelManager::LoadModel(const std::string& name, absl::Time deadline) {
  if (control_.mode != ControlMode::kExplicit) {
    return absl::FailedPreconditionError(
        "the server polls its model repository (--model_control_mode=poll): publish or remove "
        "version directories instead of calling LoadModel/UnloadModel");
  }
  absl::StatusOr<std::vector<ModelOnDisk>> scan = ScanRepository(repository_.root, false);
  if (!scan.ok()) return scan.status();
  auto model = std::find_if(scan->begin(), scan->end(), [&](const ModelOnDisk& m) { return m.name == name; });
  if (model == scan->end()) {
    return absl::NotFoundError(absl::StrCat("model '", ClientText(name), "' is not in the repository (no ",
                                            ClientText(name), "/config.pbtxt under ", repository_.root, ")"));
  }
  std::vector<int64_t> aspired;
  if (absl::Status s = Aspire(*model, /*strict=*/true, /*retry_failed=*/true, &aspired); !s.ok()) {
    return s;
  }
  for (int64_t version : aspired) {
    absl::Status ready = lifecycle_->AwaitReady(name, version, deadline);
    if (!ready.ok()) {
      absl::StatusOr<lifecycle::VersionStatus> status = lifecycle_->GetStatus(name, version);
      if (ready.code() != absl::StatusCode::kDeadlineExceeded && status.ok() && !status->error.ok()) {
        return absl::Status(status->error.code(),
                            absl::StrCat("model '", name, "' version ", version,
                                         " failed to load: ", status->error.message()));
      }
      return ready;
    }
  }
  ApplyPendingRouting();
  return absl::OkStatus();
}

absl::Status ModelManager::UnloadModel(const std::string& name, absl::Time deadline) {
  if (control_.mode != ControlMode::kExplicit) return LoadModel(name, deadline);  // the same refusal
  std::vector<int64_t> versions;
  for (const lifecycle::VersionStatus& status : lifecycle_->Index()) {
    if (status.model == name) versions.push_back(status.version);
  }
  if (versions.empty()) {
    return absl::NotFoundError(absl::StrCat("model '", ClientText(name), "' is not loaded"));
  }
  lifecycle::AspiredVersions none;
  none.skip_grace = true;
  if (absl::Status s = lifecycle_->SetAspiredVersions(name, std::move(none)); !s.ok()) return s;
  {
    MutexLock lock(&mu_);
    seen_.erase(name);
  }
  for (int64_t version : versions) {
    if (absl::Status s = lifecycle_->AwaitUnloaded(name, version, deadline); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ModelManager::SetLabel(const std::string& name, const std::string& label, int64_t version) {
  return lifecycle_->SetLabel(name, label, version);
}

absl::Status ModelManager::RemoveLabel(const std::string& name, const std::string& label) {
  return lifecycle_->RemoveLabel(name, label);
}

absl::Status ModelManager::SetCanary(const std::string& name,
                                     const std::vector<std::pair<int64_t, double>>& canary) {
  std::vector<lifecycle::CanaryWeight> weights;
  for (const auto& [version, percent] : canary) {
    if (!(percent > 0 && percent <= 100)) {
      return absl::InvalidArgumentError(
          absl::StrCat("canary for version ", version, ": percent must be in (0, 100], got ", percent));
    }
    weights.push_back({version, static_cast<int32_t>(std::lround(percent * 100))});
  }
  return lifecycle_->SetCanary(name, std::move(weights));
}

absl::Status ModelManager::SetShadow(const std::string& name, int64_t version, double fraction) {
  if (version == 0) return lifecycle_->SetShadow(name, std::nullopt);
  return lifecycle_->SetShadow(name, lifecycle::ShadowSpec{version, fraction});
}

void ModelManager::Shutdown() {
  if (shut_down_.exchange(true)) return;
  {
    MutexLock lock(&mu_);
    stop_ = true;
    wake_.NotifyAll();
  }
  if (poller_.joinable()) poller_.join();
  if (lifecycle_) lifecycle_->Shutdown();
}

}  // namespace microbatch
