#include "server/core/memory_budget.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace microbatch {

MemoryBudget::Lease& MemoryBudget::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    large_ = std::exchange(other.large_, false);
  }
  return *this;
}

void MemoryBudget::Lease::Release() {
  if (budget_ == nullptr) return;
  budget_->in_use_.fetch_sub(bytes_, std::memory_order_relaxed);
  if (large_) budget_->large_in_use_.fetch_sub(bytes_, std::memory_order_relaxed);
  budget_ = nullptr;
  bytes_ = 0;
}

absl::StatusOr<MemoryBudget::Lease> MemoryBudget::Reserve(int64_t bytes) {
  if (bytes < 0) bytes = 0;
  Lease lease;
  lease.budget_ = this;
  lease.bytes_ = bytes;
  if (limit_ <= 0) {
    in_use_.fetch_add(bytes, std::memory_order_relaxed);
    return lease;
  }
  auto exhausted = [&](const char* what, int64_t held, int64_t cap) {
    lease.budget_ = nullptr;  // nothing to release
    absl::Status status = absl::ResourceExhaustedError(absl::StrCat(
        "memory budget: the request needs ", bytes, " bytes but ", what, " hold ", held, " of ",
        cap, " bytes (--memory_budget_mb); retry later or send smaller requests"));
    status.SetPayload(kExhaustedPayload, absl::Cord("1"));
    return status;
  };
  lease.large_ = bytes > limit_ / 16;
  if (lease.large_) {
    const int64_t large_cap = limit_ / 4 * 3;
    int64_t large = large_in_use_.load(std::memory_order_relaxed);
    do {
      if (large + bytes > large_cap) return exhausted("large requests", large, large_cap);
    } while (!large_in_use_.compare_exchange_weak(large, large + bytes, std::memory_order_relaxed));
  }
  int64_t used = in_use_.load(std::memory_order_relaxed);
  do {
    if (used + bytes > limit_) {
      if (lease.large_) large_in_use_.fetch_sub(bytes, std::memory_order_relaxed);
      return exhausted("requests in flight", used, limit_);
    }
  } while (!in_use_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return lease;
}

}  // namespace microbatch
