// The server's Prometheus metrics: per model version request, batch, queue
// and latency metrics, plus process and build metrics.
//
// Names (labels model, version unless noted):
//   microbatch_requests_total{model,version,method,code}   Predict requests /
//       BatchPredict chunks by final status code
//   microbatch_rejected_requests_total{model,version,reason}   queue_full,
//       overloaded (could not be answered before its deadline),
//       deadline_exceeded, cancelled (none of these ran), invalid_input
//   microbatch_inference_rows_total, microbatch_batches_total  executed
//   microbatch_batch_size_rows, microbatch_queue_wait_seconds,
//   microbatch_compute_seconds, microbatch_request_duration_seconds{...,method}
//   microbatch_queue_requests, microbatch_queue_rows,
//   microbatch_queue_capacity_requests, microbatch_instances_busy,
//   microbatch_instances, microbatch_requests_in_flight, microbatch_model_ready
//   microbatch_model_load_seconds, microbatch_model_warmup_seconds
//   microbatch_build_info, process_* (resident memory, CPU, fds, start time)
// Requests naming no served model are counted under model="" version="".
#ifndef MICROBATCH_SERVER_SERVICE_SERVER_METRICS_H_
#define MICROBATCH_SERVER_SERVICE_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/core/batcher.h"
#include "server/core/sync.h"
#include "server/metrics/metrics.h"

namespace microbatch {

class ModelRepository;

enum class RpcMethod { kPredict = 0, kBatchPredict = 1 };
enum class RejectReason {
  kQueueFull = 0,
  kDeadlineExceeded,
  kCancelled,
  kInvalidInput,
  kOverloaded,
  kCount  // not a reason
};

// Handles to one model version's metrics. Created once, then used lock-free
// from any thread.
class ModelMetrics {
 public:
  // A finished request (or chunk): its code, end-to-end duration, and for
  // non-OK codes that mean a rejection, the reject counter.
  void RecordRequest(RpcMethod method, absl::StatusCode code, absl::Duration duration);
  void RecordReject(RejectReason reason);
  // Called once per executed batch.
  void RecordBatch(const BatchInfo& info);
  void RecordQueueWait(absl::Duration wait);
  void RequestStarted() { in_flight_->Increment(); }

 private:
  friend class ServerMetrics;
  static constexpr int kCodes = 17;
  std::array<std::array<std::atomic<metrics::Counter*>, kCodes>, 2> requests_{};
  std::array<metrics::Histogram*, 2> duration_{};
  std::array<metrics::Counter*, static_cast<size_t>(RejectReason::kCount)> rejected_{};
  metrics::Counter* rows_ = nullptr;
  metrics::Counter* batches_ = nullptr;
  metrics::Histogram* batch_size_ = nullptr;
  metrics::Histogram* queue_wait_ = nullptr;
  metrics::Histogram* compute_ = nullptr;
  metrics::Gauge* in_flight_ = nullptr;
  metrics::Family<metrics::Counter>* requests_family_ = nullptr;
  std::string model_;
  std::string version_;
};

// Thread-safe.
class ServerMetrics {
 public:
  ServerMetrics();

  // The handles for one model version (created on first call).
  ModelMetrics* ForModel(const std::string& model, int64_t version);
  // Handles for requests naming no served model.
  ModelMetrics* Unknown();
  // Load and warm-up durations of a model version.
  void RecordLoad(const std::string& model, int64_t version, absl::Duration load,
                  absl::Duration warmup);
  // From now on queue depth, busy instances and readiness are read from
  // `repository` at scrape time. Not owned; must outlive scrapes, or be
  // replaced with nullptr first.
  void WatchRepository(const ModelRepository* repository);

  // The exposition text of every metric.
  std::string Expose() const { return registry_.Expose(); }
  metrics::Registry& registry() { return registry_; }

 private:
  metrics::Registry registry_;
  metrics::Family<metrics::Counter>* requests_;
  metrics::Family<metrics::Counter>* rejected_;
  metrics::Family<metrics::Counter>* rows_;
  metrics::Family<metrics::Counter>* batches_;
  metrics::Family<metrics::Histogram>* batch_size_;
  metrics::Family<metrics::Histogram>* queue_wait_;
  metrics::Family<metrics::Histogram>* compute_;
  metrics::Family<metrics::Histogram>* duration_;
  metrics::Family<metrics::Gauge>* in_flight_;
  metrics::Family<metrics::Gauge>* load_seconds_;
  metrics::Family<metrics::Gauge>* warmup_seconds_;
  std::atomic<const ModelRepository*> repository_{nullptr};

  Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<ModelMetrics>> models_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_SERVER_METRICS_H_
