// Checks a full exposition with `promtool check metrics` (Prometheus' own
// parser and linter). Skipped when promtool is not installed.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "server/metrics/metrics.h"
#include "server/metrics/process_metrics.h"

namespace microbatch {
namespace metrics {
namespace {

constexpr char kPromtool[] = "/usr/bin/promtool";

// A registry using every feature: all types, labels needing escaping, HELP
// needing escaping, empty families, special values, process metrics.
std::string FullExposition() {
  Registry registry;
  EXPECT_TRUE(RegisterProcessMetrics(&registry).ok());
  EXPECT_TRUE(RegisterBuildInfo(&registry, {{"version", "0.1.0"}, {"commit", "deadbeef"}}).ok());
  Family<Counter>* requests = *registry.AddCounter(
      "microbatch_requests_total", "Requests by \"model\"\nand code \\ status.",
      {"model", "version", "code"});
  requests->WithLabels({"mlp", "1", "OK"})->Increment(12);
  requests->WithLabels({"we\"ird\\na\nme", "2", "INVALID_ARGUMENT"})->Increment();
  requests->WithLabels({"", "3", "OK"});
  Family<Gauge>* gauges = *registry.AddGauge("microbatch_special_value", "Special.", {"kind"});
  gauges->WithLabels({"inf"})->Set(INFINITY);
  gauges->WithLabels({"neg_inf"})->Set(-INFINITY);
  gauges->WithLabels({"nan"})->Set(NAN);
  gauges->WithLabels({"tiny"})->Set(1e-300);
  gauges->WithLabels({"huge"})->Set(1.5e300);
  Family<Histogram>* latency = *registry.AddHistogram(
      "microbatch_request_latency_seconds", "Latency.", {"model"}, LatencySecondsBuckets());
  for (int i = 0; i < 1000; ++i) latency->WithLabels({"mlp"})->Observe(i * 1e-4);
  latency->WithLabels({"idle"});
  Family<Histogram>* batch = *registry.AddHistogram(
      "microbatch_batch_size_rows", "Rows per batch.", {}, BatchSizeBuckets());
  batch->WithLabels({})->Observe(3);
  EXPECT_TRUE(registry.AddCounter("microbatch_empty_total", "Never used.", {"model"}).ok());
  EXPECT_TRUE(registry.AddHistogram("microbatch_empty_seconds", "Never used.", {"model"}, {1}).ok());
  EXPECT_TRUE(registry
                  .AddCallback(MetricType::kGauge, "microbatch_queue_rows", "Queued rows.",
                               {"model", "version"},
                               [] { return std::vector<Sample>{{{"mlp", "1"}, 5}}; })
                  .ok());
  return registry.Expose();
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
