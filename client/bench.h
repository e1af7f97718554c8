// `microbatch bench`: a load generator for any server speaking
// microbatch.v1.Inference (or microbatch.v1.Echo). Closed loop (a fixed number
// of requests kept in flight) and open loop (Poisson arrivals at a fixed
// rate), measured in windows repeated until throughput and p99 settle, with
// the server's own queue/compute split scraped from its Prometheus metrics.
#ifndef MICROBATCH_CLIENT_BENCH_H_
#define MICROBATCH_CLIENT_BENCH_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "client/bench_stats.h"

namespace microbatch {
namespace bench {

struct BenchOptions {
  std::string target = "localhost:8500";
  std::string model;
  int64_t version = 0;
  int64_t rows = 1;
  // Closed-loop levels (requests kept in flight) and open-loop levels
  // (requests/s); both sweeps run when both are given.
  std::vector<int64_t> concurrency;
  std::vector<double> request_rates;
  int64_t deadline_ms = 0;  // 0: no deadline
  int64_t window_ms = 5000;
  int64_t warmup_ms = 2000;
  double stability = 0.10;
  int64_t stable_windows = 3;
  int64_t max_windows = 10;
  int64_t channels = 4;
  // Open loop: requests in flight beyond which arrivals are dropped by the
  // client (counted as CLIENT_DROPPED) instead of sent.
  int64_t max_inflight = 20000;
  bool echo = false;
  std::string metrics_url;  // host:port[/path]; empty: no server-side split
  // Dims after the batch dimension, per input, replacing the metadata's.
  std::map<std::string, std::vector<int64_t>> shapes;
  uint64_t seed = 1;
  bool verbose = false;
};

// One concurrency or request-rate level, over the windows it was judged on
// (the last `stable_windows`, or all of them when fewer ran).
struct LevelResult {
  std::string mode;  // "concurrency" or "rate"
  double level = 0;
  int windows = 0;        // windows measured
  bool stable = false;    // the last windows met the stability criterion
  double seconds = 0;     // length of the windows reported
  int64_t sent = 0;
  int64_t ok = 0;
  int64_t late = 0;       // OK responses received after their deadline
  int64_t errors = 0;
  std::map<std::string, int64_t> errors_by_code;
  double throughput = 0;  // OK responses/s
  double rows_per_s = 0;
  double goodput = 0;     // OK responses within their deadline per second
  double goodput_rows_per_s = 0;
  double max_send_lag_ms = 0;  // open loop: how far sends fell behind schedule
  LatencySummary latency;      // ms, OK responses; open loop: from the scheduled send
  ServerSplit server;
  // CPU cores busy on average (user + system) in this client and, from the
  // server's process_cpu_seconds_total, in the server; NaN when unknown.
  double client_cpu_cores = 0;
  double server_cpu_cores = 0;
};

struct BenchReport {
  std::string target;
  std::string method;  // "Predict" or "Echo"
  std::string model;
  int64_t version = 0;
  int64_t rows = 1;
  int64_t payload_bytes = 0;
  int64_t deadline_ms = 0;
  int64_t channels = 0;
  std::vector<LevelResult> levels;
};

// "table", "csv" or "json".
std::string FormatReport(const BenchReport& report, const std::string& format);
// The latency-throughput curve (p50 and p99 vs throughput), one point per level.
std::string PlotReport(const BenchReport& report);

}  // namespace bench
}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_BENCH_H_
