#include "client/bench_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace microbatch {
namespace bench {

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  // Nearest rank: ceil(p/100 * n), at least 1. The epsilon keeps p99 of 100
  // values at rank 99 despite rounding in p/100 * n.
  double rank = std::ceil(p / 100.0 * n - 1e-9);
  rank = std::clamp(rank, 1.0, n);
  return sorted[static_cast<size_t>(rank) - 1];
}

LatencySummary Summarize(std::vector<double>& values) {
  LatencySummary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.count = static_cast<int64_t>(values.size());
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  s.p50 = Percentile(values, 50);
  s.p90 = Percentile(values, 90);
  s.p99 = Percentile(values, 99);
  s.p999 = Percentile(values, 99.9);
  s.max = values.back();
  return s;
}

bool IsStable(const std::vector<double>& series, int last_n, double tolerance) {
  if (last_n < 1 || series.size() < static_cast<size_t>(last_n)) return false;
  double sum = 0;
  for (size_t i = series.size() - last_n; i < series.size(); ++i) sum += series[i];
  const double mean = sum / last_n;
  for (size_t i = series.size() - last_n; i < series.size(); ++i) {
    if (mean == 0) {
      if (series[i] != 0) return false;
    } else if (std::fabs(series[i] - mean) > tolerance * std::fabs(mean)) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::vector<int64_t>> ParseIntList(absl::string_view text, absl::string_view flag,
                                                  int64_t min_value) {
  std::vector<int64_t> out;
  if (absl::StripAsciiWhitespace(text).empty()) return out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t v;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &v) || v < min_value) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": '", part,
                                                     "' is not an integer >= ", min_value));
    }
    out.push_back(v);
  }
  return out;
}

absl::StatusOr<std::vector<double>> ParseDoubleList(absl::string_view text, absl::string_view flag,
                                                    double min_value) {
  std::vector<double> out;
  if (absl::StripAsciiWhitespace(text).empty()) return out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    double v;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(part), &v) || !(v >= min_value) ||
        !std::isfinite(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", part, "' is not a number >= ", min_value));
    }
    out.push_back(v);
  }
  return out;
}

namespace {

// Parses `{a="x",b="y"}` starting at text[*pos] == '{'; leaves *pos after '}'.
bool ParseLabels(absl::string_view text, size_t* pos, std::map<std::string, std::string>* labels) {
  size_t i = *pos + 1;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i < text.size() && text[i] == '}') {
      *pos = i + 1;
      return true;
    }
    const size_t eq = text.find('=', i);
    if (eq == absl::string_view::npos || eq + 1 >= text.size() || text[eq + 1] != '"') return false;
    std::string key(absl::StripAsciiWhitespace(text.substr(i, eq - i)));
    std::string value;
    size_t j = eq + 2;
    bool closed = false;
    for (; j < text.size(); ++j) {
      const char c = text[j];
      if (c == '\\' && j + 1 < text.size()) {
        const char e = text[++j];
        value.push_back(e == 'n' ? '\n' : e);
      } else if (c == '"') {
        closed = true;
        break;
      } else {
        value.push_back(c);
      }
    }
    if (!closed) return false;
    (*labels)[key] = std::move(value);
    i = j + 1;
  }
  return false;
}

}  // namespace

std::vector<PromSample> ParsePrometheusText(absl::string_view text) {
  std::vector<PromSample> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    PromSample sample;
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ' && line[pos] != '\t') ++pos;
    sample.name = std::string(line.substr(0, pos));
    if (sample.name.empty()) continue;
    if (pos < line.size() && line[pos] == '{' && !ParseLabels(line, &pos, &sample.labels)) continue;
    absl::string_view rest = absl::StripAsciiWhitespace(line.substr(pos));
    absl::string_view value_text = rest.substr(0, rest.find(' '));
    if (value_text == "+Inf") {
      sample.value = std::numeric_limits<double>::infinity();
    } else if (value_text == "-Inf") {
      sample.value = -std::numeric_limits<double>::infinity();
    } else if (value_text == "NaN") {
      sample.value = std::numeric_limits<double>::quiet_NaN();
    } else if (!absl::SimpleAtod(value_text, &sample.value)) {
      continue;
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::optional<double> SumSamples(const std::vector<PromSample>& samples, absl::string_view name,
                                 const std::map<std::string, std::string>& match) {
  std::optional<double> sum;
  for (const PromSample& s : samples) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) {
        ok = false;
        break;
      }
    }
    if (ok) sum = sum.value_or(0) + s.value;
  }
  return sum;
}

std::optional<double> SampleDelta(const std::vector<PromSample>& before,
                                  const std::vector<PromSample>& after, absl::string_view name,
                                  const std::map<std::string, std::string>& match) {
  std::optional<double> a = SumSamples(after, name, match);
  if (!a) return std::nullopt;
  return *a - SumSamples(before, name, match).value_or(0);
}

ServerSplit ComputeServerSplit(const std::vector<PromSample>& before,
                               const std::vector<PromSample>& after, const std::string& model,
                               const std::string& version, const std::string& method) {
  const std::map<std::string, std::string> labels = {{"model", model}, {"version", version}};
  auto delta = [&](const std::string& name) { return SampleDelta(before, after, name, labels); };
  ServerSplit split;
  std::optional<double> wait_sum = delta("microbatch_queue_wait_seconds_sum");
  std::optional<double> wait_count = delta("microbatch_queue_wait_seconds_count");
  std::optional<double> compute_sum = delta("microbatch_compute_seconds_sum");
  std::optional<double> compute_count = delta("microbatch_compute_seconds_count");
  std::optional<double> rows_sum = delta("microbatch_batch_size_rows_sum");
  std::optional<double> rows_count = delta("microbatch_batch_size_rows_count");
  if (!wait_sum || !wait_count || !compute_sum || !compute_count || !rows_sum || !rows_count ||
      *wait_count <= 0 || *compute_count <= 0 || *rows_count <= 0) {
    return split;
  }
  split.valid = true;
  split.queue_wait_ms = *wait_sum / *wait_count * 1e3;
  split.compute_ms = *compute_sum / *compute_count * 1e3;
  split.batch_rows = *rows_sum / *rows_count;
  split.batches = *compute_count;
  split.requests = *wait_count;
  std::map<std::string, std::string> predict = labels;
  predict["method"] = method;
  std::optional<double> duration_sum =
      SampleDelta(before, after, "microbatch_request_duration_seconds_sum", predict);
  std::optional<double> duration_count =
      SampleDelta(before, after, "microbatch_request_duration_seconds_count", predict);
  split.request_ms = duration_sum && duration_count && *duration_count > 0
                         ? *duration_sum / *duration_count * 1e3
                         : std::numeric_limits<double>::quiet_NaN();
  return split;
}

namespace {

uint16_t FloatToHalfBits(float f) {
  // Round-to-nearest is not needed for random test data; values in [-1, 1)
  // are normal or zero in half precision after truncation.
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t exponent = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  const uint32_t mantissa = x & 0x7fffffu;
  if (exponent <= 0) return static_cast<uint16_t>(sign);  // flush tiny values to zero
  if (exponent >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(exponent) << 10) | (mantissa >> 13));
}

template <typename T>
void Append(std::string* out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

}  // namespace

std::string RandomTensorBytes(DType dtype, int64_t elements, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> real(-1.0f, 1.0f);
  std::uniform_int_distribution<int> small(0, 9);
  std::string out;
  out.reserve(static_cast<size_t>(elements) * DTypeSize(dtype));
  for (int64_t i = 0; i < elements; ++i) {
    switch (dtype) {
      case DType::kFloat32: Append<float>(&out, real(rng)); break;
      case DType::kFloat64: Append<double>(&out, real(rng)); break;
      case DType::kFloat16: Append<uint16_t>(&out, FloatToHalfBits(real(rng))); break;
      case DType::kBFloat16: {
        const float f = real(rng);
        uint32_t x;
        std::memcpy(&x, &f, 4);
        Append<uint16_t>(&out, static_cast<uint16_t>(x >> 16));
        break;
      }
      case DType::kInt64: Append<int64_t>(&out, small(rng)); break;
      case DType::kInt32: Append<int32_t>(&out, small(rng)); break;
      case DType::kInt16: Append<int16_t>(&out, static_cast<int16_t>(small(rng))); break;
      case DType::kInt8: Append<int8_t>(&out, static_cast<int8_t>(small(rng))); break;
      case DType::kUInt8: Append<uint8_t>(&out, static_cast<uint8_t>(small(rng))); break;
      case DType::kBool: Append<uint8_t>(&out, static_cast<uint8_t>(small(rng) & 1)); break;
      case DType::kInvalid: return out;
    }
  }
  return out;
}

PoissonArrivals::PoissonArrivals(double rate, uint64_t seed) : rate_(rate), state_(seed ? seed : 1) {}

double PoissonArrivals::NextGapSeconds() {
  // splitmix64 -> uniform in (0, 1] -> exponential with mean 1/rate.
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const double u = (static_cast<double>(z >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  return -std::log(u) / rate_;
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string cell = c < cells.size() ? cells[c] : "";
      const std::string pad(width[c] - std::min(width[c], cell.size()), ' ');
      if (c > 0) text += "  ";
      text += c == 0 ? cell + pad : pad + cell;
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out;
}

std::string Fixed(double value, int digits) {
  if (std::isnan(value)) return "-";
  return absl::StrFormat("%.*f", digits, value);
}

std::string CsvField(absl::string_view field) {
  if (field.find_first_of(",\"\n") == absl::string_view::npos) return std::string(field);
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace bench
}  // namespace microbatch
