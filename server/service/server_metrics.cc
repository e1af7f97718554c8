#include "server/service/server_metrics.h"

#include <prometheus/client_metric.h>

#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/metrics/buckets.h"
#include "server/metrics/process_collector.h"

namespace microbatch {
namespace {

constexpr const char* kMethods[] = {"Predict", "BatchPredict", "ModelInfer", "RestInfer"};
static_assert(sizeof(kMethods) / sizeof(kMethods[0]) == static_cast<size_t>(RpcMethod::kCount));
constexpr const char* kReasons[] = {"queue_full",    "deadline_exceeded", "cancelled",
                                    "invalid_input", "overloaded",        "memory_budget"};
static_assert(sizeof(kReasons) / sizeof(kReasons[0]) == static_cast<size_t>(RejectReason::kCount));

constexpr char kBuildVersion[] = "0.1.0";

prometheus::Labels ModelLabels(const std::string& model, const std::string& version) {
  return {{"model", model}, {"version", version}};
}

prometheus::Labels With(prometheus::Labels labels, const std::string& name,
                        const std::string& value) {
  labels.emplace(name, value);
  return labels;
}

// A gauge family with one sample per served model version.
prometheus::MetricFamily GaugeFamily(const char* name, const char* help,
                                     const std::vector<ModelState>& states,
                                     double (*value)(const ModelState&)) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = prometheus::MetricType::Gauge;
  for (const ModelState& state : states) {
    prometheus::ClientMetric metric;
    metric.label = {{"model", state.model}, {"version", absl::StrCat(state.version)}};
    metric.gauge.value = value(state);
    family.metric.push_back(std::move(metric));
  }
  return family;
}

// A counter family read at scrape time, one sample per model version.
prometheus::MetricFamily CounterFamily(const char* name, const char* help,
                                       const std::vector<ModelState>& states,
                                       double (*value)(const ModelState&)) {
  prometheus::MetricFamily family = GaugeFamily(name, help, states, value);
  family.type = prometheus::MetricType::Counter;
  for (prometheus::ClientMetric& metric : family.metric) {
    metric.counter.value = metric.gauge.value;
    metric.gauge.value = 0;
  }
  return family;
}

// microbatch_model_version_state: 1 for each version's current state.
prometheus::MetricFamily VersionStateFamily(const std::vector<ModelState>& states) {
  prometheus::MetricFamily family;
  family.name = "microbatch_model_version_state";
  family.help =
      "1 for the lifecycle state each model version is in (LOADING, READY, UNLOADING, "
      "UNAVAILABLE, FAILED).";
  family.type = prometheus::MetricType::Gauge;
  for (const ModelState& state : states) {
    prometheus::ClientMetric metric;
    metric.label = {{"model", state.model},
                    {"version", absl::StrCat(state.version)},
                    {"state", state.state}};
    metric.gauge.value = 1;
    family.metric.push_back(std::move(metric));
  }
  return family;
}

}  // namespace

const char* RpcMethodName(RpcMethod method) { return kMethods[static_cast<int>(method)]; }

void ModelMetrics::RecordRequest(RpcMethod method, absl::StatusCode code, absl::Time received) {
  const absl::Time now = absl::Now();
  const absl::Duration duration = now - received;
  const int m = static_cast<int>(method);
  const int c = static_cast<int>(code);
  if (c < 0 || c >= kCodes) return;
  prometheus::Counter* counter = requests_[m][c].load(std::memory_order_acquire);
  if (counter == nullptr) {
    // Family::Add returns the existing child when two threads race here.
    counter = &requests_family_->Add({{"model", model_},
                                      {"version", version_},
                                      {"method", kMethods[m]},
                                      {"code", absl::StatusCodeToString(code)}});
    requests_[m][c].store(counter, std::memory_order_release);
  }
  counter->Increment();
  duration_[m]->Observe(absl::ToDoubleSeconds(duration));
  statistics_.RecordRequest(code == absl::StatusCode::kOk, duration, now);
  if (method != RpcMethod::kBatchPredict) in_flight_->Decrement();
}

void ModelMetrics::RecordReject(RejectReason reason) {
  rejected_[static_cast<int>(reason)]->Increment();
}

void ModelMetrics::RecordBatch(const BatchInfo& info) {
  rows_->Increment(static_cast<double>(info.batch_rows));
  batches_->Increment();
  batch_size_->Observe(static_cast<double>(info.batch_rows));
  compute_->Observe(absl::ToDoubleSeconds(info.compute));
  statistics_.RecordBatch(info.batch_rows, info.batch_tasks, info.compute);
}

void ModelMetrics::RecordShadowCompared(int64_t rows, int64_t argmax_mismatches,
                                        double max_abs_diff) {
  shadow_compared_->Increment();
  shadow_rows_->Increment(static_cast<double>(rows));
  shadow_mismatches_->Increment(static_cast<double>(argmax_mismatches));
  shadow_diff_->Observe(max_abs_diff);
}

void ModelMetrics::RecordCacheLookup(CacheResult result, absl::Duration lookup) {
  cache_lookups_[static_cast<size_t>(result)]->Increment();
  cache_lookup_seconds_->Observe(absl::ToDoubleSeconds(lookup));
  if (result != CacheResult::kJoined) statistics_.RecordCacheLookup(result == CacheResult::kHit, lookup);
}

void ModelMetrics::RecordShadowError() { shadow_errors_->Increment(); }
void ModelMetrics::RecordShadowDropped() { shadow_dropped_->Increment(); }

void ModelMetrics::RecordQueueWait(absl::Duration wait) {
  queue_wait_->Observe(absl::ToDoubleSeconds(wait));
  statistics_.RecordQueueWait(wait);
}

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;
  requests_ = &prometheus::BuildCounter()
                   .Name("microbatch_requests_total")
                   .Help("Predict requests and BatchPredict chunks by final gRPC status code.")
                   .Register(r);
  rejected_ = &prometheus::BuildCounter()
                   .Name("microbatch_rejected_requests_total")
                   .Help("Requests answered without running, by reason: queue_full, overloaded "
                         "(refused: could not be answered before its deadline), "
                         "deadline_exceeded and cancelled (while queued), invalid_input, "
                         "memory_budget (the server's tensor byte budget was full).")
                   .Register(r);
  rows_ = &prometheus::BuildCounter()
               .Name("microbatch_inference_rows_total")
               .Help("Rows run through the model.")
               .Register(r);
  batches_ = &prometheus::BuildCounter()
                  .Name("microbatch_batches_total")
                  .Help("Batches run by the model.")
                  .Register(r);
  batch_size_ = &prometheus::BuildHistogram()
                     .Name("microbatch_batch_size_rows")
                     .Help("Rows per executed batch.")
                     .Register(r);
  queue_wait_ = &prometheus::BuildHistogram()
                     .Name("microbatch_queue_wait_seconds")
                     .Help("Time from enqueue until the request's batch was formed.")
                     .Register(r);
  compute_ = &prometheus::BuildHistogram()
                  .Name("microbatch_compute_seconds")
                  .Help("Model run time per batch.")
                  .Register(r);
  duration_ = &prometheus::BuildHistogram()
                   .Name("microbatch_request_duration_seconds")
                   .Help("Server-side time from receiving a request (or chunk) to answering it, "
                         "all outcomes.")
                   .Register(r);
  in_flight_ = &prometheus::BuildGauge()
                    .Name("microbatch_requests_in_flight")
                    .Help("Predict requests received and not yet answered.")
                    .Register(r);
  load_seconds_ = &prometheus::BuildGauge()
                       .Name("microbatch_model_load_seconds")
                       .Help("Time to load every instance of the model version.")
                       .Register(r);
  warmup_seconds_ = &prometheus::BuildGauge()
                         .Name("microbatch_model_warmup_seconds")
                         .Help("Time to warm up every instance of the model version.")
                         .Register(r);
  load_failures_ = &prometheus::BuildCounter()
                        .Name("microbatch_model_load_failures_total")
                        .Help("Model version loads that failed, by reason (the status code: "
                              "invalid_argument for a bad config or model file, not_found for a "
                              "missing file, ...).")
                        .Register(r);
  swaps_ = &prometheus::BuildCounter()
                .Name("microbatch_model_swaps_total")
                .Help("Times the version that unpinned requests go to changed.")
                .Register(r);
  shadow_requests_ = &prometheus::BuildCounter()
                          .Name("microbatch_shadow_requests_total")
                          .Help("Requests mirrored to a shadow (candidate) version, by result: "
                                "compared, error (the shadow failed), dropped (under load).")
                          .Register(r);
  shadow_rows_ = &prometheus::BuildCounter()
                      .Name("microbatch_shadow_rows_total")
                      .Help("Rows whose shadow output was compared with the served one.")
                      .Register(r);
  shadow_mismatches_ = &prometheus::BuildCounter()
                            .Name("microbatch_shadow_argmax_mismatch_rows_total")
                            .Help("Compared rows whose argmax (of the first output) differs "
                                  "between the shadow and the served version.")
                            .Register(r);
  shadow_diff_ = &prometheus::BuildHistogram()
                      .Name("microbatch_shadow_max_abs_diff")
                      .Help("Per mirrored request, the largest absolute difference between a "
                            "shadow output element and the served one.")
                      .Register(r);
  cache_lookups_ = &prometheus::BuildCounter()
                        .Name("microbatch_cache_lookups_total")
                        .Help("Response-cache lookups by result: hit (answered from the cache), "
                              "miss (run, then cached), joined (waited for an identical request "
                              "already running).")
                        .Register(r);
  cache_lookup_seconds_ = &prometheus::BuildHistogram()
                               .Name("microbatch_cache_lookup_seconds")
                               .Help("Time to build the key and look it up in the response cache.")
                               .Register(r);
  prometheus::BuildGauge()
      .Name("microbatch_build_info")
      .Help("Build information; the value is always 1.")
      .Register(r)
      .Add({{"version", kBuildVersion}, {"backend", "libtorch"}})
      .Set(1);

  model_states_ =
      std::make_shared<metrics::FunctionCollector>([this] { return CollectModelStates(); });
  process_ = std::make_shared<metrics::ProcessCollector>();
  exposition_.Add(registry_);
  exposition_.Add(model_states_);
  exposition_.Add(process_);
}

ServerMetrics::~ServerMetrics() = default;

std::vector<prometheus::MetricFamily> ServerMetrics::CollectModelStates() const {
  ModelStatesFn states_fn;
  {
    MutexLock lock(&mu_);
    states_fn = states_;
  }
  if (!states_fn) return {};
  const std::vector<ModelState> all = states_fn();
  // Queue and instance gauges exist for loaded versions only.
  std::vector<ModelState> states, cached;
  for (const ModelState& state : all) {
    if (state.ready) states.push_back(state);
    if (state.ready && state.has_cache) cached.push_back(state);
  }
  std::vector<prometheus::MetricFamily> families = {
      GaugeFamily("microbatch_queue_requests", "Requests waiting in the batcher's queue.", states,
                  [](const ModelState& s) { return static_cast<double>(s.queue.tasks); }),
      GaugeFamily("microbatch_queue_rows", "Rows waiting in the batcher's queue.", states,
                  [](const ModelState& s) { return static_cast<double>(s.queue.rows); }),
      GaugeFamily("microbatch_instances_busy", "Model instances running a batch now.", states,
                  [](const ModelState& s) { return static_cast<double>(s.queue.busy_instances); }),
      GaugeFamily("microbatch_queue_capacity_requests",
                  "max_queue_size: queued requests beyond which new ones are rejected.", states,
                  [](const ModelState& s) { return static_cast<double>(s.queue_capacity); }),
      GaugeFamily("microbatch_instances", "Model instances (instance_count).", states,
                  [](const ModelState& s) { return static_cast<double>(s.instances); }),
      GaugeFamily("microbatch_model_ready",
                  "1 when the model version is loaded, warmed and serving.", all,
                  [](const ModelState& s) { return s.ready ? 1.0 : 0.0; }),
      VersionStateFamily(all),
  };
  // Only where some version has a response cache.
  if (!cached.empty()) {
    families.push_back(GaugeFamily(
        "microbatch_cache_bytes", "Bytes held by the response cache (keys and outputs).", cached,
        [](const ModelState& s) { return static_cast<double>(s.cache_bytes); }));
    families.push_back(GaugeFamily(
        "microbatch_cache_entries", "Answers held by the response cache.", cached,
        [](const ModelState& s) { return static_cast<double>(s.cache_entries); }));
    families.push_back(CounterFamily(
        "microbatch_cache_evictions_total",
        "Answers evicted from the response cache (least recently used first).", cached,
        [](const ModelState& s) { return static_cast<double>(s.cache_evictions); }));
  }
  return families;
}

ModelMetrics* ServerMetrics::ForModel(const std::string& model, int64_t version) {
  const std::string v = version == 0 ? "" : absl::StrCat(version);
  MutexLock lock(&mu_);
  std::unique_ptr<ModelMetrics>& slot = models_[{model, v}];
  if (slot) return slot.get();
  slot = std::make_unique<ModelMetrics>();
  ModelMetrics& m = *slot;
  const prometheus::Labels labels = ModelLabels(model, v);
  m.model_ = model;
  m.version_ = v;
  m.requests_family_ = requests_;
  for (int method = 0; method < static_cast<int>(RpcMethod::kCount); ++method) {
    m.duration_[method] =
        &duration_->Add(With(labels, "method", kMethods[method]), metrics::LatencySecondsBuckets());
  }
  for (int reason = 0; reason < static_cast<int>(RejectReason::kCount); ++reason) {
    m.rejected_[reason] = &rejected_->Add(With(labels, "reason", kReasons[reason]));
  }
  m.rows_ = &rows_->Add(labels);
  m.batches_ = &batches_->Add(labels);
  m.batch_size_ = &batch_size_->Add(labels, metrics::BatchSizeBuckets());
  m.queue_wait_ = &queue_wait_->Add(labels, metrics::LatencySecondsBuckets());
  m.compute_ = &compute_->Add(labels, metrics::LatencySecondsBuckets());
  m.in_flight_ = &in_flight_->Add(labels);
  m.shadow_compared_ = &shadow_requests_->Add(With(labels, "result", "compared"));
  m.shadow_errors_ = &shadow_requests_->Add(With(labels, "result", "error"));
  m.shadow_dropped_ = &shadow_requests_->Add(With(labels, "result", "dropped"));
  m.shadow_rows_ = &shadow_rows_->Add(labels);
  m.shadow_mismatches_ = &shadow_mismatches_->Add(labels);
  m.cache_lookups_[0] = &cache_lookups_->Add(With(labels, "result", "hit"));
  m.cache_lookups_[1] = &cache_lookups_->Add(With(labels, "result", "miss"));
  m.cache_lookups_[2] = &cache_lookups_->Add(With(labels, "result", "joined"));
  m.cache_lookup_seconds_ = &cache_lookup_seconds_->Add(
      labels, prometheus::Histogram::BucketBoundaries{1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4,
                                                      2e-4, 5e-4, 1e-3, 1e-2});
  m.shadow_diff_ = &shadow_diff_->Add(
      labels, prometheus::Histogram::BucketBoundaries{0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1,
                                                      1, 10, 100});
  return slot.get();
}

ModelMetrics* ServerMetrics::Unknown() { return ForModel("", 0); }

void ServerMetrics::RecordLoad(const std::string& model, int64_t version, absl::Duration load,
                               absl::Duration warmup) {
  const prometheus::Labels labels = ModelLabels(model, absl::StrCat(version));
  load_seconds_->Add(labels).Set(absl::ToDoubleSeconds(load));
  warmup_seconds_->Add(labels).Set(absl::ToDoubleSeconds(warmup));
}

void ServerMetrics::RecordLoadFailure(const std::string& model, absl::StatusCode code) {
  std::string reason = absl::StatusCodeToString(code);
  for (char& c : reason) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  load_failures_->Add({{"model", model}, {"reason", reason}}).Increment();
}

void ServerMetrics::RecordSwap(const std::string& model) {
  swaps_->Add({{"model", model}}).Increment();
}

void ServerMetrics::WatchModels(ModelStatesFn states) {
  MutexLock lock(&mu_);
  states_ = std::move(states);
}

}  // namespace microbatch
