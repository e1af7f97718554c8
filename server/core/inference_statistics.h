// Cumulative per-model-version inference statistics in the shape of Triton's
// ModelStatistics (what perf_analyzer reads for its server-side split):
// requests that succeeded and failed with their end-to-end time, queue wait,
// model compute (per request and per batch size), rows and batches executed,
// and when the last request finished.
//
// Thread-safe. Request-level recording is lock-free (relaxed atomics: a
// snapshot taken while requests finish may see one counter of a request
// before another); batch-level recording takes a mutex once per batch.
#ifndef MICROBATCH_SERVER_CORE_INFERENCE_STATISTICS_H_
#define MICROBATCH_SERVER_CORE_INFERENCE_STATISTICS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/time/time.h"
#include "server/core/sync.h"

namespace microbatch {

// How often something happened and the time it took in all.
struct DurationStatistic {
  uint64_t count = 0;
  uint64_t ns = 0;
};

// The batches of one size that ran: how many, and their model time.
struct BatchSizeStatistic {
  int64_t batch_size = 0;
  DurationStatistic compute;
};

struct InferenceStatisticsSnapshot {
  // Milliseconds since the Unix epoch when the last request finished; 0 when
  // none has.
  uint64_t last_inference_ms = 0;
  uint64_t inference_count = 0;  // rows executed by the model
  uint64_t execution_count = 0;  // batches executed
  DurationStatistic success;     // requests answered OK, end to end
  DurationStatistic fail;        // requests answered with an error
  DurationStatistic queue;       // requests' wait from enqueue to their batch
  // Each request's batch compute time, once per request in the batch.
  DurationStatistic compute_infer;
  DurationStatistic cache_hit;   // response-cache lookups that hit, their time
  DurationStatistic cache_miss;  // and that missed
  // One entry per batch size that ran, ascending.
  std::vector<BatchSizeStatistic> batches;
};

class InferenceStatistics {
 public:
  // A request (or stream chunk) finished at `now` after `duration`.
  void RecordRequest(bool ok, absl::Duration duration, absl::Time now);
  // A request's wait in the queue until its batch formed.
  void RecordQueueWait(absl::Duration wait);
  // A batch of `rows` rows from `requests` requests ran for `compute`.
  void RecordBatch(int64_t rows, int64_t requests, absl::Duration compute);
  // A response-cache lookup that hit (or missed) and took `lookup`.
  void RecordCacheLookup(bool hit, absl::Duration lookup);

  InferenceStatisticsSnapshot Snapshot() const;

 private:
  struct Counter {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> ns{0};
    void Add(uint64_t n, absl::Duration each);
    DurationStatistic Load() const;
  };

  Counter success_;
  Counter fail_;
  Counter queue_;
  Counter compute_infer_;
  Counter cache_hit_;
  Counter cache_miss_;
  std::atomic<uint64_t> last_inference_ms_{0};
  std::atomic<uint64_t> rows_{0};
  std::atomic<uint64_t> batches_{0};
  mutable Mutex mu_;
  std::map<int64_t, DurationStatistic> by_batch_size_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_INFERENCE_STATISTICS_H_
