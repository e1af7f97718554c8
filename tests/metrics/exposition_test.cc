// The metrics layer on prometheus-cpp: bucket layouts, the exposition of a
// registry plus collectables, process metrics, and exact totals under
// concurrent updates and scrapes (also run under ThreadSanitizer).
#include "server/metrics/exposition.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/buckets.h"
#include "server/metrics/process_collector.h"

namespace microbatch {
namespace metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// The value of the sample line starting with `series` followed by a space.
std::optional<double> SampleValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

TEST(BucketsTest, LayoutsDashboardsDependOn) {
  EXPECT_THAT(LatencySecondsBuckets(),
              ElementsAre(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                          0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10));
  EXPECT_THAT(BatchSizeBuckets(), ElementsAre(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024));
}

TEST(ExpositionTest, RegistryThenCollectablesInOrderAndLeUpperInclusive) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& requests = prometheus::BuildCounter().Name("mb_requests_total").Help("Requests.").Register(*registry);
  auto& latency = prometheus::BuildHistogram().Name("mb_latency_seconds").Help("Latency.").Register(*registry);
  requests.Add({{"model", "mlp"}}).Increment(3);
  auto& h = latency.Add({{"model", "mlp"}}, prometheus::Histogram::BucketBoundaries{0.1, 1, 2.5});
  for (double v : {0.05, 0.1, 0.5, 3.0}) h.Observe(v);
  auto queue = std::make_shared<FunctionCollector>([] {
    prometheus::MetricFamily family;
    family.name = "mb_queue_depth";
    family.help = "Queue depth.";
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.gauge.value = 3;
    family.metric.push_back(metric);
    return std::vector<prometheus::MetricFamily>{family};
  });
  Exposition exposition;
  exposition.Add(registry);
  exposition.Add(queue);
  const std::string text = exposition.Serialize();
  EXPECT_THAT(text, HasSubstr("mb_requests_total{model=\"mlp\"} 3\n"));
  // Prometheus `le` semantics: 0.1 lands in the 0.1 bucket.
  EXPECT_THAT(text, HasSubstr("mb_latency_seconds_bucket{model=\"mlp\",le=\"0.1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("mb_latency_seconds_bucket{model=\"mlp\",le=\"1\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("mb_latency_seconds_bucket{model=\"mlp\",le=\"+Inf\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("mb_latency_seconds_count{model=\"mlp\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE mb_queue_depth gauge\nmb_queue_depth 3\n"));
  EXPECT_LT(text.find("mb_requests_total"), text.find("mb_queue_depth"));
}

TEST(ExpositionTest, DestroyedCollectableIsSkipped) {
  Exposition exposition;
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge().Name("mb_kept").Help("Kept.").Register(*registry).Add({}).Set(1);
  exposition.Add(registry);
  {
    auto gone = std::make_shared<prometheus::Registry>();
    prometheus::BuildGauge().Name("mb_gone").Help("Gone.").Register(*gone).Add({}).Set(1);
    exposition.Add(gone);
    EXPECT_THAT(exposition.Serialize(), HasSubstr("mb_gone 1"));
  }
  const std::string text = exposition.Serialize();
  EXPECT_THAT(text, HasSubstr("mb_kept 1"));
  EXPECT_THAT(text, Not(HasSubstr("mb_gone")));
}

TEST(ExpositionTest, LabelValuesAreEscaped) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("mb_total")
      .Help("Escapes.")
      .Register(*registry)
      .Add({{"model", "a\"b\\c\nd"}})
      .Increment();
  Exposition exposition;
  exposition.Add(registry);
  EXPECT_THAT(exposition.Serialize(), HasSubstr("mb_total{model=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(ProcessCollectorTest, PlausibleValues) {
  Exposition exposition;
  auto process = std::make_shared<ProcessCollector>();
  exposition.Add(process);
  const std::string text = exposition.Serialize();
  for (const char* type : {"# TYPE process_cpu_seconds_total counter",
                           "# TYPE process_resident_memory_bytes gauge",
                           "# TYPE process_virtual_memory_bytes gauge",
                           "# TYPE process_open_fds gauge", "# TYPE process_max_fds gauge",
                           "# TYPE process_start_time_seconds gauge"}) {
    EXPECT_THAT(text, HasSubstr(type));
  }
  std::optional<double> rss = SampleValue(text, "process_resident_memory_bytes");
  std::optional<double> vsize = SampleValue(text, "process_virtual_memory_bytes");
  ASSERT_TRUE(rss && vsize) << text;
  EXPECT_GT(*rss, 1 << 20);
  EXPECT_GE(*vsize, *rss);
  std::optional<double> cpu = SampleValue(text, "process_cpu_seconds_total");
  ASSERT_TRUE(cpu);
  EXPECT_GE(*cpu, 0);
  std::optional<double> open_fds = SampleValue(text, "process_open_fds");
  std::optional<double> max_fds = SampleValue(text, "process_max_fds");
  ASSERT_TRUE(open_fds && max_fds);
  EXPECT_GE(*open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(*max_fds, *open_fds);
  std::optional<double> start = SampleValue(text, "process_start_time_seconds");
  ASSERT_TRUE(start);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(*start, now + 1);
  EXPECT_GT(*start, now - 3600);
}

TEST(ProcessCollectorTest, OpenFdsCountsNewDescriptors) {
  Exposition exposition;
  auto process = std::make_shared<ProcessCollector>();
  exposition.Add(process);
  const double before = *SampleValue(exposition.Serialize(), "process_open_fds");
  int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  const double during = *SampleValue(exposition.Serialize(), "process_open_fds");
  close(fd);
  EXPECT_EQ(during, before + 1);
}

// Concurrent updates, child creation and scrapes; final values must be exact
// (all increments are integers or halves, so double sums are exact).
TEST(ConcurrencyTest, ExactTotals) {
  constexpr int kThreads = 8;
  constexpr int kIterations = 20000;
  auto registry = std::make_shared<prometheus::Registry>();
  auto& counters = prometheus::BuildCounter().Name("c_total").Help("C.").Register(*registry);
  auto& gauges = prometheus::BuildGauge().Name("g").Help("G.").Register(*registry);
  auto& histograms = prometheus::BuildHistogram().Name("h").Help("H.").Register(*registry);
  const prometheus::Histogram::BucketBoundaries bounds{1, 2, 4};
  Exposition exposition;
  exposition.Add(registry);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      prometheus::Counter& shared = counters.Add({{"model", "shared"}});
      prometheus::Gauge& gauge = gauges.Add({{"model", "shared"}});
      prometheus::Histogram& histogram = histograms.Add({{"model", "shared"}}, bounds);
      for (int i = 0; i < kIterations; ++i) {
        shared.Increment();
        shared.Increment(0.5);
        gauge.Increment(i % 2 == 0 ? 2 : -1);
        histogram.Observe(i % 4 + 0.5);  // 0.5, 1.5, 2.5, 3.5
        if (i % 1000 == 0) counters.Add({{"model", "t" + std::to_string(t)}}).Increment();
      }
    });
  }
  std::thread scraper([&] {
    for (int i = 0; i < 20; ++i) ASSERT_THAT(exposition.Serialize(), HasSubstr("# TYPE h histogram"));
  });
  for (std::thread& thread : threads) thread.join();
  scraper.join();

  constexpr double kTotal = static_cast<double>(kThreads) * kIterations;
  EXPECT_EQ(counters.Add({{"model", "shared"}}).Value(), 1.5 * kTotal);
  EXPECT_EQ(gauges.Add({{"model", "shared"}}).Value(), kTotal / 2);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(counters.Add({{"model", "t" + std::to_string(t)}}).Value(), kIterations / 1000);
  }
  const std::string text = exposition.Serialize();
  const double quarter = kTotal / 4;
  EXPECT_EQ(SampleValue(text, "h_bucket{model=\"shared\",le=\"1\"}"), quarter);
  EXPECT_EQ(SampleValue(text, "h_bucket{model=\"shared\",le=\"2\"}"), 2 * quarter);
  EXPECT_EQ(SampleValue(text, "h_bucket{model=\"shared\",le=\"4\"}"), 4 * quarter);
  EXPECT_EQ(SampleValue(text, "h_sum{model=\"shared\"}"), quarter * (0.5 + 1.5 + 2.5 + 3.5));
}

}  // namespace
}  // namespace metrics
}  // namespace microbatch
