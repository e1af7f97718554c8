#include "server/core/lifecycle/manager.h"

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/clock.h"
#include "tests/core/fake_lifecycle.h"

namespace microbatch::lifecycle {
namespace {

using ::microbatch::lifecycle::testing::AsFake;
using ::microbatch::lifecycle::testing::FakeLoader;
using ::microbatch::lifecycle::testing::FakeVersion;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

AspiredVersions Aspire(std::vector<int64_t> versions, std::string config = "c1") {
  AspiredVersions a;
  a.versions = std::move(versions);
  a.config = std::move(config);
  return a;
}

absl::Time Soon() { return absl::Now() + absl::Seconds(20); }

ManagerOptions NoGrace() {
  ManagerOptions options;
  options.unload_grace = absl::ZeroDuration();
  return options;
}

VersionState StateOf(LifecycleManager& manager, const std::string& model, int64_t version) {
  absl::StatusOr<VersionStatus> s = manager.GetStatus(model, version);
  return s.ok() ? s->state : VersionState::kUnavailable;
}

// Polls (real time, up to 20 s) until the version is in `state`; for tests
// on a fake clock, whose waits only end on notifications.
bool PollState(LifecycleManager& manager, const std::string& model, int64_t version,
               VersionState state) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (StateOf(manager, model, version) == state) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return false;
}

// The version a default request for `model` goes to now, or -1.
int64_t DefaultVersion(const LifecycleManager& manager, const std::string& model) {
  absl::StatusOr<Acquired> a = manager.Snapshot()->Acquire(model, VersionSelector::Default());
  return a.ok() ? a->version : -1;
}

TEST(LifecycleManagerTest, LoadsInTheBackgroundAndServesWhenReady) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  loader.Block("mlp", 1);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());  // does not wait
  ASSERT_TRUE(loader.WaitForLoads("mlp", 1, 1));
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kLoading);
  EXPECT_EQ(manager.GetStatus("mlp", 1)->reason, "loading");
  // Known but nothing ready yet.
  absl::Status not_ready =
      manager.Snapshot()->Acquire("mlp", VersionSelector::Default()).status();
  EXPECT_EQ(not_ready.code(), absl::StatusCode::kUnavailable);
  absl::Status unknown = manager.Snapshot()->Acquire("other", VersionSelector::Default()).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr("model 'other' is not served (served: mlp)"));

  loader.Release("mlp", 1);
  ASSERT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());
  absl::StatusOr<Acquired> a = manager.Snapshot()->Acquire("mlp", VersionSelector::Default());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->version, 1);
  EXPECT_EQ(AsFake(a->handle)->config(), "c1");
  EXPECT_EQ(loader.live(), 1);
}

TEST(LifecycleManagerTest, LoadsBeforeItUnloads) {
  FakeLoader loader;
  // When the old version drains, its replacement is already served.
  std::atomic<int> drains_with_replacement{0};
  std::atomic<LifecycleManager*> self{nullptr};
  loader.OnDrain([&](FakeVersion* v) {
    absl::StatusOr<Acquired> a =
        self.load()->Snapshot()->Acquire("mlp", VersionSelector::Default());
    if (v->version() == 1 && a.ok() && a->version == 2) ++drains_with_replacement;
  });
  LifecycleManager manager(&loader, NoGrace());
  self = &manager;
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  ASSERT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());

  loader.Block("mlp", 2);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({2})).ok());
  ASSERT_TRUE(loader.WaitForLoads("mlp", 2, 1));
  // Requests keep going to 1 while 2 loads; 1 is kept on purpose.
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread requests([&] {
    while (!stop) {
      std::shared_ptr<const ServingSnapshot> snapshot = manager.Snapshot();
      absl::StatusOr<Acquired> a = snapshot->Acquire("mlp", VersionSelector::Default());
      if (!a.ok() || !AsFake(a->handle)->BeginWork()) {
        ++failures;
      } else {
        AsFake(a->handle)->EndWork();
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kReady);
  EXPECT_THAT(manager.GetStatus("mlp", 1)->reason, HasSubstr("kept until an aspired version is ready"));
  EXPECT_EQ(DefaultVersion(manager, "mlp"), 1);

  loader.Release("mlp", 2);
  ASSERT_TRUE(manager.AwaitReady("mlp", 2, Soon()).ok());
  ASSERT_TRUE(manager.AwaitUnloaded("mlp", 1, Soon()).ok());
  stop = true;
  requests.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(drains_with_replacement, 1);
  EXPECT_EQ(DefaultVersion(manager, "mlp"), 2);
  EXPECT_EQ(loader.live(), 1);
}

TEST(LifecycleManagerTest, FailedLoadLeavesServingUntouched) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  ASSERT_TRUE(manager.SetAspiredVersions("pair", Aspire({1})).ok());
  ASSERT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());
  ASSERT_TRUE(manager.AwaitReady("pair", 1, Soon()).ok());
  const uint64_t generation = manager.Snapshot()->generation();

  loader.Fail("mlp", 2, absl::InvalidArgumentError("config.pbtxt:3:7: unknown field 'bogus'"));
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({2})).ok());
  absl::Status ready = manager.AwaitReady("mlp", 2, Soon());
  EXPECT_EQ(ready.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ready.message(), HasSubstr("model 'mlp' version 2 failed to load: config.pbtxt:3:7"));
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());

  absl::StatusOr<VersionStatus> failed = manager.GetStatus("mlp", 2);
  EXPECT_EQ(failed->state, VersionState::kFailed);
  EXPECT_THAT(failed->reason, HasSubstr("unknown field 'bogus'"));
  EXPECT_EQ(failed->error.code(), absl::StatusCode::kInvalidArgument);
  // Version 1 still serves, the same handle, and so does the other model.
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kReady);
  EXPECT_EQ(DefaultVersion(manager, "mlp"), 1);
  EXPECT_EQ(DefaultVersion(manager, "pair"), 1);
  EXPECT_GT(manager.Snapshot()->generation(), generation);
  EXPECT_EQ(loader.live(), 2);
}

TEST(LifecycleManagerTest, FailedVersionIsRetriedOnlyWhenAskedOrWhenItsConfigChanges) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  loader.Fail("mlp", 1, absl::InternalError("out of memory"));
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  EXPECT_FALSE(manager.AwaitReady("mlp", 1, Soon()).ok());
  // A poll with the same set and config does not load it again.
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  EXPECT_EQ(loader.loads("mlp", 1), 1);
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kFailed);

  // An explicit retry: LOADING at once, so a waiter never sees the old FAILED.
  loader.Succeed("mlp", 1);
  loader.Block("mlp", 1);
  AspiredVersions retry = Aspire({1});
  retry.retry_failed = true;
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", retry).ok());
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kLoading);
  loader.Release("mlp", 1);
  EXPECT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());
  EXPECT_EQ(loader.loads("mlp", 1), 2);

  // A new config retries too.
  loader.Fail("mlp", 2, absl::InternalError("bad"));
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2}, "c1")).ok());
  EXPECT_FALSE(manager.AwaitReady("mlp", 2, Soon()).ok());
  loader.Succeed("mlp", 2);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2}, "c2")).ok());
  EXPECT_TRUE(manager.AwaitReady("mlp", 2, Soon()).ok());
  EXPECT_EQ(loader.loads("mlp", 2), 2);
}

TEST(LifecycleManagerTest, VersionMissingForLessThanTheGracePeriodIsNotUnloaded) {
  FakeClock clock;
  FakeLoader loader;
  ManagerOptions options;
  options.clock = &clock;
  options.unload_grace = absl::Seconds(10);
  LifecycleManager manager(&loader, options);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2})).ok());
  ASSERT_TRUE(PollState(manager, "mlp", 1, VersionState::kReady));
  ASSERT_TRUE(PollState(manager, "mlp", 2, VersionState::kReady));

  // A poll that misses version 1 (a directory being replaced)...
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({2})).ok());
  clock.Advance(absl::Seconds(5));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kReady);
  EXPECT_THAT(manager.GetStatus("mlp", 1)->reason, HasSubstr("grace period"));
  // ...and the next that sees it again: it never unloads.
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2})).ok());
  EXPECT_EQ(manager.GetStatus("mlp", 1)->reason, "");
  clock.Advance(absl::Seconds(20));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kReady);
  EXPECT_EQ(loader.loads("mlp", 1), 1);

  // Gone for good: unloaded once the grace period has passed, not before.
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({2})).ok());
  clock.Advance(absl::Seconds(9));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kReady);
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(PollState(manager, "mlp", 1, VersionState::kUnavailable));
  EXPECT_EQ(loader.live(), 1);

  // An explicit unload skips the grace period.
  AspiredVersions unload = Aspire({});
  unload.skip_grace = true;
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", unload).ok());
  EXPECT_TRUE(PollState(manager, "mlp", 2, VersionState::kUnavailable));
  EXPECT_EQ(loader.live(), 0);
}

TEST(LifecycleManagerTest, LoadsOfDifferentModelsRunConcurrently) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  loader.Block("a", 1);
  loader.Block("b", 1);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(manager.SetAspiredVersions("a", Aspire({1})).ok());
  ASSERT_TRUE(manager.SetAspiredVersions("b", Aspire({1})).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));  // callers never wait for loads
  EXPECT_TRUE(loader.WaitForRunning(2));
  loader.Release("a", 1);
  loader.Release("b", 1);
  EXPECT_TRUE(manager.AwaitReady("a", 1, Soon()).ok());
  EXPECT_TRUE(manager.AwaitReady("b", 1, Soon()).ok());
  EXPECT_EQ(loader.max_running(), 2);
}

TEST(LifecycleManagerTest, VersionsOfOneModelLoadOneAtATimeHighestFirst) {
  FakeLoader loader;
  ManagerOptions options = NoGrace();
  options.load_threads = 4;
  LifecycleManager manager(&loader, options);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2, 3})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  EXPECT_THAT(loader.order(), ElementsAre("mlp:3", "mlp:2", "mlp:1"));
  EXPECT_EQ(loader.max_running_per_model(), 1);
}

TEST(LifecycleManagerTest, UnloadDrainsBeforeTheHandleIsDropped) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  ASSERT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());
  FakeVersion* v1;
  {
    std::shared_ptr<const ServingSnapshot> snapshot = manager.Snapshot();
    absl::StatusOr<Acquired> a = snapshot->Acquire("mlp", VersionSelector::Number(1));
    ASSERT_TRUE(a.ok());
    v1 = AsFake(a->handle);
    ASSERT_TRUE(v1->BeginWork());  // a request in flight; the test keeps no handle
  }
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({})).ok());
  ASSERT_TRUE(manager.WaitUntil("mlp", 1, [](const VersionStatus& s) {
                       return s.state == VersionState::kUnloading;
                     }, Soon()).ok());
  EXPECT_EQ(manager.Snapshot()->Find("mlp"), nullptr);  // out of the snapshot first
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while (!v1->draining() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_TRUE(v1->draining());  // refuses new work...
  EXPECT_FALSE(v1->BeginWork());
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kUnloading);  // ...but waits for ours
  EXPECT_EQ(loader.live(), 1);
  v1->EndWork();
  ASSERT_TRUE(manager.AwaitUnloaded("mlp", 1, Soon()).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  EXPECT_EQ(loader.live(), 0);  // the memory went with the manager's handle
}

TEST(LifecycleManagerTest, RequestsHoldingTheHandleKeepTheMemoryUntilTheyFinish) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  ASSERT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());
  std::shared_ptr<LoadedVersion> handle =
      manager.Snapshot()->Acquire("mlp", VersionSelector::Default())->handle;
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({})).ok());
  ASSERT_TRUE(manager.AwaitUnloaded("mlp", 1, Soon()).ok());
  EXPECT_TRUE(AsFake(handle)->drained());
  EXPECT_EQ(loader.live(), 1);
  handle.reset();
  EXPECT_EQ(loader.live(), 0);
}

TEST(LifecycleManagerTest, DrainWaitsForSnapshotsThatStillListTheVersion) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  ASSERT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());
  std::shared_ptr<const ServingSnapshot> held = manager.Snapshot();
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({})).ok());
  absl::SleepFor(absl::Milliseconds(50));
  // A request that looked the version up in `held` can still hand it work.
  absl::StatusOr<Acquired> a = held->Acquire("mlp", VersionSelector::Default());
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(AsFake(a->handle)->draining());
  ASSERT_TRUE(AsFake(a->handle)->BeginWork());
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kUnloading);
  held.reset();
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kUnloading);  // draining our work
  AsFake(a->handle)->EndWork();
  EXPECT_TRUE(manager.AwaitUnloaded("mlp", 1, Soon()).ok());
  EXPECT_EQ(AsFake(a->handle)->drain_calls(), 1);
}

TEST(LifecycleManagerTest, ASnapshotHeldTooLongDelaysTheDrainOnlyUpToTheTimeout) {
  FakeLoader loader;
  ManagerOptions options = NoGrace();
  options.snapshot_release_timeout = absl::Milliseconds(30);
  LifecycleManager manager(&loader, options);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  ASSERT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());
  std::shared_ptr<const ServingSnapshot> held = manager.Snapshot();
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({})).ok());
  EXPECT_TRUE(manager.AwaitUnloaded("mlp", 1, Soon()).ok());
  EXPECT_EQ(loader.live(), 1);  // `held` still lists it
  held.reset();
  EXPECT_EQ(loader.live(), 0);
}

TEST(LifecycleManagerTest, LabelsNameOnlyReadyVersions) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  EXPECT_EQ(manager.SetLabel("mlp", "stable", 1).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  ASSERT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());
  loader.Block("mlp", 2);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2})).ok());

  absl::Status loading = manager.SetLabel("mlp", "canary", 2);
  EXPECT_EQ(loading.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(loading.message(), HasSubstr("label 'canary' names version 2, which is not ready"));
  EXPECT_EQ(manager.SetLabel("mlp", "canary", 7).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager.SetLabel("mlp", "2", 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager.RemoveLabel("mlp", "canary").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager.SetCanary("mlp", {{2, 100}}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager.SetShadow("mlp", ShadowSpec{2, 0.1}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(manager.GetRouting("mlp")->labels.empty());

  loader.Release("mlp", 2);
  ASSERT_TRUE(manager.AwaitReady("mlp", 2, Soon()).ok());
  EXPECT_TRUE(manager.SetLabel("mlp", "canary", 2).ok());
  absl::StatusOr<Acquired> a =
      manager.Snapshot()->Acquire("mlp", VersionSelector::Label("canary"));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->version, 2);
  EXPECT_TRUE(manager.RemoveLabel("mlp", "canary").ok());
  EXPECT_EQ(manager.Snapshot()->Acquire("mlp", VersionSelector::Label("canary")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(LifecycleManagerTest, RelabelIsAtomicFastAndLoadsNothing) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  ASSERT_TRUE(manager.SetLabel("mlp", "stable", 2).ok());
  EXPECT_EQ(DefaultVersion(manager, "mlp"), 2);
  const int loads = loader.total_loads();

  // Requests by label and by default run throughout the rollback.
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> requests;
  for (int t = 0; t < 1; ++t) {
    requests.emplace_back([&] {
      while (!stop) {
        std::shared_ptr<const ServingSnapshot> s = manager.Snapshot();
        if (!s->Acquire("mlp", VersionSelector::Label("stable")).ok()) ++errors;
        if (!s->Acquire("mlp", VersionSelector::Default()).ok()) ++errors;
      }
    });
  }
  const absl::Time start = absl::Now();
  ASSERT_TRUE(manager.SetLabel("mlp", "stable", 1).ok());  // the rollback
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
  // No request that starts after the call returns goes to the old target.
  for (int i = 0; i < 1000; ++i) {
    std::shared_ptr<const ServingSnapshot> s = manager.Snapshot();
    ASSERT_EQ(s->Acquire("mlp", VersionSelector::Label("stable"))->version, 1);
    ASSERT_EQ(s->Acquire("mlp", VersionSelector::Default())->version, 1);
  }
  stop = true;
  for (std::thread& t : requests) t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(loader.total_loads(), loads);
}

TEST(LifecycleManagerTest, ANamedVersionStaysLoadedUntilNothingNamesIt) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  ASSERT_TRUE(manager.SetLabel("mlp", "stable", 1).ok());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({2})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  absl::StatusOr<VersionStatus> kept = manager.GetStatus("mlp", 1);
  EXPECT_EQ(kept->state, VersionState::kReady);
  EXPECT_FALSE(kept->aspired);
  EXPECT_THAT(kept->reason, HasSubstr("names it"));
  EXPECT_EQ(DefaultVersion(manager, "mlp"), 1);

  ASSERT_TRUE(manager.SetLabel("mlp", "stable", 2).ok());
  EXPECT_TRUE(manager.AwaitUnloaded("mlp", 1, Soon()).ok());
  EXPECT_EQ(DefaultVersion(manager, "mlp"), 2);
}

TEST(LifecycleManagerTest, UnloadingAModelClearsItsRouting) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  ASSERT_TRUE(manager.SetLabel("mlp", "stable", 1).ok());
  ASSERT_TRUE(manager.SetCanary("mlp", {{2, 500}}).ok());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({})).ok());
  EXPECT_EQ(*manager.GetRouting("mlp"), RoutingSpec());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  EXPECT_EQ(StateOf(manager, "mlp", 1), VersionState::kUnavailable);
  EXPECT_EQ(StateOf(manager, "mlp", 2), VersionState::kUnavailable);
  EXPECT_EQ(manager.Snapshot()->Find("mlp"), nullptr);
  EXPECT_EQ(loader.live(), 0);
}

TEST(LifecycleManagerTest, CanaryAndShadowThroughTheSnapshot) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 2, 3})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  ASSERT_TRUE(manager.SetCanary("mlp", {{3, 2000}}).ok());
  ASSERT_TRUE(manager.SetShadow("mlp", ShadowSpec{2, 1.0}).ok());
  std::shared_ptr<const ServingSnapshot> s = manager.Snapshot();
  EXPECT_EQ(s->Find("mlp")->routing.default_version(), 1);
  int canary = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("req", i);
    absl::StatusOr<Acquired> a = s->Acquire("mlp", VersionSelector::Default(), key);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->version, KeyBucket(key) >= 8000 ? 3 : 1);
    if (a->version == 3) ++canary;
    EXPECT_EQ(a->shadow_version, 2);
    ASSERT_NE(a->shadow, nullptr);
    EXPECT_EQ(AsFake(a->shadow)->version(), 2);
  }
  EXPECT_NEAR(canary, 200, 40);
  s.reset();  // a held snapshot would delay the unload below
  // A shadowed version is not unloaded while mirrored to.
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1, 3})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  EXPECT_EQ(StateOf(manager, "mlp", 2), VersionState::kReady);
  ASSERT_TRUE(manager.SetShadow("mlp", std::nullopt).ok());
  EXPECT_TRUE(manager.AwaitUnloaded("mlp", 2, Soon()).ok());
}

TEST(LifecycleManagerTest, AwaitNeverReturnsEarly) {
  FakeClock clock;
  FakeLoader loader;
  ManagerOptions options = NoGrace();
  options.clock = &clock;
  LifecycleManager manager(&loader, options);
  loader.Block("mlp", 1);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  const absl::Time deadline = clock.Now() + absl::Seconds(1);
  auto wait = std::async(std::launch::async,
                         [&] { return manager.AwaitReady("mlp", 1, deadline); });
  clock.Advance(absl::Milliseconds(600));
  EXPECT_EQ(wait.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  clock.Advance(absl::Milliseconds(600));
  ASSERT_EQ(wait.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  absl::Status late = wait.get();
  EXPECT_EQ(late.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(late.message(), HasSubstr("model 'mlp' version 1 LOADING"));

  // Real time: a short deadline waits at least that long.
  FakeLoader real_loader;
  LifecycleManager real(&real_loader, NoGrace());
  real_loader.Block("mlp", 1);
  ASSERT_TRUE(real.SetAspiredVersions("mlp", Aspire({1})).ok());
  const absl::Time start = absl::Now();
  EXPECT_EQ(real.AwaitReady("mlp", 1, start + absl::Milliseconds(30)).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  // Asking for a version nobody loads fails at once.
  EXPECT_EQ(real.AwaitReady("mlp", 9, Soon()).code(), absl::StatusCode::kFailedPrecondition);
  real_loader.Release("mlp", 1);
  loader.Release("mlp", 1);
}

TEST(LifecycleManagerTest, IndexListsEveryVersionWithItsState) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  loader.Fail("b", 2, absl::NotFoundError("no model.pt"));
  ASSERT_TRUE(manager.SetAspiredVersions("a", Aspire({1})).ok());
  ASSERT_TRUE(manager.SetAspiredVersions("b", Aspire({1, 2})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  ASSERT_TRUE(manager.SetAspiredVersions("a", Aspire({})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  loader.Block("c", 4);
  ASSERT_TRUE(manager.SetAspiredVersions("c", Aspire({4})).ok());

  std::vector<std::string> index;
  for (const VersionStatus& s : manager.Index()) index.push_back(s.DebugString());
  EXPECT_THAT(index, ElementsAre("model 'a' version 1 UNAVAILABLE (unloaded)",
                                 "model 'b' version 1 READY",
                                 "model 'b' version 2 FAILED (NOT_FOUND: no model.pt)",
                                 "model 'c' version 4 LOADING (loading)"));
  EXPECT_EQ(manager.GetStatus("b", 3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(manager.GetStatus("b", 3).status().message(), HasSubstr("known: 1, 2"));
  loader.Release("c", 4);
}

TEST(LifecycleManagerTest, ConfigChangeReloadsLoadBeforeUnload) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1}, "c1")).ok());
  ASSERT_TRUE(manager.AwaitReady("mlp", 1, Soon()).ok());
  loader.Block("mlp", 1);
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1}, "c2")).ok());
  ASSERT_TRUE(loader.WaitForLoads("mlp", 1, 2));
  absl::StatusOr<VersionStatus> reloading = manager.GetStatus("mlp", 1);
  EXPECT_EQ(reloading->state, VersionState::kReady);
  EXPECT_TRUE(reloading->reload_pending);
  std::shared_ptr<LoadedVersion> old =
      manager.Snapshot()->Acquire("mlp", VersionSelector::Default())->handle;
  EXPECT_EQ(AsFake(old)->config(), "c1");
  loader.Release("mlp", 1);
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  EXPECT_EQ(AsFake(manager.Snapshot()->Acquire("mlp", VersionSelector::Default())->handle)->config(),
            "c2");
  EXPECT_TRUE(AsFake(old)->drained());
  old.reset();
  EXPECT_EQ(loader.live(), 1);

  // A failed reload keeps the previous load serving.
  loader.Fail("mlp", 1, absl::InvalidArgumentError("bad config"));
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1}, "c3")).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  absl::StatusOr<VersionStatus> kept = manager.GetStatus("mlp", 1);
  EXPECT_EQ(kept->state, VersionState::kReady);
  EXPECT_THAT(kept->reason, HasSubstr("reload failed"));
  EXPECT_EQ(kept->error.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AsFake(manager.Snapshot()->Acquire("mlp", VersionSelector::Default())->handle)->config(),
            "c2");
  EXPECT_EQ(loader.loads("mlp", 1), 3);
}

TEST(LifecycleManagerTest, LogsOneLinePerStateChange) {
  FakeLoader loader;
  LifecycleManager manager(&loader, NoGrace());
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({1})).ok());
  ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  const std::string log = ::testing::internal::GetCapturedStderr();
  std::vector<std::string> lines = absl::StrSplit(log, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << log;
  EXPECT_THAT(lines[0], HasSubstr("model_version_state model=mlp version=1 state=LOADING "
                                  "from=UNAVAILABLE reason=queued"));
  EXPECT_THAT(lines[1], HasSubstr("model_version_state model=mlp version=1 state=READY "
                                  "from=LOADING"));
}

TEST(LifecycleManagerTest, PublishCallbackSeesIncreasingGenerations) {
  FakeLoader loader;
  ManagerOptions options = NoGrace();
  Mutex mu;
  std::vector<uint64_t> seen;
  LifecycleManager* self = nullptr;
  std::atomic<bool> called_back{false};
  options.on_publish = [&](const std::shared_ptr<const ServingSnapshot>& s) {
    {
      MutexLock lock(&mu);
      seen.push_back(s->generation());
    }
    // It may call the manager.
    if (self != nullptr) {
      (void)self->Index();
      called_back = true;
    }
  };
  LifecycleManager manager(&loader, options);
  self = &manager;
  for (int v = 1; v <= 5; ++v) {
    ASSERT_TRUE(manager.SetAspiredVersions("mlp", Aspire({v})).ok());
    ASSERT_TRUE(manager.AwaitIdle(Soon()).ok());
  }
  MutexLock lock(&mu);
  ASSERT_FALSE(seen.empty());
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1], seen[i]);
  EXPECT_EQ(seen.back(), manager.Snapshot()->generation());
  EXPECT_TRUE(called_back);
}

TEST(LifecycleManagerTest, ShutdownWaitsForLoadsAndDrainsEverything) {
  FakeLoader loader;
  auto manager = std::make_unique<LifecycleManager>(&loader, NoGrace());
  ASSERT_TRUE(manager->SetAspiredVersions("a", Aspire({1, 2})).ok());
  ASSERT_TRUE(manager->AwaitIdle(Soon()).ok());
  loader.Block("b", 1);
  ASSERT_TRUE(manager->SetAspiredVersions("b", Aspire({1})).ok());
  ASSERT_TRUE(loader.WaitForLoads("b", 1, 1));
  auto waiter = std::async(std::launch::async, [&] {
    return manager->AwaitUnloaded("a", 1, absl::InfiniteFuture());
  });
  auto shutdown = std::async(std::launch::async, [&] { manager->Shutdown(); });
  EXPECT_EQ(shutdown.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  loader.Release("b", 1);  // loads cannot be cancelled: Shutdown waits for it
  ASSERT_EQ(shutdown.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(loader.live(), 0);
  for (const VersionStatus& s : manager->Index()) {
    EXPECT_EQ(s.state, VersionState::kUnavailable) << s.DebugString();
  }
  EXPECT_TRUE(manager->Snapshot()->ModelNames().empty());
  EXPECT_EQ(manager->SetAspiredVersions("a", Aspire({1})).code(),
            absl::StatusCode::kFailedPrecondition);
  absl::Status waited = waiter.get();
  EXPECT_TRUE(waited.ok() || waited.code() == absl::StatusCode::kCancelled) << waited;
  manager.reset();  // a second Shutdown, from the destructor
}

}  // namespace
}  // namespace microbatch::lifecycle
