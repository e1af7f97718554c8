// A server-wide byte budget for the tensors requests hold while they are
// decoded, queued, run and answered (Predict requests and BatchPredict
// chunks alike), so that many large requests at once are refused instead of
// growing the process without bound.
#ifndef MICROBATCH_SERVER_CORE_MEMORY_BUDGET_H_
#define MICROBATCH_SERVER_CORE_MEMORY_BUDGET_H_

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"

namespace microbatch {

// Thread-safe and lock-free; must outlive its leases.
class MemoryBudget {
 public:
  // Payload type URL set on Reserve's RESOURCE_EXHAUSTED.
  static constexpr const char* kExhaustedPayload = "type.microbatch.dev/memory_budget";

  // `limit_bytes` <= 0: unlimited (Reserve always succeeds, and counts).
  explicit MemoryBudget(int64_t limit_bytes) : limit_(limit_bytes) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Bytes held until destroyed (or moved from).
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    ~Lease() { Release(); }
    int64_t bytes() const { return bytes_; }

   private:
    friend class MemoryBudget;
    void Release();
    MemoryBudget* budget_ = nullptr;
    int64_t bytes_ = 0;
    bool large_ = false;
  };

  // Holds `bytes` (>= 0) until the lease goes. A request of more than 1/16 of
  // the budget is large: large leases together hold at most 3/4 of it, so
  // that small requests are still served while large ones wait for room.
  // RESOURCE_EXHAUSTED (payload kExhaustedPayload) with the figures when the
  // bytes do not fit now; never blocks.
  absl::StatusOr<Lease> Reserve(int64_t bytes);

  int64_t limit() const { return limit_; }
  int64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }

 private:
  const int64_t limit_;
  std::atomic<int64_t> in_use_{0};
  std::atomic<int64_t> large_in_use_{0};
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_MEMORY_BUDGET_H_
