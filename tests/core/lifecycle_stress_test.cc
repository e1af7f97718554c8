// Randomized stress test of the lifecycle manager: admin threads change
// aspired versions, labels, canaries and shadows of a few models while
// request threads route and hand work to what the snapshot serves. Run under
// ThreadSanitizer in CI (core_test).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/lifecycle/manager.h"
#include "tests/core/fake_lifecycle.h"

namespace microbatch::lifecycle {
namespace {

using ::microbatch::lifecycle::testing::AsFake;
using ::microbatch::lifecycle::testing::FakeLoader;

constexpr int kModels = 4;
constexpr int64_t kMaxVersion = 6;
constexpr int64_t kBadVersion = 5;  // every load of it fails
constexpr int kAdminThreads = 4;
constexpr int kOperations = 200;
constexpr int kRequestThreads = 3;
// Input calls never wait for loads; this bound is for a loaded machine under
// ThreadSanitizer.
constexpr absl::Duration kCallBound = absl::Seconds(5);

std::string ModelName(int i) { return absl::StrCat("m", i); }

// What the test last had acknowledged for one model.
struct Expected {
  std::set<int64_t> aspired;
  std::string config = "c1";
  RoutingSpec routing;
  bool known = false;
};

struct Counters {
  std::atomic<int64_t> routed{0};
  std::atomic<int64_t> refused{0};  // work refused by a version acquired from a snapshot
  std::atomic<int64_t> bad_tables{0};
  std::atomic<int64_t> slow_calls{0};
  std::atomic<int64_t> acknowledged{0};
};

uint32_t Seed() {
  if (const char* env = std::getenv("LIFECYCLE_STRESS_SEED")) return std::strtoul(env, nullptr, 10);
  return static_cast<uint32_t>(absl::ToUnixNanos(absl::Now()));
}

class LifecycleStressTest : public ::testing::Test {
 protected:
  // One random admin operation on a random model, recorded in `expected`
  // when the manager acknowledges it.
  void Operate(std::mt19937& rng, LifecycleManager& manager) {
    const int model_index = static_cast<int>(rng() % kModels);
    const std::string model = ModelName(model_index);
    auto version = [&] { return static_cast<int64_t>(1 + rng() % kMaxVersion); };
    MutexLock lock(&model_mu_[model_index]);
    Expected& e = expected_[model_index];
    const absl::Time start = absl::Now();
    absl::Time bound = start + kCallBound;
    const int kind = static_cast<int>(rng() % 100);
    if (kind < 35 || !e.known) {
      AspiredVersions a;
      if (rng() % 8 != 0) {
        std::set<int64_t> set;
        const int n = 1 + static_cast<int>(rng() % 3);
        for (int i = 0; i < n; ++i) set.insert(version());
        if (set == std::set<int64_t>{kBadVersion}) set.insert(1);  // keep one loadable
        a.versions.assign(set.begin(), set.end());
      }
      a.config = rng() % 4 == 0 ? "c2" : "c1";
      a.retry_failed = rng() % 4 == 0;
      a.skip_grace = rng() % 2 == 0;
      const std::vector<int64_t> versions = a.versions;
      const std::string config = a.config;
      if (manager.SetAspiredVersions(model, std::move(a)).ok()) {
        e.known = true;
        e.aspired = std::set<int64_t>(versions.begin(), versions.end());
        e.config = config;
        if (e.aspired.empty()) e.routing = RoutingSpec();
        ++counters_.acknowledged;
      } else {
        ADD_FAILURE() << "SetAspiredVersions refused";
      }
    } else if (kind < 55) {
      const std::string label = rng() % 2 == 0 ? "stable" : "canary";
      const int64_t v = version();
      if (manager.SetLabel(model, label, v).ok()) {
        e.routing.labels[label] = v;
        ++counters_.acknowledged;
      }
    } else if (kind < 65) {
      const std::string label = rng() % 2 == 0 ? "stable" : "canary";
      if (manager.RemoveLabel(model, label).ok()) {
        e.routing.labels.erase(label);
        ++counters_.acknowledged;
      }
    } else if (kind < 80) {
      std::vector<CanaryWeight> canary;
      const int n = static_cast<int>(rng() % 3);
      std::set<int64_t> used;
      for (int i = 0; i < n; ++i) {
        const int64_t v = version();
        if (used.insert(v).second) canary.push_back({v, static_cast<int32_t>(1 + rng() % 4000)});
      }
      const std::vector<CanaryWeight> copy = canary;
      if (manager.SetCanary(model, std::move(canary)).ok()) {
        e.routing.canary = copy;
        ++counters_.acknowledged;
      }
    } else if (kind < 90) {
      std::optional<ShadowSpec> shadow;
      if (rng() % 3 != 0) shadow = ShadowSpec{version(), 0.25};
      if (manager.SetShadow(model, shadow).ok()) {
        e.routing.shadow = shadow;
        ++counters_.acknowledged;
      }
    } else {
      const absl::Time deadline = start + absl::Milliseconds(rng() % 50);
      bound = deadline + kCallBound;
      absl::Status s = manager.AwaitReady(model, version(), deadline);
      // Never before the deadline unless it is decided.
      if (s.code() == absl::StatusCode::kDeadlineExceeded) {
        EXPECT_GE(absl::Now(), deadline);
      }
    }
    if (absl::Now() > bound) ++counters_.slow_calls;
  }

  // One request: look up, route, hand work to the version (and the shadow).
  void Request(std::mt19937& rng, LifecycleManager& manager, RouteCounter& draws) {
    const std::string model = ModelName(static_cast<int>(rng() % kModels));
    VersionSelector selector;
    switch (rng() % 4) {
      case 0: selector = VersionSelector::Number(static_cast<int64_t>(1 + rng() % kMaxVersion)); break;
      case 1: selector = VersionSelector::Label(rng() % 2 == 0 ? "stable" : "canary"); break;
      default: break;
    }
    const std::string key = rng() % 2 == 0 ? absl::StrCat("user-", rng() % 1000) : "";
    std::shared_ptr<LoadedVersion> handle;
    std::shared_ptr<LoadedVersion> shadow;
    {
      std::shared_ptr<const ServingSnapshot> snapshot = manager.Snapshot();
      if (const ServedModel* served = snapshot->Find(model)) {
        // The table only names READY versions that have handles.
        for (int64_t v : served->routing.spec().ReferencedVersions()) {
          if (!served->routing.IsReady(v) || served->versions.count(v) == 0) ++counters_.bad_tables;
        }
        if (served->routing.ready_versions().size() != served->versions.size()) {
          ++counters_.bad_tables;
        }
      }
      absl::StatusOr<Acquired> a = snapshot->Acquire(model, selector, key, draws.Next());
      if (!a.ok()) return;
      ++counters_.routed;
      // A version in the snapshot takes work.
      if (!AsFake(a->handle)->BeginWork()) {
        ++counters_.refused;
        return;
      }
      handle = a->handle;
      if (a->shadow != nullptr) {
        if (AsFake(a->shadow)->BeginWork()) {
          shadow = a->shadow;
        } else {
          ++counters_.refused;
        }
      }
    }
    // The work finishes after the snapshot is released: drains wait for it.
    if (rng() % 4 == 0) std::this_thread::yield();
    AsFake(handle)->EndWork();
    if (shadow) AsFake(shadow)->EndWork();
  }

  Mutex model_mu_[kModels];
  Expected expected_[kModels];
  Counters counters_;
};

TEST_F(LifecycleStressTest, RandomOperationsWithConcurrentRequests) {
  const uint32_t seed = Seed();
  std::cout << "LIFECYCLE_STRESS_SEED=" << seed << std::endl;
  FakeLoader loader;
  loader.SetMaxDelay(absl::Milliseconds(5));
  for (int m = 0; m < kModels; ++m) {
    loader.Fail(ModelName(m), kBadVersion, absl::InternalError("corrupt weights"));
  }
  ManagerOptions options;
  options.unload_grace = absl::Milliseconds(2);
  options.load_threads = 2;
  options.unload_threads = 2;
  std::atomic<uint64_t> last_published{0};
  std::atomic<int64_t> out_of_order{0};
  options.on_publish = [&](const std::shared_ptr<const ServingSnapshot>& s) {
    if (s->generation() <= last_published.load()) ++out_of_order;
    last_published = s->generation();
  };
  std::atomic<int64_t> drains{0};
  loader.OnDrain([&](testing::FakeVersion*) { ++drains; });
  LifecycleManager manager(&loader, options);

  std::atomic<bool> stop{false};
  std::vector<std::thread> requests;
  for (int t = 0; t < kRequestThreads; ++t) {
    requests.emplace_back([&, t] {
      std::mt19937 rng(seed + 1000 + t);
      RouteCounter draws;
      int n = 0;
      while (!stop) {
        Request(rng, manager, draws);
        if (++n % 64 == 0) (void)manager.Index();
      }
    });
  }
  std::atomic<int> next_op{0};
  std::vector<std::thread> admins;
  for (int t = 0; t < kAdminThreads; ++t) {
    admins.emplace_back([&, t] {
      std::mt19937 rng(seed + t);
      while (next_op.fetch_add(1) < kOperations) {
        Operate(rng, manager);
        if (rng() % 2 == 0) absl::SleepFor(absl::Microseconds(rng() % 3000));
      }
    });
  }
  for (std::thread& t : admins) t.join();
  ASSERT_TRUE(manager.AwaitIdle(absl::Now() + absl::Seconds(60)).ok());
  stop = true;
  for (std::thread& t : requests) t.join();

  std::cout << "operations acknowledged " << counters_.acknowledged << ", loads "
            << loader.total_loads() << ", drains " << drains << ", requests routed "
            << counters_.routed << ", snapshots " << manager.Snapshot()->generation() << std::endl;
  EXPECT_EQ(counters_.refused, 0) << "a version acquired from a snapshot refused work";
  EXPECT_EQ(counters_.bad_tables, 0);
  EXPECT_EQ(counters_.slow_calls, 0);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_GT(counters_.routed, 0);
  EXPECT_GT(counters_.acknowledged, kOperations / 4);

  // The final state is the last acknowledged one.
  std::shared_ptr<const ServingSnapshot> snapshot = manager.Snapshot();
  int ready_total = 0;
  for (int m = 0; m < kModels; ++m) {
    const std::string model = ModelName(m);
    MutexLock lock(&model_mu_[m]);
    const Expected& e = expected_[m];
    SCOPED_TRACE(absl::StrCat(model, " aspired {", absl::StrJoin(e.aspired, ","), "} ",
                              e.routing.DebugString()));
    ASSERT_TRUE(e.known);
    absl::StatusOr<RoutingSpec> routing = manager.GetRouting(model);
    ASSERT_TRUE(routing.ok());
    EXPECT_EQ(*routing, e.routing) << routing->DebugString();
    const std::set<int64_t> named = e.routing.ReferencedVersions();
    std::set<int64_t> want_ready;
    for (int64_t v : e.aspired) {
      if (v != kBadVersion) want_ready.insert(v);
    }
    want_ready.insert(named.begin(), named.end());
    std::set<int64_t> ready;
    for (int64_t v = 1; v <= kMaxVersion; ++v) {
      absl::StatusOr<VersionStatus> s = manager.GetStatus(model, v);
      if (!s.ok()) {
        EXPECT_EQ(want_ready.count(v), 0u) << "version " << v;
        continue;
      }
      EXPECT_EQ(s->aspired, e.aspired.count(v) > 0) << s->DebugString();
      if (s->state == VersionState::kReady) ready.insert(v);
      if (v == kBadVersion && e.aspired.count(v) > 0) {
        EXPECT_EQ(s->state, VersionState::kFailed) << s->DebugString();
      }
      if (want_ready.count(v) == 0) {
        EXPECT_TRUE(s->state == VersionState::kUnavailable || s->state == VersionState::kFailed)
            << s->DebugString();
      }
    }
    EXPECT_EQ(ready, want_ready);
    ready_total += static_cast<int>(ready.size());
    const ServedModel* served = snapshot->Find(model);
    if (ready.empty() && e.aspired.empty()) {
      EXPECT_EQ(served, nullptr);
      continue;
    }
    ASSERT_NE(served, nullptr);
    std::set<int64_t> in_snapshot;
    for (const auto& [v, handle] : served->versions) {
      in_snapshot.insert(v);
      EXPECT_FALSE(AsFake(handle)->draining()) << "version " << v;
      if (e.aspired.count(v) > 0) {
        EXPECT_EQ(AsFake(handle)->config(), e.config) << "version " << v;
      }
    }
    EXPECT_EQ(in_snapshot, ready);
    EXPECT_EQ(served->routing.spec(), e.routing);
  }
  snapshot.reset();
  EXPECT_EQ(loader.live(), ready_total);  // everything unloaded was freed
  manager.Shutdown();
  EXPECT_EQ(loader.live(), 0);
}

}  // namespace
}  // namespace microbatch::lifecycle
