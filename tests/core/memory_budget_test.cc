#include "server/core/memory_budget.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

using ::testing::HasSubstr;

TEST(MemoryBudgetTest, RefusesBeyondTheLimitAndReleasesWithTheLease) {
  MemoryBudget budget(1600);
  absl::StatusOr<MemoryBudget::Lease> a = budget.Reserve(90);  // small: <= 100
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(budget.in_use(), 90);
  {
    absl::StatusOr<MemoryBudget::Lease> b = budget.Reserve(1000);  // large
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(budget.in_use(), 1090);
    absl::StatusOr<MemoryBudget::Lease> c = budget.Reserve(300);  // large: 1300 > 1200
    EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(c.status().message(), HasSubstr("needs 300 bytes but large requests hold 1000"));
    EXPECT_TRUE(c.status().GetPayload(MemoryBudget::kExhaustedPayload).has_value());
    // Small requests still fit in the quarter kept from large ones.
    std::vector<MemoryBudget::Lease> small;
    for (int i = 0; i < 5; ++i) {
      absl::StatusOr<MemoryBudget::Lease> s = budget.Reserve(100);
      ASSERT_TRUE(s.ok()) << i;
      small.push_back(std::move(*s));
    }
    EXPECT_EQ(budget.in_use(), 1590);
    EXPECT_EQ(budget.Reserve(100).status().code(), absl::StatusCode::kResourceExhausted);
  }
  EXPECT_EQ(budget.in_use(), 90);
  EXPECT_TRUE(budget.Reserve(1000).ok());
  EXPECT_EQ(budget.in_use(), 90);  // the temporary lease was released at once
}

TEST(MemoryBudgetTest, MovedLeaseReleasesOnce) {
  MemoryBudget budget(1000);
  MemoryBudget::Lease outer;
  {
    absl::StatusOr<MemoryBudget::Lease> lease = budget.Reserve(40);
    ASSERT_TRUE(lease.ok());
    outer = std::move(*lease);
  }
  EXPECT_EQ(budget.in_use(), 40);
  outer = MemoryBudget::Lease();
  EXPECT_EQ(budget.in_use(), 0);
}

TEST(MemoryBudgetTest, UnlimitedCountsButNeverRefuses) {
  MemoryBudget budget(0);
  absl::StatusOr<MemoryBudget::Lease> lease = budget.Reserve(int64_t{1} << 40);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(budget.in_use(), int64_t{1} << 40);
}

// Concurrent reservations never exceed the limit, and all is returned.
TEST(MemoryBudgetTest, ConcurrentLeasesStayWithinTheLimit) {
  MemoryBudget budget(10000);
  std::atomic<int64_t> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        absl::StatusOr<MemoryBudget::Lease> lease = budget.Reserve(100 + (i + t) % 1500);
        if (!lease.ok()) continue;
        int64_t seen = budget.in_use();
        int64_t old = peak.load();
        while (seen > old && !peak.compare_exchange_weak(old, seen)) {
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_LE(peak.load(), 10000);
  EXPECT_EQ(budget.in_use(), 0);
}

}  // namespace
}  // namespace microbatch
