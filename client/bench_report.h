// The report of `microbatch bench`: the results of each load level, and
// their rendering as a table, CSV, JSON or an SVG latency-throughput plot.
#ifndef MICROBATCH_CLIENT_BENCH_REPORT_H_
#define MICROBATCH_CLIENT_BENCH_REPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "client/bench_stats.h"

namespace microbatch {
namespace bench {

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

// "table", "csv" or "json" (anything else: the table).
std::string FormatReport(const BenchReport& report, const std::string& format);
// The latency-throughput curve (p50 and p99 vs throughput), one point per level.
std::string PlotReport(const BenchReport& report);

// "c=8" (concurrency) or "r=1000" (request rate).
std::string LevelName(const LevelResult& result);
// "UNAVAILABLE:2,DEADLINE_EXCEEDED:1", or "0" without errors.
std::string ErrorsText(const LevelResult& result);

}  // namespace bench
}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_BENCH_REPORT_H_
