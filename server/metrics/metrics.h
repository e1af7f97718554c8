// A small Prometheus metrics library: counters, gauges and histograms grouped
// in labeled families, plus callback families evaluated at scrape time, all
// owned by a Registry that writes the text exposition format 0.0.4.
//
// Hot-path pattern: look a child up once (Family::WithLabels takes the
// family's lock) and cache the returned pointer, e.g. once per model version;
// Increment/Set/Observe on it then touch only that child's atomics.
//
//   Registry registry;
//   Family<Counter>* requests = *registry.AddCounter(
//       "microbatch_requests_total", "Requests received.", {"model", "version"});
//   Counter* mlp_requests = requests->WithLabels({"mlp", "1"});
//   mlp_requests->Increment();
//   std::string text = registry.Expose();
#ifndef MICROBATCH_SERVER_METRICS_METRICS_H_
#define MICROBATCH_SERVER_METRICS_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/sync.h"

namespace microbatch {
namespace metrics {

// A monotonically increasing value. Thread-safe and lock-free.
class Counter {
 public:
  // Adds `amount`; negative amounts and NaN are ignored (counters never go
  // down).
  void Increment(double amount = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that can go up and down. Thread-safe and lock-free.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount);  // `amount` may be negative.
  void Increment() { Add(1.0); }
  void Decrement() { Add(-1.0); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A consistent-enough view of a histogram: `cumulative[i]` counts observations
// <= bounds[i], the last entry (+Inf) equals `count`. `sum` is read separately
// from the buckets, so under concurrent Observe() it may include an
// observation the buckets do not (or vice versa).
struct HistogramSnapshot {
  std::vector<uint64_t> cumulative;  // bounds.size() + 1 entries
  uint64_t count = 0;
  double sum = 0.0;
};

// Counts observations into buckets with fixed upper bounds (Prometheus `le`
// semantics: an observation v lands in the first bucket with v <= bound; NaN
// lands in +Inf). Thread-safe and lock-free.
class Histogram {
 public:
  // `bounds` must be strictly increasing and finite; Registry::AddHistogram
  // validates them.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  HistogramSnapshot Snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative
  std::atomic<double> sum_{0.0};
};

enum class MetricType { kCounter, kGauge, kHistogram };

namespace internal {

// What Registry needs of a family. Implementations are thread-safe.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names);
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends the family's HELP, TYPE and sample lines to `out`.
  void Expose(std::string* out) const;

 protected:
  // Appends only the sample lines.
  virtual void ExposeSamples(std::string* out) const = 0;
  // `name="value",...` for the family's label names (no braces). Aborts with
  // a message when the number of values does not match the label names.
  std::string LabelPairs(const std::vector<std::string>& label_values) const;

 private:
  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
};

}  // namespace internal

// The children of one metric, one per combination of label values. A family
// without label names has exactly one child, created at registration (so it
// is exposed as 0 before first use): WithLabels({}).
//
// Thread-safe. Children live as long as the Registry; pointers returned by
// WithLabels stay valid until then.
template <typename T>
class Family final : public internal::FamilyBase {
 public:
  // Returns the child for `label_values`, given in the order of the family's
  // label names, creating it on first use. Label values may be any valid
  // UTF-8. Takes the family's lock: cache the result on hot paths. Aborts
  // (programming error) when the number of values does not match the
  // family's label names.
  T* WithLabels(const std::vector<std::string>& label_values);

  // Use Registry::AddCounter/AddGauge/AddHistogram.
  Family(std::string name, std::string help, MetricType type,
         std::vector<std::string> label_names, std::vector<double> bounds);

 private:
  struct Child {
    std::string label_pairs;  // rendered once, see LabelPairs
    std::unique_ptr<T> metric;
  };
  void ExposeSamples(std::string* out) const override;

  const std::vector<double> bounds_;  // histograms only
  mutable Mutex mu_;
  std::map<std::vector<std::string>, Child> children_ ABSL_GUARDED_BY(mu_);
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

// One sample of a callback family: label values in the order of the family's
// label names, and the value.
struct Sample {
  std::vector<std::string> label_values;
  double value = 0.0;
};

// Produces a callback family's samples at scrape time. Must return distinct
// label-value sets, each with one value per label name (others are dropped).
using Collector = std::function<std::vector<Sample>()>;

// Owns metric families and writes their exposition.
//
// Thread-safe: registration, WithLabels, updates and Expose() may all run
// concurrently. Collectors run on the scraping thread with no registry or
// family lock held (so they may take their own locks, and may run
// concurrently with each other if scrapes overlap); they must stay callable
// for the Registry's lifetime.
//
// Registration validates names and returns InvalidArgument for: a metric name
// not matching [a-zA-Z_:][a-zA-Z0-9_:]*, a label name not matching
// [a-zA-Z_][a-zA-Z0-9_]* or starting with "__", duplicate label names, empty
// help, a counter name not ending in "_total", a non-counter name ending in
// "_total", a non-histogram name ending in "_bucket"/"_sum"/"_count", a
// histogram with an "le" label or with bounds that are not strictly
// increasing and finite (a trailing +Inf bound is accepted and dropped).
// Registering a name twice returns AlreadyExists.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  absl::StatusOr<Family<Counter>*> AddCounter(absl::string_view name, absl::string_view help,
                                              std::vector<std::string> label_names = {});
  absl::StatusOr<Family<Gauge>*> AddGauge(absl::string_view name, absl::string_view help,
                                          std::vector<std::string> label_names = {});
  absl::StatusOr<Family<Histogram>*> AddHistogram(absl::string_view name, absl::string_view help,
                                                  std::vector<std::string> label_names,
                                                  std::vector<double> bounds);

  // A family whose samples come from `collect` at each scrape. `type` is
  // kCounter or kGauge (kHistogram returns InvalidArgument).
  absl::Status AddCallback(MetricType type, absl::string_view name, absl::string_view help,
                           std::vector<std::string> label_names, Collector collect);
  // Unlabeled shorthands for AddCallback: one sample with the value of `fn`.
  absl::Status AddCallbackGauge(absl::string_view name, absl::string_view help,
                                std::function<double()> fn);
  absl::Status AddCallbackCounter(absl::string_view name, absl::string_view help,
                                  std::function<double()> fn);

  // The text exposition (format 0.0.4) of all families in registration
  // order; children in label-value order, callback samples in collector
  // order. Families without samples contribute only HELP and TYPE lines.
  std::string Expose() const;
  void Expose(std::string* out) const;  // appends to `out`

 private:
  // Validates `family`'s names and takes ownership of it.
  absl::Status Register(std::unique_ptr<internal::FamilyBase> family);

  mutable Mutex mu_;
  // Never shrinks, so exposition can walk a copied prefix without the lock.
  std::vector<std::unique_ptr<internal::FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
};

// Bucket bounds helpers.
// `count` bounds start, start*factor, start*factor^2, ...; requires start > 0,
// factor > 1, count >= 1 (else returns an empty vector).
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// `count` bounds start, start+width, ...; requires width > 0, count >= 1 (else
// returns an empty vector).
std::vector<double> LinearBuckets(double start, double width, int count);
// Request/queue/compute latency in seconds: 50us, 100us, 250us, 500us, 1ms,
// ... (1-2.5-5 steps) ..., 5s, 10s.
std::vector<double> LatencySecondsBuckets();
// Batch sizes in rows: 1, 2, 4, ..., 1024.
std::vector<double> BatchSizeBuckets();

// Exposition helpers, exposed for tests and custom handlers.
// A sample value as Prometheus parses it: integers below 2^53 without
// exponent or fraction ("42"), other finite values in shortest round-trip
// form ("0.25", "1e-05"), and "+Inf", "-Inf", "NaN".
std::string FormatValue(double value);
// Escapes backslash, double quote and newline for a label value.
std::string EscapeLabelValue(absl::string_view value);
// Escapes backslash and newline for HELP text.
std::string EscapeHelp(absl::string_view help);

}  // namespace metrics
}  // namespace microbatch

#endif  // MICROBATCH_SERVER_METRICS_METRICS_H_
