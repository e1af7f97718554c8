#include "server/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace microbatch {
namespace metrics {
namespace {

void AtomicAdd(std::atomic<double>* target, double amount) {
  double current = target->load(std::memory_order_relaxed);
  while (!target->compare_exchange_weak(current, current + amount, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
  }
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsValidMetricName(absl::string_view name) {
  if (name.empty() || IsDigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAlpha(c) || IsDigit(c) || c == '_' || c == ':'; });
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || IsDigit(name[0]) || absl::StartsWith(name, "__")) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAlpha(c) || IsDigit(c) || c == '_'; });
}

absl::Status ValidateFamily(const internal::FamilyBase& family) {
  const std::string& name = family.name();
  auto invalid = [&name](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("metric \"", name, "\": ", why));
  };
  if (!IsValidMetricName(name)) return invalid("invalid metric name");
  if (family.help().empty()) return invalid("empty help");
  const bool counter = family.type() == MetricType::kCounter;
  const bool histogram = family.type() == MetricType::kHistogram;
  if (counter != absl::EndsWith(name, "_total")) {
    return invalid(counter ? "counter names must end in _total"
                           : "only counter names may end in _total");
  }
  if (!histogram && (absl::EndsWith(name, "_bucket") || absl::EndsWith(name, "_sum") ||
                     absl::EndsWith(name, "_count"))) {
    return invalid("_bucket, _sum and _count suffixes are reserved for histograms");
  }
  const std::vector<std::string>& labels = family.label_names();
  for (size_t i = 0; i < labels.size(); ++i) {
    if (!IsValidLabelName(labels[i])) return invalid(absl::StrCat("invalid label \"", labels[i], "\""));
    if (histogram && labels[i] == "le") return invalid("label \"le\" is reserved for histograms");
    if (std::find(labels.begin(), labels.begin() + i, labels[i]) != labels.begin() + i) {
      return invalid(absl::StrCat("duplicate label \"", labels[i], "\""));
    }
  }
  return absl::OkStatus();
}

// Appends `name{pairs} value\n`, or `name{pairs,extra} value\n`.
void AppendSample(std::string* out, absl::string_view name, absl::string_view suffix,
                  absl::string_view pairs, absl::string_view extra, absl::string_view value) {
  absl::StrAppend(out, name, suffix);
  if (!pairs.empty() || !extra.empty()) {
    absl::StrAppend(out, "{", pairs, pairs.empty() || extra.empty() ? "" : ",", extra, "}");
  }
  absl::StrAppend(out, " ", value, "\n");
}

// A family whose samples come from a Collector at scrape time.
class CallbackFamily final : public internal::FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, MetricType type,
                 std::vector<std::string> label_names, Collector collect)
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
        collect_(std::move(collect)) {}

 private:
  void ExposeSamples(std::string* out) const override {
    for (const Sample& sample : collect_()) {
      if (sample.label_values.size() != label_names().size()) continue;
      AppendSample(out, name(), "", LabelPairs(sample.label_values), "", FormatValue(sample.value));
    }
  }

  const Collector collect_;
};

template <typename T>
std::unique_ptr<T> MakeMetric(const std::vector<double>& bounds) {
  return std::make_unique<T>();
}
template <>
std::unique_ptr<Histogram> MakeMetric<Histogram>(const std::vector<double>& bounds) {
  return std::make_unique<Histogram>(bounds);
}

void AppendChild(std::string* out, absl::string_view name, absl::string_view pairs,
                 const Counter& counter) {
  AppendSample(out, name, "", pairs, "", FormatValue(counter.Value()));
}
void AppendChild(std::string* out, absl::string_view name, absl::string_view pairs,
                 const Gauge& gauge) {
  AppendSample(out, name, "", pairs, "", FormatValue(gauge.Value()));
}
void AppendChild(std::string* out, absl::string_view name, absl::string_view pairs,
                 const Histogram& histogram) {
  const HistogramSnapshot snapshot = histogram.Snapshot();
  const std::vector<double>& bounds = histogram.bounds();
  for (size_t i = 0; i <= bounds.size(); ++i) {
    const std::string le =
        absl::StrCat("le=\"", i < bounds.size() ? FormatValue(bounds[i]) : "+Inf", "\"");
    AppendSample(out, name, "_bucket", pairs, le, FormatValue(snapshot.cumulative[i]));
  }
  AppendSample(out, name, "_sum", pairs, "", FormatValue(snapshot.sum));
  AppendSample(out, name, "_count", pairs, "", FormatValue(snapshot.count));
}

}  // namespace

void Counter::Increment(double amount) {
  if (!(amount >= 0.0)) return;  // also rejects NaN
  AtomicAdd(&value_, amount);
}

void Gauge::Add(double amount) { AtomicAdd(&value_, amount); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // First bound >= value; NaN compares false everywhere and lands in +Inf.
  size_t bucket = std::isnan(value)
                      ? bounds_.size()
                      : std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(&sum_, value);
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot snapshot;
  snapshot.cumulative.resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    snapshot.count += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative[i] = snapshot.count;
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

namespace internal {

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {}

void FamilyBase::Expose(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ", EscapeHelp(help_), "\n# TYPE ", name_, " ",
                  TypeName(type_), "\n");
  ExposeSamples(out);
}

std::string FamilyBase::LabelPairs(const std::vector<std::string>& label_values) const {
  if (label_values.size() != label_names_.size()) {
    std::fprintf(stderr, "metric %s: got %zu label values for %zu label names\n", name_.c_str(),
                 label_values.size(), label_names_.size());
    std::abort();
  }
  std::string pairs;
  for (size_t i = 0; i < label_values.size(); ++i) {
    absl::StrAppend(&pairs, i == 0 ? "" : ",", label_names_[i], "=\"",
                    EscapeLabelValue(label_values[i]), "\"");
  }
  return pairs;
}

}  // namespace internal

template <typename T>
Family<T>::Family(std::string name, std::string help, MetricType type,
                  std::vector<std::string> label_names, std::vector<double> bounds)
    : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
      bounds_(std::move(bounds)) {
  if (this->label_names().empty()) WithLabels({});
}

template <typename T>
T* Family<T>::WithLabels(const std::vector<std::string>& label_values) {
  MutexLock lock(&mu_);
  auto it = children_.find(label_values);
  if (it == children_.end()) {
    Child child{LabelPairs(label_values), MakeMetric<T>(bounds_)};
    it = children_.emplace(label_values, std::move(child)).first;
  }
  return it->second.metric.get();
}

template <typename T>
void Family<T>::ExposeSamples(std::string* out) const {
  MutexLock lock(&mu_);
  for (const auto& entry : children_) {
    AppendChild(out, name(), entry.second.label_pairs, *entry.second.metric);
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry::Registry() = default;
Registry::~Registry() = default;

absl::Status Registry::Register(std::unique_ptr<internal::FamilyBase> family) {
  if (absl::Status status = ValidateFamily(*family); !status.ok()) return status;
  MutexLock lock(&mu_);
  for (const auto& existing : families_) {
    if (existing->name() == family->name()) {
      return absl::AlreadyExistsError(
          absl::StrCat("metric \"", family->name(), "\" is already registered"));
    }
  }
  families_.push_back(std::move(family));
  return absl::OkStatus();
}

absl::StatusOr<Family<Counter>*> Registry::AddCounter(absl::string_view name,
                                                      absl::string_view help,
                                                      std::vector<std::string> label_names) {
  auto family = std::make_unique<Family<Counter>>(std::string(name), std::string(help),
                                                  MetricType::kCounter, std::move(label_names),
                                                  std::vector<double>());
  Family<Counter>* raw = family.get();
  if (absl::Status status = Register(std::move(family)); !status.ok()) return status;
  return raw;
}

absl::StatusOr<Family<Gauge>*> Registry::AddGauge(absl::string_view name, absl::string_view help,
                                                  std::vector<std::string> label_names) {
  auto family = std::make_unique<Family<Gauge>>(std::string(name), std::string(help),
                                                MetricType::kGauge, std::move(label_names),
                                                std::vector<double>());
  Family<Gauge>* raw = family.get();
  if (absl::Status status = Register(std::move(family)); !status.ok()) return status;
  return raw;
}

absl::StatusOr<Family<Histogram>*> Registry::AddHistogram(absl::string_view name,
                                                          absl::string_view help,
                                                          std::vector<std::string> label_names,
                                                          std::vector<double> bounds) {
  if (!bounds.empty() && bounds.back() == INFINITY) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i - 1] < bounds[i]))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metric \"", name, "\": bucket bounds must be finite and strictly increasing"));
    }
  }
  auto family = std::make_unique<Family<Histogram>>(std::string(name), std::string(help),
                                                    MetricType::kHistogram,
                                                    std::move(label_names), std::move(bounds));
  Family<Histogram>* raw = family.get();
  if (absl::Status status = Register(std::move(family)); !status.ok()) return status;
  return raw;
}

absl::Status Registry::AddCallback(MetricType type, absl::string_view name,
                                   absl::string_view help, std::vector<std::string> label_names,
                                   Collector collect) {
  if (type == MetricType::kHistogram) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric \"", name, "\": callback histograms are not supported"));
  }
  return Register(std::make_unique<CallbackFamily>(std::string(name), std::string(help), type,
                                                   std::move(label_names), std::move(collect)));
}

absl::Status Registry::AddCallbackGauge(absl::string_view name, absl::string_view help,
                                        std::function<double()> fn) {
  return AddCallback(MetricType::kGauge, name, help, {},
                     [fn = std::move(fn)] { return std::vector<Sample>{{{}, fn()}}; });
}

absl::Status Registry::AddCallbackCounter(absl::string_view name, absl::string_view help,
                                          std::function<double()> fn) {
  return AddCallback(MetricType::kCounter, name, help, {},
                     [fn = std::move(fn)] { return std::vector<Sample>{{{}, fn()}}; });
}

std::string Registry::Expose() const {
  std::string out;
  Expose(&out);
  return out;
}

void Registry::Expose(std::string* out) const {
  std::vector<const internal::FamilyBase*> families;
  {
    MutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& family : families_) families.push_back(family.get());
  }
  for (const internal::FamilyBase* family : families) family->Expose(out);
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  if (!(start > 0.0) || !(factor > 1.0) || count < 1) return bounds;
  for (int i = 0; i < count; ++i) bounds.push_back(start * std::pow(factor, i));
  return bounds;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  std::vector<double> bounds;
  if (!(width > 0.0) || count < 1) return bounds;
  for (int i = 0; i < count; ++i) bounds.push_back(start + width * i);
  return bounds;
}

std::vector<double> LatencySecondsBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

std::vector<double> BatchSizeBuckets() { return ExponentialBuckets(1, 2, 11); }

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::trunc(value) == value && std::fabs(value) < 9007199254740992.0) {  // 2^53
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::general);
  return std::string(buf, result.ptr);
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace metrics
}  // namespace microbatch
