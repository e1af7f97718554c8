#include "server/metrics/metrics.h"

#include <cmath>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(FormatValueTest, PrometheusSpelling) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-7), "-7");
  EXPECT_EQ(FormatValue(1e6), "1000000");
  EXPECT_EQ(FormatValue(9007199254740991.0), "9007199254740991");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.00005), "5e-05");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatValue(NAN), "NaN");
  // Shortest round trip.
  EXPECT_EQ(std::stod(FormatValue(0.1 + 0.2)), 0.1 + 0.2);
}

TEST(EscapeTest, LabelValue) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(EscapeTest, HelpKeepsQuotes) { EXPECT_EQ(EscapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd"); }

TEST(RegistryTest, ExactExposition) {
  Registry registry;
  Family<Counter>* requests =
      *registry.AddCounter("mb_requests_total", "Requests.\nSecond \\ line.", {"model", "code"});
  Family<Gauge>* temperature = *registry.AddGauge("mb_temperature_celsius", "Temperature.");
  Family<Histogram>* latency =
      *registry.AddHistogram("mb_latency_seconds", "Latency.", {"model"}, {0.1, 1, 2.5});
  ASSERT_TRUE(registry.AddCallbackGauge("mb_queue_depth", "Queue depth.", [] { return 3.0; }).ok());
  ASSERT_TRUE(registry.AddCounter("mb_unused_total", "No children yet.", {"model"}).ok());

  requests->WithLabels({"mlp", "OK"})->Increment();
  requests->WithLabels({"mlp", "OK"})->Increment(2);
  requests->WithLabels({"a\"b\\c\nd", "OK"})->Increment();
  temperature->WithLabels({})->Set(-1.5);
  Histogram* mlp = latency->WithLabels({"mlp"});
  for (double v : {0.05, 0.1, 0.5, 3.0}) mlp->Observe(v);

  EXPECT_EQ(registry.Expose(),
            "# HELP mb_requests_total Requests.\\nSecond \\\\ line.\n"
            "# TYPE mb_requests_total counter\n"
            "mb_requests_total{model=\"a\\\"b\\\\c\\nd\",code=\"OK\"} 1\n"
            "mb_requests_total{model=\"mlp\",code=\"OK\"} 3\n"
            "# HELP mb_temperature_celsius Temperature.\n"
            "# TYPE mb_temperature_celsius gauge\n"
            "mb_temperature_celsius -1.5\n"
            "# HELP mb_latency_seconds Latency.\n"
            "# TYPE mb_latency_seconds histogram\n"
            "mb_latency_seconds_bucket{model=\"mlp\",le=\"0.1\"} 2\n"
            "mb_latency_seconds_bucket{model=\"mlp\",le=\"1\"} 3\n"
            "mb_latency_seconds_bucket{model=\"mlp\",le=\"2.5\"} 3\n"
            "mb_latency_seconds_bucket{model=\"mlp\",le=\"+Inf\"} 4\n"
            "mb_latency_seconds_sum{model=\"mlp\"} 3.65\n"
            "mb_latency_seconds_count{model=\"mlp\"} 4\n"
            "# HELP mb_queue_depth Queue depth.\n"
            "# TYPE mb_queue_depth gauge\n"
            "mb_queue_depth 3\n"
            "# HELP mb_unused_total No children yet.\n"
            "# TYPE mb_unused_total counter\n");
}

TEST(RegistryTest, UnlabeledFamiliesStartAtZero) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("c_total", "C.").ok());
  ASSERT_TRUE(registry.AddHistogram("h", "H.", {}, {1}).ok());
  EXPECT_EQ(registry.Expose(),
            "# HELP c_total C.\n# TYPE c_total counter\nc_total 0\n"
            "# HELP h H.\n# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
}

TEST(RegistryTest, WithLabelsReturnsStablePointers) {
  Registry registry;
  Family<Gauge>* family = *registry.AddGauge("g", "G.", {"model"});
  Gauge* a = family->WithLabels({"a"});
  for (int i = 0; i < 100; ++i) family->WithLabels({std::to_string(i)});
  EXPECT_EQ(family->WithLabels({"a"}), a);
}

TEST(RegistryTest, CallbackFamily) {
  Registry registry;
  int scrapes = 0;
  ASSERT_TRUE(registry
                  .AddCallback(MetricType::kGauge, "mb_queue_rows", "Rows queued.",
                               {"model", "version"},
                               [&scrapes] {
                                 ++scrapes;
                                 return std::vector<Sample>{
                                     {{"mlp", "1"}, 4}, {{"bad"}, 1}, {{"mlp", "2"}, 0.5}};
                               })
                  .ok());
  ASSERT_TRUE(registry.AddCallbackCounter("mb_ticks_total", "Ticks.", [] { return 7.0; }).ok());
  EXPECT_EQ(registry.Expose(),
            "# HELP mb_queue_rows Rows queued.\n# TYPE mb_queue_rows gauge\n"
            "mb_queue_rows{model=\"mlp\",version=\"1\"} 4\n"
            "mb_queue_rows{model=\"mlp\",version=\"2\"} 0.5\n"
            "# HELP mb_ticks_total Ticks.\n# TYPE mb_ticks_total counter\nmb_ticks_total 7\n");
  registry.Expose();
  EXPECT_EQ(scrapes, 2);
  EXPECT_EQ(registry.AddCallback(MetricType::kHistogram, "h", "H.", {}, {}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RegistryTest, ValidatesNames) {
  Registry registry;
  auto code = [](const absl::Status& status) { return status.code(); };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(registry.AddGauge("", "G.").status()), kInvalid);
  EXPECT_EQ(code(registry.AddGauge("1abc", "G.").status()), kInvalid);
  EXPECT_EQ(code(registry.AddGauge("a-b", "G.").status()), kInvalid);
  EXPECT_EQ(code(registry.AddGauge("ok", "").status()), kInvalid);
  EXPECT_EQ(code(registry.AddGauge("ok", "G.", {"1x"}).status()), kInvalid);
  EXPECT_EQ(code(registry.AddGauge("ok", "G.", {"__x"}).status()), kInvalid);
  EXPECT_EQ(code(registry.AddGauge("ok", "G.", {"a.b"}).status()), kInvalid);
  EXPECT_EQ(code(registry.AddGauge("ok", "G.", {"a", "a"}).status()), kInvalid);
  EXPECT_EQ(code(registry.AddGauge("ok_total", "G.").status()), kInvalid);
  EXPECT_EQ(code(registry.AddGauge("ok_count", "G.").status()), kInvalid);
  EXPECT_EQ(code(registry.AddCounter("requests", "C.").status()), kInvalid);
  EXPECT_EQ(code(registry.AddHistogram("h", "H.", {"le"}, {1}).status()), kInvalid);
  EXPECT_EQ(code(registry.AddHistogram("h", "H.", {}, {2, 1}).status()), kInvalid);
  EXPECT_EQ(code(registry.AddHistogram("h", "H.", {}, {1, 1}).status()), kInvalid);
  EXPECT_EQ(code(registry.AddHistogram("h", "H.", {}, {NAN}).status()), kInvalid);
  EXPECT_EQ(code(registry.AddHistogram("h", "H.", {}, {-INFINITY, 1}).status()), kInvalid);

  EXPECT_TRUE(registry.AddGauge("ns:ok_gauge", "G.", {"_a", "B9"}).ok());
  EXPECT_EQ(code(registry.AddGauge("ns:ok_gauge", "G.").status()),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(code(registry.AddCallbackGauge("ns:ok_gauge", "G.", [] { return 0.0; })),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.Expose(), "# HELP ns:ok_gauge G.\n# TYPE ns:ok_gauge gauge\n");
}

TEST(RegistryDeathTest, WrongNumberOfLabelValuesAborts) {
  Registry registry;
  Family<Counter>* family = *registry.AddCounter("c_total", "C.", {"a", "b"});
  EXPECT_DEATH(family->WithLabels({"x"}), "1 label values for 2 label names");
}

TEST(CounterTest, IgnoresNegativeAndNaN) {
  Counter counter;
  counter.Increment(2.5);
  counter.Increment(-1);
  counter.Increment(NAN);
  EXPECT_EQ(counter.Value(), 2.5);
}

TEST(GaugeTest, SetAddIncrementDecrement) {
  Gauge gauge;
  gauge.Set(10);
  gauge.Add(-2.5);
  gauge.Increment();
  gauge.Decrement();
  gauge.Decrement();
  EXPECT_EQ(gauge.Value(), 6.5);
}

TEST(HistogramTest, BucketsAreUpperInclusiveAndCumulative) {
  Histogram histogram({1, 2, 4});
  for (double v : {-5.0, 1.0, 1.5, 2.0, 4.0, 4.5, double{INFINITY}}) histogram.Observe(v);
  HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_THAT(snapshot.cumulative, ElementsAre(2, 4, 5, 7));
  EXPECT_EQ(snapshot.count, 7u);
  EXPECT_EQ(snapshot.sum, INFINITY);
  histogram.Observe(NAN);
  EXPECT_THAT(histogram.Snapshot().cumulative, ElementsAre(2, 4, 5, 8));
}

TEST(HistogramTest, TrailingInfBoundIsDropped) {
  Registry registry;
  Family<Histogram>* family = *registry.AddHistogram("h", "H.", {}, {1, INFINITY});
  EXPECT_THAT(family->WithLabels({})->bounds(), ElementsAre(1));
  EXPECT_THAT(registry.Expose(), HasSubstr("h_bucket{le=\"+Inf\"} 0\nh_sum"));
}

TEST(BucketsTest, Helpers) {
  EXPECT_THAT(ExponentialBuckets(1, 2, 4), ElementsAre(1, 2, 4, 8));
  EXPECT_THAT(ExponentialBuckets(0, 2, 4), ElementsAre());
  EXPECT_THAT(LinearBuckets(5, 5, 3), ElementsAre(5, 10, 15));
  EXPECT_THAT(LinearBuckets(5, 0, 3), ElementsAre());
  EXPECT_THAT(BatchSizeBuckets(), ElementsAre(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024));
  std::vector<double> latency = LatencySecondsBuckets();
  EXPECT_EQ(latency.front(), 0.00005);
  EXPECT_EQ(latency.back(), 10);
  EXPECT_TRUE(std::is_sorted(latency.begin(), latency.end()));
  Registry registry;
  EXPECT_TRUE(registry.AddHistogram("a_seconds", "A.", {}, latency).ok());
  EXPECT_TRUE(registry.AddHistogram("b_rows", "B.", {}, BatchSizeBuckets()).ok());
}

// Concurrent updates, lookups and scrapes; final values must be exact (all
// increments are integers or halves, so double sums are exact). Also run
// under ThreadSanitizer.
TEST(ConcurrencyTest, ExactTotals) {
  constexpr int kThreads = 8;
  constexpr int kIterations = 20000;
  Registry registry;
  Family<Counter>* counters = *registry.AddCounter("c_total", "C.", {"model"});
  Family<Gauge>* gauges = *registry.AddGauge("g", "G.", {"model"});
  Family<Histogram>* histograms = *registry.AddHistogram("h", "H.", {"model"}, {1, 2, 4});

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter* shared = counters->WithLabels({"shared"});
      Gauge* gauge = gauges->WithLabels({"shared"});
      Histogram* histogram = histograms->WithLabels({"shared"});
      for (int i = 0; i < kIterations; ++i) {
        shared->Increment();
        shared->Increment(0.5);
        gauge->Add(i % 2 == 0 ? 2 : -1);
        histogram->Observe(i % 4 + 0.5);  // 0.5, 1.5, 2.5, 3.5
        if (i % 1000 == 0) counters->WithLabels({"t" + std::to_string(t)})->Increment();
      }
    });
  }
  std::thread scraper([&] {
    for (int i = 0; i < 20; ++i) {
      std::string text = registry.Expose();
      ASSERT_THAT(text, HasSubstr("# TYPE h histogram"));
    }
  });
  for (std::thread& thread : threads) thread.join();
  scraper.join();

  constexpr double kTotal = static_cast<double>(kThreads) * kIterations;
  EXPECT_EQ(counters->WithLabels({"shared"})->Value(), 1.5 * kTotal);
  EXPECT_EQ(gauges->WithLabels({"shared"})->Value(), kTotal / 2);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(counters->WithLabels({"t" + std::to_string(t)})->Value(), kIterations / 1000);
  }
  HistogramSnapshot snapshot = histograms->WithLabels({"shared"})->Snapshot();
  const uint64_t quarter = static_cast<uint64_t>(kTotal / 4);
  EXPECT_THAT(snapshot.cumulative, ElementsAre(quarter, 2 * quarter, 4 * quarter, 4 * quarter));
  EXPECT_EQ(snapshot.sum, kTotal / 4 * (0.5 + 1.5 + 2.5 + 3.5));
}

}  // namespace
}  // namespace metrics
}  // namespace microbatch
