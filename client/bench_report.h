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
  std::string protocol = "v1";  // the front end measured: "v1", "v2" or "rest"
  int64_t round = 1;            // which pass of a --rounds run (1-based)
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

// One front end of the run.
struct ProtocolInfo {
  std::string protocol;  // "v1", "v2" or "rest"
  std::string target;    // gRPC target, or the REST URL
  std::string method;    // "Predict", "Echo", "ModelInfer" or "POST infer"
  int64_t payload_bytes = 0;  // request message or JSON body
  int64_t channels = 0;       // gRPC channels; 0 for REST (a kept-alive connection per request in flight)
};

struct BenchReport {
  // The first front end (the only one in a single-protocol run).
  std::string target;
  std::string method;  // "Predict", "Echo", "ModelInfer" or "POST infer"
  std::string model;
  int64_t version = 0;
  int64_t rows = 1;
  int64_t payload_bytes = 0;
  int64_t deadline_ms = 0;
  int64_t channels = 0;
  // Every front end, in the order each level ran them; empty: the one above,
  // v1.
  std::vector<ProtocolInfo> protocols;
  // Times the whole sequence of levels ran (--rounds).
  int64_t rounds = 1;
  // Round after round; in each, level after level, each through every
  // protocol in turn.
  std::vector<LevelResult> levels;
};

// Whether the report shows a protocol column: a front end other than v1, or
// several.
bool ShowsProtocols(const BenchReport& report);

// The throughput of each level of each protocol after the first relative to
// the first protocol's at the same level of the same round (e.g. v2/v1), as
// "c=1 throughput v2/v1 0.97, rest/v1 0.60" lines ("round 2 c=1 ..." with
// several rounds, then the median of each ratio over the rounds); empty with
// one protocol. Levels whose first-protocol throughput is 0 show "-".
std::string ThroughputRatios(const BenchReport& report);

// "table", "csv" or "json" (anything else: the table).
std::string FormatReport(const BenchReport& report, const std::string& format);
// The latency-throughput curve (p50 and p99 vs throughput), one point per level
// (of the first round when there are several).
std::string PlotReport(const BenchReport& report);

// "c=8" (concurrency) or "r=1000" (request rate).
std::string LevelName(const LevelResult& result);
// "UNAVAILABLE:2,DEADLINE_EXCEEDED:1", or "0" without errors.
std::string ErrorsText(const LevelResult& result);

}  // namespace bench
}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_BENCH_REPORT_H_
