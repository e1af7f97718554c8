// Checks a full exposition with `promtool check metrics` (Prometheus' own
// parser and linter). Skipped when promtool is not installed.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "gtest/gtest.h"
#include "server/metrics/buckets.h"
#include "server/metrics/exposition.h"
#include "server/metrics/process_collector.h"

namespace microbatch {
namespace metrics {
namespace {

constexpr char kPromtool[] = "/usr/bin/promtool";

// An exposition using every feature the server uses: all types, labels and
// HELP needing escaping, special values, empty label values, a
// scrape-time collector, process metrics.
std::string FullExposition() {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("microbatch_build_info")
      .Help("Build information; the value is always 1.")
      .Register(*registry)
      .Add({{"version", "0.1.0"}, {"commit", "deadbeef"}})
      .Set(1);
  auto& requests = prometheus::BuildCounter()
                       .Name("microbatch_requests_total")
                       .Help("Requests by \"model\" and code (HELP is not escaped by prometheus-cpp 1.0.1: keep it plain).")
                       .Register(*registry);
  requests.Add({{"model", "mlp"}, {"version", "1"}, {"code", "OK"}}).Increment(12);
  requests.Add({{"model", "we\"ird\\na\nme"}, {"version", "2"}, {"code", "INVALID_ARGUMENT"}})
      .Increment();
  requests.Add({{"model", ""}, {"version", "3"}, {"code", "OK"}});
  auto& gauges =
      prometheus::BuildGauge().Name("microbatch_special_value").Help("Special.").Register(*registry);
  gauges.Add({{"kind", "inf"}}).Set(INFINITY);
  gauges.Add({{"kind", "neg_inf"}}).Set(-INFINITY);
  gauges.Add({{"kind", "nan"}}).Set(NAN);
  gauges.Add({{"kind", "tiny"}}).Set(1e-300);
  gauges.Add({{"kind", "huge"}}).Set(1.5e300);
  auto& latency = prometheus::BuildHistogram()
                      .Name("microbatch_request_latency_seconds")
                      .Help("Latency.")
                      .Register(*registry);
  auto& mlp = latency.Add({{"model", "mlp"}}, LatencySecondsBuckets());
  for (int i = 0; i < 1000; ++i) mlp.Observe(i * 1e-4);
  latency.Add({{"model", "idle"}}, LatencySecondsBuckets());
  prometheus::BuildHistogram()
      .Name("microbatch_batch_size_rows")
      .Help("Rows per batch.")
      .Register(*registry)
      .Add({}, BatchSizeBuckets())
      .Observe(3);
  prometheus::BuildCounter().Name("microbatch_empty_total").Help("Never used.").Register(*registry);
  auto queue = std::make_shared<FunctionCollector>([] {
    prometheus::MetricFamily family;
    family.name = "microbatch_queue_rows";
    family.help = "Queued rows.";
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.label = {{"model", "mlp"}, {"version", "1"}};
    metric.gauge.value = 5;
    family.metric.push_back(metric);
    return std::vector<prometheus::MetricFamily>{family};
  });
  auto process = std::make_shared<ProcessCollector>();
  Exposition exposition;
  exposition.Add(registry);
  exposition.Add(queue);
  exposition.Add(process);
  return exposition.Serialize();
}

// Runs promtool on `text`; returns its exit status and sets `output` to what
// it printed.
int RunPromtool(const std::string& text, std::string* output) {
  char path[] = "/tmp/promtool_test_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return -1;
  close(fd);
  std::ofstream(path) << text;
  const std::string command = std::string(kPromtool) + " check metrics < " + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  char buf[4096];
  size_t n;
  while (pipe != nullptr && (n = fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  unlink(path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(PromtoolTest, FullExpositionHasNoProblems) {
  if (access(kPromtool, X_OK) != 0) GTEST_SKIP() << kPromtool << " not installed";
  const std::string text = FullExposition();
  std::string output;
  EXPECT_EQ(RunPromtool(text, &output), 0) << output << "\n--- exposition ---\n" << text;
  EXPECT_EQ(output, "") << "\n--- exposition ---\n" << text;
}

// Guards the test itself: promtool must flag a broken exposition.
TEST(PromtoolTest, DetectsProblems) {
  if (access(kPromtool, X_OK) != 0) GTEST_SKIP() << kPromtool << " not installed";
  std::string output;
  EXPECT_NE(RunPromtool("# TYPE x counter\nx 1\n", &output), 0);
  EXPECT_NE(output, "");
}

}  // namespace
}  // namespace metrics
}  // namespace microbatch
