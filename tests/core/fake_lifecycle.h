// A VersionLoader and LoadedVersion for lifecycle tests: loads can be held
// until released or made to fail, versions count work in flight and refuse
// it once drained, and the loader counts live versions (to prove that memory
// goes once the last handle does).
#ifndef MICROBATCH_TESTS_CORE_FAKE_LIFECYCLE_H_
#define MICROBATCH_TESTS_CORE_FAKE_LIFECYCLE_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/core/lifecycle/manager.h"
#include "server/core/sync.h"

namespace microbatch::lifecycle::testing {

// Thread-safe.
class FakeVersion : public LoadedVersion {
 public:
  FakeVersion(std::string model, int64_t version, std::string config,
              std::shared_ptr<std::atomic<int>> live,
              std::function<void(FakeVersion*)> on_drain)
      : model_(std::move(model)),
        version_(version),
        config_(std::move(config)),
        live_(std::move(live)),
        on_drain_(std::move(on_drain)) {
    live_->fetch_add(1);
  }
  ~FakeVersion() override { live_->fetch_sub(1); }

  // Starts one piece of work; false (refused) once draining.
  bool BeginWork() {
    MutexLock lock(&mu_);
    if (draining_) return false;
    ++in_flight_;
    return true;
  }
  void EndWork() {
    MutexLock lock(&mu_);
    --in_flight_;
    cv_.NotifyAll();
  }
  void Drain() override {
    if (on_drain_) on_drain_(this);
    MutexLock lock(&mu_);
    draining_ = true;
    ++drain_calls_;
    while (in_flight_ > 0) cv_.Wait(&mu_);
    drained_ = true;
  }
  bool draining() {
    MutexLock lock(&mu_);
    return draining_;
  }
  bool drained() {
    MutexLock lock(&mu_);
    return drained_;
  }
  int drain_calls() {
    MutexLock lock(&mu_);
    return drain_calls_;
  }
  const std::string& model() const { return model_; }
  int64_t version() const { return version_; }
  const std::string& config() const { return config_; }

 private:
  const std::string model_;
  const int64_t version_;
  const std::string config_;
  const std::shared_ptr<std::atomic<int>> live_;
  const std::function<void(FakeVersion*)> on_drain_;
  Mutex mu_;
  CondVar cv_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool drained_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int drain_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

inline FakeVersion* AsFake(const std::shared_ptr<LoadedVersion>& handle) {
  return static_cast<FakeVersion*>(handle.get());
}

// Thread-safe.
class FakeLoader : public VersionLoader {
 public:
  // Loads of `model` `version` wait in Load() until Release().
  void Block(const std::string& model, int64_t version) {
    MutexLock lock(&mu_);
    blocked_.insert(Key(model, version));
  }
  void Release(const std::string& model, int64_t version) {
    MutexLock lock(&mu_);
    blocked_.erase(Key(model, version));
    cv_.NotifyAll();
  }
  // Loads of `model` `version` fail with `status` until Succeed().
  void Fail(const std::string& model, int64_t version, absl::Status status) {
    MutexLock lock(&mu_);
    failures_[Key(model, version)] = std::move(status);
  }
  void Succeed(const std::string& model, int64_t version) {
    MutexLock lock(&mu_);
    failures_.erase(Key(model, version));
  }
  // Every Load() first sleeps a random time up to `max` (default 0).
  void SetMaxDelay(absl::Duration max) {
    MutexLock lock(&mu_);
    max_delay_ = max;
  }
  // Called at the start of every Drain().
  void OnDrain(std::function<void(FakeVersion*)> hook) {
    MutexLock lock(&mu_);
    on_drain_ = std::move(hook);
  }
  // Blocks (up to 20 s) until `n` loads of `model` `version` have started.
  bool WaitForLoads(const std::string& model, int64_t version, int n) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (started_[Key(model, version)] < n) {
      if (absl::Now() >= deadline) return false;
      cv_.WaitFor(&mu_, std::chrono::milliseconds(10));
    }
    return true;
  }
  // Blocks (up to 20 s) until `n` loads are inside Load() at once.
  bool WaitForRunning(int n) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (running_ < n) {
      if (absl::Now() >= deadline) return false;
      cv_.WaitFor(&mu_, std::chrono::milliseconds(10));
    }
    return true;
  }
  int loads(const std::string& model, int64_t version) {
    MutexLock lock(&mu_);
    return started_[Key(model, version)];
  }
  int total_loads() {
    MutexLock lock(&mu_);
    return total_;
  }
  int max_running() {
    MutexLock lock(&mu_);
    return max_running_;
  }
  // The largest number of loads of one model that ran at once.
  int max_running_per_model() {
    MutexLock lock(&mu_);
    return max_per_model_;
  }
  // "model:version" of every load, in the order they started.
  std::vector<std::string> order() {
    MutexLock lock(&mu_);
    return order_;
  }
  // FakeVersions alive (held by the manager, snapshots or the test).
  int live() const { return live_->load(); }

  absl::StatusOr<std::shared_ptr<LoadedVersion>> Load(const std::string& model, int64_t version,
                                                     const std::string& config) override {
    const std::string key = Key(model, version);
    std::function<void(FakeVersion*)> on_drain;
    absl::Status failure;
    absl::Duration delay;
    {
      MutexLock lock(&mu_);
      if (max_delay_ > absl::ZeroDuration()) {
        delay = max_delay_ * (static_cast<double>(rng_() % 1000) / 1000);
      }
    }
    absl::SleepFor(delay);
    {
      MutexLock lock(&mu_);
      ++started_[key];
      ++total_;
      order_.push_back(key);
      ++running_;
      max_running_ = std::max(max_running_, running_);
      max_per_model_ = std::max(max_per_model_, ++running_per_model_[model]);
      cv_.NotifyAll();
      while (blocked_.count(key) > 0) cv_.Wait(&mu_);
      --running_;
      --running_per_model_[model];
      auto it = failures_.find(key);
      if (it != failures_.end()) failure = it->second;
      on_drain = on_drain_;
    }
    if (!failure.ok()) return failure;
    return std::make_shared<FakeVersion>(model, version, config, live_, std::move(on_drain));
  }

 private:
  static std::string Key(const std::string& model, int64_t version) {
    return absl::StrCat(model, ":", version);
  }

  Mutex mu_;
  CondVar cv_;
  std::set<std::string> blocked_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> started_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> running_per_model_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::function<void(FakeVersion*)> on_drain_ ABSL_GUARDED_BY(mu_);
  absl::Duration max_delay_ ABSL_GUARDED_BY(mu_);
  std::minstd_rand rng_ ABSL_GUARDED_BY(mu_){42};
  int total_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int max_running_ ABSL_GUARDED_BY(mu_) = 0;
  int max_per_model_ ABSL_GUARDED_BY(mu_) = 0;
  const std::shared_ptr<std::atomic<int>> live_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace microbatch::lifecycle::testing

#endif  // MICROBATCH_TESTS_CORE_FAKE_LIFECYCLE_H_
