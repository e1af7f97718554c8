#include "server/service/server_metrics.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "server/metrics/process_metrics.h"
#include "server/service/model_repository.h"

namespace microbatch {
namespace {

constexpr const char* kMethods[] = {"Predict", "BatchPredict"};
constexpr const char* kReasons[] = {"queue_full", "deadline_exceeded", "cancelled",
                                    "invalid_input", "overloaded"};
static_assert(sizeof(kReasons) / sizeof(kReasons[0]) == static_cast<size_t>(RejectReason::kCount));

template <typename T>
T* Must(absl::StatusOr<T*> family) {
  if (!family.ok()) {
    std::fprintf(stderr, "metrics registration failed: %s\n", family.status().ToString().c_str());
    std::abort();
  }
  return *family;
}

void MustOk(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "metrics registration failed: %s\n", status.ToString().c_str());
    std::abort();
  }
}

const std::vector<std::string> kModelLabels = {"model", "version"};

std::vector<std::string> With(std::vector<std::string> more) {
  std::vector<std::string> labels = kModelLabels;
  labels.insert(labels.end(), more.begin(), more.end());
  return labels;
}

}  // namespace

void ModelMetrics::RecordRequest(RpcMethod method, absl::StatusCode code, absl::Duration duration) {
  const int m = static_cast<int>(method);
  const int c = static_cast<int>(code);
  if (c < 0 || c >= kCodes) return;
  metrics::Counter* counter = requests_[m][c].load(std::memory_order_acquire);
  if (counter == nullptr) {
    counter = requests_family_->WithLabels({model_, version_, kMethods[m], absl::StatusCodeToString(code)});
    requests_[m][c].store(counter, std::memory_order_release);
  }
  counter->Increment();
  duration_[m]->Observe(absl::ToDoubleSeconds(duration));
  if (method == RpcMethod::kPredict) in_flight_->Decrement();
}

void ModelMetrics::RecordReject(RejectReason reason) { rejected_[static_cast<int>(reason)]->Increment(); }

void ModelMetrics::RecordBatch(const BatchInfo& info) {
  rows_->Increment(static_cast<double>(info.batch_rows));
  batches_->Increment();
  batch_size_->Observe(static_cast<double>(info.batch_rows));
  compute_->Observe(absl::ToDoubleSeconds(info.compute));
}

void ModelMetrics::RecordQueueWait(absl::Duration wait) {
  queue_wait_->Observe(absl::ToDoubleSeconds(wait));
}

ServerMetrics::ServerMetrics() {
  metrics::Registry& r = registry_;
  requests_ = Must(r.AddCounter("microbatch_requests_total",
                                "Predict requests and BatchPredict chunks by final gRPC status code.",
                                With({"method", "code"})));
  rejected_ = Must(r.AddCounter(
      "microbatch_rejected_requests_total",
      "Requests answered without running, by reason: queue_full, overloaded (refused: could not be "
      "answered before its deadline), deadline_exceeded and cancelled (while queued), invalid_input.",
      With({"reason"})));
  rows_ = Must(r.AddCounter("microbatch_inference_rows_total", "Rows run through the model.", kModelLabels));
  batches_ = Must(r.AddCounter("microbatch_batches_total", "Batches run by the model.", kModelLabels));
  batch_size_ = Must(r.AddHistogram("microbatch_batch_size_rows", "Rows per executed batch.",
                                    kModelLabels, metrics::BatchSizeBuckets()));
  queue_wait_ = Must(r.AddHistogram("microbatch_queue_wait_seconds",
                                    "Time from enqueue until the request's batch was formed.",
                                    kModelLabels, metrics::LatencySecondsBuckets()));
  compute_ = Must(r.AddHistogram("microbatch_compute_seconds", "Model run time per batch.",
                                 kModelLabels, metrics::LatencySecondsBuckets()));
  duration_ = Must(r.AddHistogram(
      "microbatch_request_duration_seconds",
      "Server-side time from receiving a request (or chunk) to answering it, all outcomes.",
      With({"method"}), metrics::LatencySecondsBuckets()));
  in_flight_ = Must(r.AddGauge("microbatch_requests_in_flight",
                               "Predict requests received and not yet answered.", kModelLabels));
  load_seconds_ = Must(r.AddGauge("microbatch_model_load_seconds",
                                  "Time to load every instance of the model version.", kModelLabels));
  warmup_seconds_ = Must(r.AddGauge("microbatch_model_warmup_seconds",
                                    "Time to warm up every instance of the model version.", kModelLabels));

  using Field = int64_t DynamicBatcher::QueueStats::*;
  auto queue_gauge = [this](const char* name, const char* help, Field field) {
    MustOk(registry_.AddCallback(
        metrics::MetricType::kGauge, name, help, kModelLabels, [this, field] {
          std::vector<metrics::Sample> samples;
          const ModelRepository* repository = repository_.load();
          if (repository == nullptr) return samples;
          for (const ServedModel* model : repository->All()) {
            samples.push_back({{model->name, absl::StrCat(model->version)},
                               static_cast<double>(model->batcher->Stats().*field)});
          }
          return samples;
        }));
  };
  queue_gauge("microbatch_queue_requests", "Requests waiting in the batcher's queue.",
              &DynamicBatcher::QueueStats::tasks);
  queue_gauge("microbatch_queue_rows", "Rows waiting in the batcher's queue.",
              &DynamicBatcher::QueueStats::rows);
  queue_gauge("microbatch_instances_busy", "Model instances running a batch now.",
              &DynamicBatcher::QueueStats::busy_instances);
  auto config_gauge = [this](const char* name, const char* help, auto value) {
    MustOk(registry_.AddCallback(metrics::MetricType::kGauge, name, help, kModelLabels,
                                 [this, value] {
                                   std::vector<metrics::Sample> samples;
                                   const ModelRepository* repository = repository_.load();
                                   if (repository == nullptr) return samples;
                                   for (const ServedModel* model : repository->All()) {
                                     samples.push_back({{model->name, absl::StrCat(model->version)},
                                                        value(*model)});
                                   }
                                   return samples;
                                 }));
  };
  config_gauge("microbatch_queue_capacity_requests",
               "max_queue_size: queued requests beyond which new ones are rejected.",
               [](const ServedModel& m) { return static_cast<double>(m.plan.config.max_queue_size()); });
  config_gauge("microbatch_instances", "Model instances (instance_count).",
               [](const ServedModel& m) { return static_cast<double>(m.plan.config.instance_count()); });
  config_gauge("microbatch_model_ready", "1 when the model version is loaded, warmed and serving.",
               [](const ServedModel&) { return 1.0; });

  MustOk(metrics::RegisterBuildInfo(&registry_, {{"version", "0.1.0"}, {"backend", "libtorch"}}));
  MustOk(metrics::RegisterProcessMetrics(&registry_));
}

ModelMetrics* ServerMetrics::ForModel(const std::string& model, int64_t version) {
  const std::string v = version == 0 ? "" : absl::StrCat(version);
  MutexLock lock(&mu_);
  std::unique_ptr<ModelMetrics>& slot = models_[{model, v}];
  if (slot) return slot.get();
  slot = std::make_unique<ModelMetrics>();
  ModelMetrics& m = *slot;
  const std::vector<std::string> labels = {model, v};
  m.model_ = model;
  m.version_ = v;
  m.requests_family_ = requests_;
  for (int method = 0; method < 2; ++method) {
    m.duration_[method] = duration_->WithLabels({model, v, kMethods[method]});
  }
  for (int reason = 0; reason < static_cast<int>(RejectReason::kCount); ++reason) {
    m.rejected_[reason] = rejected_->WithLabels({model, v, kReasons[reason]});
  }
  m.rows_ = rows_->WithLabels(labels);
  m.batches_ = batches_->WithLabels(labels);
  m.batch_size_ = batch_size_->WithLabels(labels);
  m.queue_wait_ = queue_wait_->WithLabels(labels);
  m.compute_ = compute_->WithLabels(labels);
  m.in_flight_ = in_flight_->WithLabels(labels);
  return slot.get();
}

ModelMetrics* ServerMetrics::Unknown() { return ForModel("", 0); }

void ServerMetrics::RecordLoad(const std::string& model, int64_t version, absl::Duration load,
                               absl::Duration warmup) {
  const std::vector<std::string> labels = {model, absl::StrCat(version)};
  load_seconds_->WithLabels(labels)->Set(absl::ToDoubleSeconds(load));
  warmup_seconds_->WithLabels(labels)->Set(absl::ToDoubleSeconds(warmup));
}

void ServerMetrics::WatchRepository(const ModelRepository* repository) { repository_.store(repository); }

}  // namespace microbatch
