#include "server/core/inference_statistics.h"

#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

TEST(InferenceStatisticsTest, StartsAtZero) {
  InferenceStatistics statistics;
  InferenceStatisticsSnapshot s = statistics.Snapshot();
  EXPECT_EQ(s.last_inference_ms, 0u);
  EXPECT_EQ(s.inference_count, 0u);
  EXPECT_EQ(s.execution_count, 0u);
  EXPECT_EQ(s.success.count, 0u);
  EXPECT_TRUE(s.batches.empty());
}

TEST(InferenceStatisticsTest, CountsRequestsBatchesAndTimes) {
  InferenceStatistics statistics;
  const absl::Time now = absl::FromUnixMillis(1'700'000'000'123);
  statistics.RecordRequest(true, absl::Microseconds(300), now);
  statistics.RecordRequest(true, absl::Microseconds(500), now + absl::Milliseconds(1));
  statistics.RecordRequest(false, absl::Microseconds(20), now + absl::Milliseconds(2));
  statistics.RecordQueueWait(absl::Microseconds(40));
  statistics.RecordQueueWait(absl::Microseconds(60));
  statistics.RecordBatch(/*rows=*/8, /*requests=*/2, absl::Microseconds(100));
  statistics.RecordBatch(/*rows=*/1, /*requests=*/1, absl::Microseconds(30));
  statistics.RecordBatch(/*rows=*/8, /*requests=*/3, absl::Microseconds(110));
  InferenceStatisticsSnapshot s = statistics.Snapshot();
  EXPECT_EQ(s.last_inference_ms, 1'700'000'000'125u);
  EXPECT_EQ(s.success.count, 2u);
  EXPECT_EQ(s.success.ns, 800'000u);
  EXPECT_EQ(s.fail.count, 1u);
  EXPECT_EQ(s.fail.ns, 20'000u);
  EXPECT_EQ(s.queue.count, 2u);
  EXPECT_EQ(s.queue.ns, 100'000u);
  EXPECT_EQ(s.inference_count, 17u);
  EXPECT_EQ(s.execution_count, 3u);
  // Each request carries its batch's model time.
  EXPECT_EQ(s.compute_infer.count, 6u);
  EXPECT_EQ(s.compute_infer.ns, 2 * 100'000u + 30'000u + 3 * 110'000u);
  ASSERT_EQ(s.batches.size(), 2u);
  EXPECT_EQ(s.batches[0].batch_size, 1);
  EXPECT_EQ(s.batches[0].compute.count, 1u);
  EXPECT_EQ(s.batches[0].compute.ns, 30'000u);
  EXPECT_EQ(s.batches[1].batch_size, 8);
  EXPECT_EQ(s.batches[1].compute.count, 2u);
  EXPECT_EQ(s.batches[1].compute.ns, 210'000u);
}

// Run under ThreadSanitizer: recorders and readers on many threads, and no
// count lost.
TEST(InferenceStatisticsTest, ConcurrentRecordingLosesNothing) {
  InferenceStatistics statistics;
  constexpr int kThreads = 4;
  constexpr int kEach = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        statistics.RecordRequest(i % 10 != 0, absl::Nanoseconds(100), absl::Now());
        statistics.RecordQueueWait(absl::Nanoseconds(10));
        statistics.RecordBatch(1 + (i + t) % 4, 1, absl::Nanoseconds(50));
        if (i % 500 == 0) (void)statistics.Snapshot();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  InferenceStatisticsSnapshot s = statistics.Snapshot();
  EXPECT_EQ(s.success.count + s.fail.count, uint64_t{kThreads * kEach});
  EXPECT_EQ(s.fail.count, uint64_t{kThreads * kEach / 10});
  EXPECT_EQ(s.success.ns + s.fail.ns, uint64_t{kThreads * kEach * 100});
  EXPECT_EQ(s.queue.count, uint64_t{kThreads * kEach});
  EXPECT_EQ(s.execution_count, uint64_t{kThreads * kEach});
  uint64_t batches = 0;
  for (const BatchSizeStatistic& b : s.batches) batches += b.compute.count;
  EXPECT_EQ(batches, uint64_t{kThreads * kEach});
  EXPECT_EQ(s.batches.size(), 4u);
}

}  // namespace
}  // namespace microbatch
