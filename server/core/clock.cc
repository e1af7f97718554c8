#include "server/core/clock.h"

#include <chrono>
#include <thread>
#include <vector>

#include "absl/time/clock.h"

namespace microbatch {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void WaitUntil(CondVar* cv, Mutex* mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (deadline == absl::InfiniteFuture()) {
      cv->Wait(mu);
      return;
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return;
    cv->WaitFor(mu, absl::ToChronoNanoseconds(left));
  }
  absl::Duration Yield() override {
    const absl::Time before = absl::Now();
    std::this_thread::yield();
    return absl::Now() - before;
  }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* clock = new RealClock;
  return clock;
}

void FakeClock::WaitUntil(CondVar* cv, Mutex* mu, absl::Time deadline) {
  if (Now() >= deadline) return;
  cv->Wait(mu);
}

absl::Duration FakeClock::Yield() {
  std::this_thread::yield();
  return absl::Nanoseconds(yield_cost_ns_.load());
}

int FakeClock::AddListener(std::function<void()> wake) {
  MutexLock lock(&mu_);
  int id = next_id_++;
  listeners_[id] = std::move(wake);
  return id;
}

void FakeClock::RemoveListener(int id) {
  MutexLock lock(&mu_);
  listeners_.erase(id);
}

void FakeClock::Advance(absl::Duration d) {
  now_ns_.fetch_add(absl::ToInt64Nanoseconds(d));
  MutexLock lock(&mu_);
  for (auto& [id, wake] : listeners_) wake();
}

}  // namespace microbatch
