// `microbatch bench`: a load generator for any server speaking
// microbatch.v1.Inference (or microbatch.v1.Echo), the Open Inference
// Protocol over gRPC (v2 ModelInfer) or over HTTP/JSON (REST), or several of
// them in one run, each level through each front end in turn. Closed loop (a fixed number
// of requests kept in flight) and open loop (Poisson arrivals at a fixed
// rate), measured in windows repeated until throughput and p99 settle, with
// the server's own queue/compute split scraped from its Prometheus metrics.
//
// The pieces: bench_load.h (load generation), metrics_scraper.h (the
// /metrics scrape), bench_report.h (results and their formats), and this
// file's RunBench, which runs every level and prints the report.
#ifndef MICROBATCH_CLIENT_BENCH_H_
#define MICROBATCH_CLIENT_BENCH_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "client/bench_report.h"
#include "client/channel.h"
#include "client/open_inference.h"

namespace microbatch {
namespace bench {

// The options of `microbatch bench`; defaults are the flags' defaults.
struct BenchOptions {
  std::string target = "localhost:8500";  // gRPC: v1 and v2
  // REST: [http[s]://]host:port[/prefix] (https also when tls asks for TLS).
  std::string http = "localhost:8502";
  // The front ends, each level run through each in this order.
  std::vector<Protocol> protocols = {Protocol::kV1};
  TlsOptions tls;
  std::string model;  // required; with echo it only defines the payload
  int64_t version = 0;
  int64_t rows = 1;
  // Closed-loop levels (requests kept in flight) and open-loop levels
  // (requests/s); both sweeps run when both are given. Neither: concurrency 1.
  std::vector<int64_t> concurrency;
  std::vector<double> request_rates;
  int64_t deadline_ms = 0;  // 0: no deadline
  int64_t window_ms = 5000;
  int64_t warmup_ms = 2000;
  double stability = 0.10;
  int64_t stable_windows = 3;
  int64_t max_windows = 10;
  // Times the whole sequence (every level through every front end in turn)
  // runs; each result carries its round. With several, the front ends'
  // ratios come from neighbouring measurements in each round, and their
  // median over the rounds is printed (this machine's speed drifts).
  int64_t rounds = 1;
  int64_t channels = 4;
  // Open loop: requests in flight beyond which arrivals are dropped by the
  // client (counted as CLIENT_DROPPED) instead of sent.
  int64_t max_inflight = 20000;
  bool echo = false;  // v1 only
  // Each level also runs through bare microbatch.v1.Echo with the v1 payload,
  // first (protocol "echo" in the report), so that a ratio to the transport's
  // floor compares neighbouring measurements. Exclusive with `echo`.
  bool with_echo = false;
  // [http[s]://]host:port[/path] of the server's /metrics (https: verified
  // with tls.ca_file when set); empty: no server-side split.
  std::string metrics_url;
  // Dims after the batch dimension, per input, replacing the metadata's.
  std::map<std::string, std::vector<int64_t>> shapes;
  uint64_t seed = 1;
  bool verbose = false;
  std::string format = "table";  // table, csv or json
  std::string plot;              // SVG file for the latency-throughput curve; empty: none
};

// Runs the benchmark and prints the report on stdout, progress on stderr.
// Returns the exit code: 0, or 1 after printing the error (server
// unreachable, a front end whose first request fails, bad --shape for the
// model, unwritable --plot, ...). The model's metadata comes from the first
// of v1, v2, rest that is in `protocols`.
int RunBench(const BenchOptions& options);

}  // namespace bench
}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_BENCH_H_
