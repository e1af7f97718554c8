// Time source for the batcher, replaceable by a fake in tests.
#ifndef MICROBATCH_SERVER_CORE_CLOCK_H_
#define MICROBATCH_SERVER_CORE_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>

#include "absl/time/time.h"
#include "server/core/sync.h"

namespace microbatch {

// Thread-safe. Now() is the current time; WaitUntil() blocks on `cv` (with
// `mu` held) until it is notified or Now() reaches `deadline`. A clock may
// return early; callers re-check their condition.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  virtual void WaitUntil(CondVar* cv, Mutex* mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
  // Offers the processor to other runnable threads for a moment (a polling
  // loop's pause) and returns how long the caller was away: about the cost
  // of the call when no other thread wanted the processor, longer when one
  // ran meanwhile. Never moves Now().
  virtual absl::Duration Yield() = 0;

  // Registers `wake`, called whenever the clock's time jumps (fake clocks
  // only; the real clock never calls it). Returns an id for RemoveListener.
  virtual int AddListener(std::function<void()> wake) { return 0; }
  virtual void RemoveListener(int id) {}

  // The process-wide wall clock.
  static Clock* Real();
};

// A clock that moves only when Advance() is called. Thread-safe.
// WaitUntil() waits for a notification only (never on real time), so
// waiters must register a listener that notifies their condition variable.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch() + absl::Hours(1)) : now_ns_(ToNs(start)) {}

  absl::Time Now() const override { return absl::UnixEpoch() + absl::Nanoseconds(now_ns_.load()); }
  void WaitUntil(CondVar* cv, Mutex* mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  int AddListener(std::function<void()> wake) override;
  void RemoveListener(int id) override;
  // Yields the thread and returns the yield cost (SetYieldCost), which
  // stands in for the time other threads ran; Now() stays where it is.
  absl::Duration Yield() override;

  // Moves time forward by `d` and calls every listener.
  void Advance(absl::Duration d);
  // What Yield() returns from now on. Default zero.
  void SetYieldCost(absl::Duration cost) { yield_cost_ns_.store(absl::ToInt64Nanoseconds(cost)); }

 private:
  static int64_t ToNs(absl::Time t) { return absl::ToInt64Nanoseconds(t - absl::UnixEpoch()); }

  std::atomic<int64_t> now_ns_;
  std::atomic<int64_t> yield_cost_ns_{0};
  Mutex mu_;
  int next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int, std::function<void()>> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_CLOCK_H_
