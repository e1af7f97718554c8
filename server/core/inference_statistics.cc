#include "server/core/inference_statistics.h"

#include <algorithm>

namespace microbatch {
namespace {

uint64_t Nanos(absl::Duration d) { return static_cast<uint64_t>(std::max<int64_t>(0, absl::ToInt64Nanoseconds(d))); }

}  // namespace

void InferenceStatistics::Counter::Add(uint64_t n, absl::Duration each) {
  count.fetch_add(n, std::memory_order_relaxed);
  ns.fetch_add(n * Nanos(each), std::memory_order_relaxed);
}

DurationStatistic InferenceStatistics::Counter::Load() const {
  return DurationStatistic{count.load(std::memory_order_relaxed), ns.load(std::memory_order_relaxed)};
}

void InferenceStatistics::RecordRequest(bool ok, absl::Duration duration, absl::Time now) {
  (ok ? success_ : fail_).Add(1, duration);
  const int64_t ms = absl::ToUnixMillis(now);
  if (ms > 0) last_inference_ms_.store(static_cast<uint64_t>(ms), std::memory_order_relaxed);
}

void InferenceStatistics::RecordQueueWait(absl::Duration wait) { queue_.Add(1, wait); }

void InferenceStatistics::RecordCacheLookup(bool hit, absl::Duration lookup) {
  (hit ? cache_hit_ : cache_miss_).Add(1, lookup);
}

void InferenceStatistics::RecordBatch(int64_t rows, int64_t requests, absl::Duration compute) {
  rows_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, rows)), std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  compute_infer_.Add(static_cast<uint64_t>(std::max<int64_t>(0, requests)), compute);
  MutexLock lock(&mu_);
  DurationStatistic& size = by_batch_size_[rows];
  size.count += 1;
  size.ns += Nanos(compute);
}

InferenceStatisticsSnapshot InferenceStatistics::Snapshot() const {
  InferenceStatisticsSnapshot s;
  s.last_inference_ms = last_inference_ms_.load(std::memory_order_relaxed);
  s.inference_count = rows_.load(std::memory_order_relaxed);
  s.execution_count = batches_.load(std::memory_order_relaxed);
  s.success = success_.Load();
  s.fail = fail_.Load();
  s.queue = queue_.Load();
  s.compute_infer = compute_infer_.Load();
  s.cache_hit = cache_hit_.Load();
  s.cache_miss = cache_miss_.Load();
  MutexLock lock(&mu_);
  for (const auto& [size, compute] : by_batch_size_) s.batches.push_back({size, compute});
  return s;
}

}  // namespace microbatch
