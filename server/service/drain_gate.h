// The calls one front end has accepted and not yet answered, and the point
// from which it accepts no more (a graceful drain).
#ifndef MICROBATCH_SERVER_SERVICE_DRAIN_GATE_H_
#define MICROBATCH_SERVER_SERVICE_DRAIN_GATE_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"

namespace microbatch {

// Thread-safe (sequentially consistent atomics).
class DrainGate {
 public:
  // Counts a call in and returns true, unless Close was called: then counts
  // nothing and returns false. A call let in before Close stays counted by
  // in_flight() until its Exit, so a drain that calls Close and then waits
  // for in_flight() == 0 misses none.
  bool Enter() {
    in_flight_.fetch_add(1);
    if (open_.load()) return true;
    in_flight_.fetch_sub(1);
    return false;
  }
  // Counts out a call that Enter let in; once per such call.
  void Exit() { in_flight_.fetch_sub(1); }
  // From now on Enter refuses.
  void Close() { open_.store(false); }
  int64_t in_flight() const { return in_flight_.load(); }

  // What a front end answers a call that Enter refused.
  static absl::Status Draining() {
    return absl::UnavailableError("the server is shutting down; retry on another replica");
  }

 private:
  std::atomic<bool> open_{true};
  std::atomic<int64_t> in_flight_{0};
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_DRAIN_GATE_H_
