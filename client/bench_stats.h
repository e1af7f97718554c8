// Small, torch-free and gRPC-free helpers of the benchmarks (`microbatch
// bench`, `microbatch-rawbench`): percentiles, measurement-window stability,
// list flags, Prometheus text parsing, random tensor bytes, text tables.
#ifndef MICROBATCH_CLIENT_BENCH_STATS_H_
#define MICROBATCH_CLIENT_BENCH_STATS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tensor/tensor.h"

namespace microbatch {
namespace bench {

// Nearest-rank percentile of `sorted` (ascending): the smallest value such that
// at least p% of the values are <= it. p in [0, 100]; 0 for an empty input.
double Percentile(const std::vector<double>& sorted, double p);

struct LatencySummary {
  int64_t count = 0;
  double mean = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double p999 = 0;
  double max = 0;
};
// Sorts `values` in place and summarizes them.
LatencySummary Summarize(std::vector<double>& values);

// True when `series` has at least `last_n` values and each of its last
// `last_n` values is within `tolerance` (a fraction, e.g. 0.10) of their mean.
// A mean of 0 is stable only when all of them are 0.
bool IsStable(const std::vector<double>& series, int last_n, double tolerance);

// "1,2,4" -> {1, 2, 4}. Empty input: empty list. INVALID_ARGUMENT naming
// `flag` on a bad element or a value below `min_value`.
absl::StatusOr<std::vector<int64_t>> ParseIntList(absl::string_view text, absl::string_view flag,
                                                  int64_t min_value);
absl::StatusOr<std::vector<double>> ParseDoubleList(absl::string_view text, absl::string_view flag,
                                                    double min_value);

// One sample of the Prometheus text exposition format.
struct PromSample {
  std::string name;  // including _sum / _count / _bucket suffixes
  std::map<std::string, std::string> labels;
  double value = 0;
};
// Parses the sample lines of a Prometheus text exposition; comments, blank and
// malformed lines are skipped.
std::vector<PromSample> ParsePrometheusText(absl::string_view text);
// Sum of the samples named `name` whose labels include every pair of `match`;
// nullopt when none matches.
std::optional<double> SumSamples(const std::vector<PromSample>& samples, absl::string_view name,
                                 const std::map<std::string, std::string>& match);

// after - before of the summed samples (see SumSamples); nullopt when `after`
// has none.
std::optional<double> SampleDelta(const std::vector<PromSample>& before,
                                  const std::vector<PromSample>& after, absl::string_view name,
                                  const std::map<std::string, std::string>& match);

// What the server reports about one model version between two scrapes.
struct ServerSplit {
  bool valid = false;          // the histograms were found and counted something
  double queue_wait_ms = 0;    // mean per request: enqueue until its batch formed
  double compute_ms = 0;       // mean per batch: model run time
  double batch_rows = 0;       // mean rows per executed batch
  double batches = 0;          // batches executed between the scrapes
  double requests = 0;         // requests whose queue wait was recorded
  // Mean server-side duration (receipt to answer) of the requests of the
  // measured method; NaN when the server does not export
  // microbatch_request_duration_seconds for it.
  double request_ms = 0;
};
// From the microbatch_queue_wait_seconds, microbatch_compute_seconds and
// microbatch_batch_size_rows histograms (labels model, version), and
// request_ms from microbatch_request_duration_seconds{method=`method`}
// ("Predict", "ModelInfer" or "RestInfer").
ServerSplit ComputeServerSplit(const std::vector<PromSample>& before,
                               const std::vector<PromSample>& after, const std::string& model,
                               const std::string& version, const std::string& method = "Predict");

// `elements` random little-endian values of `dtype` from `seed`: floats
// uniform in [-1, 1), integers in [0, 10), bools 0/1. Same seed, same bytes.
std::string RandomTensorBytes(DType dtype, int64_t elements, uint64_t seed);

// Inter-arrival gaps of a Poisson process of `rate` events per second, in
// seconds, from a fixed seed.
class PoissonArrivals {
 public:
  PoissonArrivals(double rate, uint64_t seed);
  double NextGapSeconds();

 private:
  double rate_;
  uint64_t state_;
};

// Left-aligned first column, right-aligned others, two spaces between.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);
// Fixed-point with `digits` decimals ("-" for NaN).
std::string Fixed(double value, int digits);
// Quotes a CSV field when it holds a comma, quote or newline.
std::string CsvField(absl::string_view field);

}  // namespace bench
}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_BENCH_STATS_H_
