// The server's Prometheus metrics (prometheus-cpp): per model version request,
// batch, queue and latency metrics, plus process and build metrics.
//
// Names (labels model, version unless noted):
//   microbatch_requests_total{model,version,method,code}   Predict requests /
//       BatchPredict chunks by final status code
//   microbatch_rejected_requests_total{model,version,reason}   queue_full,
//       overloaded (could not be answered before its deadline),
//       deadline_exceeded, cancelled (none of these ran), invalid_input,
//       memory_budget (the server's tensor byte budget was full)
//   microbatch_inference_rows_total, microbatch_batches_total  executed
//   microbatch_batch_size_rows, microbatch_queue_wait_seconds,
//   microbatch_compute_seconds, microbatch_request_duration_seconds{...,method}
//   microbatch_queue_requests, microbatch_queue_rows,
//   microbatch_queue_capacity_requests, microbatch_instances_busy,
//   microbatch_instances, microbatch_requests_in_flight, microbatch_model_ready
//   microbatch_model_load_seconds, microbatch_model_warmup_seconds
//   microbatch_build_info{version,backend}, process_* (resident memory, CPU,
//   fds, start time), microbatch_memory_budget_bytes and
//   microbatch_memory_in_use_bytes (no labels; see server.cc)
// Requests naming no served model are counted under model="" version="".
// tests/server/metrics_families_test.cc pins this set of families and labels.
#ifndef MICROBATCH_SERVER_SERVICE_SERVER_METRICS_H_
#define MICROBATCH_SERVER_SERVICE_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/batcher.h"
#include "server/core/inference_statistics.h"
#include "server/core/sync.h"
#include "server/metrics/exposition.h"

namespace microbatch {

// The request kinds metrics tell apart (the `method` label).
enum class RpcMethod {
  kPredict = 0,      // microbatch.v1 Predict
  kBatchPredict = 1, // microbatch.v1 BatchPredict (one per chunk)
  kModelInfer = 2,   // inference.GRPCInferenceService/ModelInfer (KServe v2)
  kRestInfer = 3,    // POST /v2/models/.../infer (KServe v2 REST)
  kCount             // not a method
};
// "Predict", "BatchPredict", "ModelInfer", "RestInfer".
const char* RpcMethodName(RpcMethod method);
enum class RejectReason {
  kQueueFull = 0,
  kDeadlineExceeded,
  kCancelled,
  kInvalidInput,
  kOverloaded,
  kMemoryBudget,
  kCount  // not a reason
};

// How a response-cache lookup went.
enum class CacheResult { kHit = 0, kMiss = 1, kJoined = 2 };

// Handles to one model version's metrics. Created once by ServerMetrics, then
// used from any thread without a shared lock: counters and gauges are atomics;
// a histogram child locks only itself.
class ModelMetrics {
 public:
  // A request (or chunk) received at `received` finished now with `code`:
  // its end-to-end duration and the statistics.
  void RecordRequest(RpcMethod method, absl::StatusCode code, absl::Time received);
  void RecordReject(RejectReason reason);
  // Called once per executed batch.
  void RecordBatch(const BatchInfo& info);
  void RecordQueueWait(absl::Duration wait);
  void RequestStarted() { in_flight_->Increment(); }
  // One shadow comparison against this (candidate) version: `rows` compared,
  // `argmax_mismatches` of them with a different argmax, the largest
  // absolute difference of any output element.
  void RecordShadowCompared(int64_t rows, int64_t argmax_mismatches, double max_abs_diff);
  // A shadow run that failed (its error), or was dropped under load.
  void RecordShadowError();
  void RecordShadowDropped();
  // A response-cache lookup and how long it took.
  void RecordCacheLookup(CacheResult result, absl::Duration lookup);

  // The cumulative statistics of this version (Triton's ModelStatistics),
  // fed by the Record* calls above.
  InferenceStatisticsSnapshot Statistics() const { return statistics_.Snapshot(); }

 private:

  friend class ServerMetrics;
  static constexpr int kCodes = 17;
  static constexpr int kMethodCount = static_cast<int>(RpcMethod::kCount);
  std::array<std::array<std::atomic<prometheus::Counter*>, kCodes>, kMethodCount> requests_{};
  std::array<prometheus::Histogram*, kMethodCount> duration_{};
  std::array<prometheus::Counter*, static_cast<size_t>(RejectReason::kCount)> rejected_{};
  prometheus::Counter* rows_ = nullptr;
  prometheus::Counter* batches_ = nullptr;
  prometheus::Histogram* batch_size_ = nullptr;
  prometheus::Histogram* queue_wait_ = nullptr;
  prometheus::Histogram* compute_ = nullptr;
  prometheus::Gauge* in_flight_ = nullptr;
  prometheus::Counter* shadow_compared_ = nullptr;
  prometheus::Counter* shadow_errors_ = nullptr;
  prometheus::Counter* shadow_dropped_ = nullptr;
  prometheus::Counter* shadow_rows_ = nullptr;
  prometheus::Counter* shadow_mismatches_ = nullptr;
  prometheus::Histogram* shadow_diff_ = nullptr;
  std::array<prometheus::Counter*, 3> cache_lookups_{};
  prometheus::Histogram* cache_lookup_seconds_ = nullptr;
  prometheus::Family<prometheus::Counter>* requests_family_ = nullptr;
  InferenceStatistics statistics_;
  std::string model_;
  std::string version_;
};

// What the scrape-time gauges report about one served model version.
struct ModelState {
  std::string model;
  int64_t version = 0;
  DynamicBatcher::QueueStats queue;
  int64_t queue_capacity = 0;
  int64_t instances = 0;
  bool ready = false;
  // The lifecycle state ("READY", "LOADING", "FAILED", ...).
  std::string state = "READY";
  // Response cache (READY versions whose config enables it).
  bool has_cache = false;
  int64_t cache_bytes = 0;
  int64_t cache_entries = 0;
  int64_t cache_evictions = 0;
};

// Thread-safe.
class ServerMetrics {
 public:
  ServerMetrics();
  ~ServerMetrics();

  // The handles for one model version (created on first call).
  ModelMetrics* ForModel(const std::string& model, int64_t version);
  // Handles for requests naming no served model.
  ModelMetrics* Unknown();
  // Load and warm-up durations of a model version.
  void RecordLoad(const std::string& model, int64_t version, absl::Duration load,
                  absl::Duration warmup);
  // A version of `model` failed to load with `code`.
  void RecordLoadFailure(const std::string& model, absl::StatusCode code);
  // The version unpinned requests of `model` go to changed.
  void RecordSwap(const std::string& model);
  // From now on the queue, instance and readiness gauges are read from
  // `states` at scrape time (on the scraping thread). Pass nullptr to stop.
  using ModelStatesFn = std::function<std::vector<ModelState>()>;
  void WatchModels(ModelStatesFn states);

  // The text exposition of every metric.
  std::string Expose() const { return exposition_.Serialize(); }
  // For more families (they are exposed with the rest).
  prometheus::Registry& registry() { return *registry_; }
  metrics::Exposition& exposition() { return exposition_; }

 private:
  std::vector<prometheus::MetricFamily> CollectModelStates() const;

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> model_states_;
  std::shared_ptr<prometheus::Collectable> process_;
  metrics::Exposition exposition_;

  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* rejected_;
  prometheus::Family<prometheus::Counter>* rows_;
  prometheus::Family<prometheus::Counter>* batches_;
  prometheus::Family<prometheus::Histogram>* batch_size_;
  prometheus::Family<prometheus::Histogram>* queue_wait_;
  prometheus::Family<prometheus::Histogram>* compute_;
  prometheus::Family<prometheus::Histogram>* duration_;
  prometheus::Family<prometheus::Gauge>* in_flight_;
  prometheus::Family<prometheus::Gauge>* load_seconds_;
  prometheus::Family<prometheus::Gauge>* warmup_seconds_;
  prometheus::Family<prometheus::Counter>* load_failures_;
  prometheus::Family<prometheus::Counter>* swaps_;
  prometheus::Family<prometheus::Counter>* shadow_requests_;
  prometheus::Family<prometheus::Counter>* shadow_rows_;
  prometheus::Family<prometheus::Counter>* shadow_mismatches_;
  prometheus::Family<prometheus::Histogram>* shadow_diff_;
  prometheus::Family<prometheus::Counter>* cache_lookups_;
  prometheus::Family<prometheus::Histogram>* cache_lookup_seconds_;

  mutable Mutex mu_;
  ModelStatesFn states_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, std::unique_ptr<ModelMetrics>> models_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_SERVER_METRICS_H_
