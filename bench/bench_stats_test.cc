#include "client/bench_stats.h"

#include <cmath>
#include <cstring>

#include "client/bench_report.h"
#include "client/plot_svg.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace bench {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<double> OneTo(int n) {
  std::vector<double> v;
  for (int i = 1; i <= n; ++i) v.push_back(i);
  return v;
}

TEST(PercentileTest, NearestRank) {
  const std::vector<double> v = OneTo(100);
  EXPECT_EQ(Percentile(v, 50), 50);
  EXPECT_EQ(Percentile(v, 90), 90);
  EXPECT_EQ(Percentile(v, 99), 99);
  EXPECT_EQ(Percentile(v, 99.9), 100);
  EXPECT_EQ(Percentile(v, 100), 100);
  EXPECT_EQ(Percentile(v, 0), 1);
}

TEST(PercentileTest, SmallAndEmpty) {
  EXPECT_EQ(Percentile({}, 50), 0);
  EXPECT_EQ(Percentile({7}, 99), 7);
  EXPECT_EQ(Percentile({1, 2}, 50), 1);
  EXPECT_EQ(Percentile({1, 2}, 51), 2);
  const std::vector<double> v = OneTo(1000);
  EXPECT_EQ(Percentile(v, 99.9), 999);
}

TEST(SummarizeTest, SortsAndSummarizes) {
  std::vector<double> v = {5, 1, 4, 2, 3};
  const LatencySummary s = Summarize(v);
  EXPECT_THAT(v, ElementsAre(1, 2, 3, 4, 5));
  EXPECT_EQ(s.count, 5);
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_EQ(s.p50, 3);
  EXPECT_EQ(s.p99, 5);
  EXPECT_EQ(s.max, 5);
  std::vector<double> empty;
  EXPECT_EQ(Summarize(empty).count, 0);
}

TEST(IsStableTest, LastWindowsWithinTolerance) {
  EXPECT_FALSE(IsStable({100, 100}, 3, 0.1));  // too few windows
  EXPECT_TRUE(IsStable({100, 105, 95}, 3, 0.1));
  EXPECT_FALSE(IsStable({100, 120, 95}, 3, 0.1));
  // Only the last three count.
  EXPECT_TRUE(IsStable({10, 500, 100, 101, 99}, 3, 0.1));
  EXPECT_TRUE(IsStable({0, 0, 0}, 3, 0.1));
  EXPECT_FALSE(IsStable({0, 0, 1}, 3, 0.1));
  EXPECT_TRUE(IsStable({42}, 1, 0.0));
}

TEST(ParseListTest, IntsAndDoubles) {
  EXPECT_THAT(*ParseIntList("1,2, 4", "c", 1), ElementsAre(1, 2, 4));
  EXPECT_TRUE(ParseIntList("", "c", 1)->empty());
  EXPECT_FALSE(ParseIntList("1,x", "c", 1).ok());
  EXPECT_FALSE(ParseIntList("0", "c", 1).ok());
  EXPECT_THAT(std::string(ParseIntList("1,,2", "concurrency", 1).status().message()),
              HasSubstr("--concurrency"));
  EXPECT_THAT(*ParseDoubleList("100,250.5", "r", 0.001), ElementsAre(100, 250.5));
  EXPECT_FALSE(ParseDoubleList("-1", "r", 0.001).ok());
  EXPECT_FALSE(ParseDoubleList("inf", "r", 0.001).ok());
}

constexpr char kScrape1[] = R"(# HELP microbatch_queue_wait_seconds Time from enqueue until the request's batch was formed.
# TYPE microbatch_queue_wait_seconds histogram
microbatch_queue_wait_seconds_bucket{model="m",version="1",le="0.001"} 5
microbatch_queue_wait_seconds_bucket{model="m",version="1",le="+Inf"} 10
microbatch_queue_wait_seconds_sum{model="m",version="1"} 0.5
microbatch_queue_wait_seconds_count{model="m",version="1"} 10
microbatch_queue_wait_seconds_sum{model="other",version="1"} 99
microbatch_queue_wait_seconds_count{model="other",version="1"} 99
microbatch_compute_seconds_sum{model="m",version="1"} 1
microbatch_compute_seconds_count{model="m",version="1"} 4
microbatch_batch_size_rows_sum{model="m",version="1"} 10
microbatch_batch_size_rows_count{model="m",version="1"} 4
process_start_time_seconds 1.7e+09
weird{a="x\"y",b="\\"} 3 1234567
)";

constexpr char kScrape2[] = R"(microbatch_queue_wait_seconds_sum{model="m",version="1"} 2.5
microbatch_queue_wait_seconds_count{model="m",version="1"} 110
microbatch_compute_seconds_sum{model="m",version="1"} 2
microbatch_compute_seconds_count{model="m",version="1"} 24
microbatch_batch_size_rows_sum{model="m",version="1"} 110
microbatch_batch_size_rows_count{model="m",version="1"} 24
process_cpu_seconds_total 12.5
)";

TEST(PrometheusTest, ParsesSamplesAndLabels) {
  const std::vector<PromSample> samples = ParsePrometheusText(kScrape1);
  ASSERT_EQ(samples.size(), 12u);
  EXPECT_EQ(samples[0].name, "microbatch_queue_wait_seconds_bucket");
  EXPECT_EQ(samples[0].labels.at("le"), "0.001");
  EXPECT_EQ(samples[1].labels.at("le"), "+Inf");
  EXPECT_EQ(samples[10].name, "process_start_time_seconds");
  EXPECT_DOUBLE_EQ(samples[10].value, 1.7e9);
  EXPECT_EQ(samples[11].labels.at("a"), "x\"y");
  EXPECT_EQ(samples[11].labels.at("b"), "\\");
  EXPECT_DOUBLE_EQ(samples[11].value, 3);
  EXPECT_EQ(*SumSamples(samples, "microbatch_queue_wait_seconds_count", {{"model", "m"}}), 10);
  EXPECT_EQ(*SumSamples(samples, "microbatch_queue_wait_seconds_count", {}), 109);
  EXPECT_FALSE(SumSamples(samples, "nope", {}).has_value());
}

TEST(PrometheusTest, ServerSplitFromDeltas) {
  const ServerSplit split =
      ComputeServerSplit(ParsePrometheusText(kScrape1), ParsePrometheusText(kScrape2), "m", "1");
  ASSERT_TRUE(split.valid);
  EXPECT_DOUBLE_EQ(split.queue_wait_ms, 2.0 / 100 * 1e3);  // 2 s over 100 requests
  EXPECT_DOUBLE_EQ(split.compute_ms, 1.0 / 20 * 1e3);      // 1 s over 20 batches
  EXPECT_DOUBLE_EQ(split.batch_rows, 100.0 / 20);
  EXPECT_DOUBLE_EQ(split.batches, 20);
  EXPECT_TRUE(std::isnan(split.request_ms));  // no request duration exported
  // No traffic between scrapes, or an unknown model: no split.
  EXPECT_FALSE(ComputeServerSplit(ParsePrometheusText(kScrape2), ParsePrometheusText(kScrape2), "m", "1").valid);
  EXPECT_FALSE(ComputeServerSplit({}, ParsePrometheusText(kScrape2), "x", "1").valid);
}

TEST(PrometheusTest, RequestDurationAndCpu) {
  const std::string before = std::string(kScrape1) +
                             "microbatch_request_duration_seconds_sum{model=\"m\",version=\"1\",method=\"Predict\"} 1\n"
                             "microbatch_request_duration_seconds_count{model=\"m\",version=\"1\",method=\"Predict\"} 10\n"
                             "microbatch_request_duration_seconds_sum{model=\"m\",version=\"1\",method=\"BatchPredict\"} 50\n"
                             "process_cpu_seconds_total 10\n";
  const std::string after = std::string(kScrape2) +
                            "microbatch_request_duration_seconds_sum{model=\"m\",version=\"1\",method=\"Predict\"} 4\n"
                            "microbatch_request_duration_seconds_count{model=\"m\",version=\"1\",method=\"Predict\"} 110\n"
                            "microbatch_request_duration_seconds_sum{model=\"m\",version=\"1\",method=\"BatchPredict\"} 90\n";
  const ServerSplit split = ComputeServerSplit(ParsePrometheusText(before), ParsePrometheusText(after), "m", "1");
  ASSERT_TRUE(split.valid);
  EXPECT_DOUBLE_EQ(split.request_ms, 3.0 / 100 * 1e3);
  // Another method's requests: none of them in the scrapes.
  EXPECT_TRUE(std::isnan(
      ComputeServerSplit(ParsePrometheusText(before), ParsePrometheusText(after), "m", "1", "ModelInfer").request_ms));
  EXPECT_DOUBLE_EQ(*SampleDelta(ParsePrometheusText(before), ParsePrometheusText(after),
                                "process_cpu_seconds_total", {}),
                   2.5);
}

TEST(RandomTensorBytesTest, SizesAndDeterminism) {
  EXPECT_EQ(RandomTensorBytes(DType::kFloat32, 10, 1).size(), 40u);
  EXPECT_EQ(RandomTensorBytes(DType::kFloat16, 10, 1).size(), 20u);
  EXPECT_EQ(RandomTensorBytes(DType::kInt64, 3, 1).size(), 24u);
  EXPECT_EQ(RandomTensorBytes(DType::kBool, 7, 1).size(), 7u);
  EXPECT_EQ(RandomTensorBytes(DType::kFloat32, 64, 5), RandomTensorBytes(DType::kFloat32, 64, 5));
  EXPECT_NE(RandomTensorBytes(DType::kFloat32, 64, 5), RandomTensorBytes(DType::kFloat32, 64, 6));
  const std::string bytes = RandomTensorBytes(DType::kFloat32, 1000, 3);
  for (size_t i = 0; i < 1000; ++i) {
    float f;
    std::memcpy(&f, bytes.data() + 4 * i, 4);
    ASSERT_GE(f, -1.0f);
    ASSERT_LT(f, 1.0f);
  }
}

TEST(PoissonArrivalsTest, MeanGapIsOneOverRate) {
  PoissonArrivals arrivals(1000, 7);
  double sum = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double gap = arrivals.NextGapSeconds();
    ASSERT_GT(gap, 0);
    sum += gap;
  }
  EXPECT_NEAR(sum / n, 1e-3, 1e-5);
}

TEST(FormatTest, TableAndCsv) {
  EXPECT_EQ(FormatTable({"a", "bb"}, {{"xyz", "1"}, {"q", "22"}}), "a    bb\nxyz   1\nq    22\n");
  EXPECT_EQ(Fixed(1.23456, 2), "1.23");
  EXPECT_EQ(Fixed(std::nan(""), 2), "-");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("plain"), "plain");
}

TEST(PlotTest, NiceTicks) {
  EXPECT_THAT(NiceTicks(0, 10, 5), ElementsAre(0, 2, 4, 6, 8, 10));
  EXPECT_THAT(NiceTicks(0, 620, 6), ElementsAre(0, 200, 400, 600, 800));
  EXPECT_EQ(NiceTicks(0, 0, 5).front(), 0);
}

TEST(PlotTest, SvgHasSeriesAndEscapes) {
  PlotSeries s{"p50 <c>", "#123456", false, {{100, 1, "c=1"}, {200, 2, "c=2"}}};
  const std::string svg = LineChartSvg("t & t", "x", "y", {s});
  EXPECT_THAT(svg, HasSubstr("<svg"));
  EXPECT_THAT(svg, HasSubstr("</svg>"));
  EXPECT_THAT(svg, HasSubstr("<polyline"));
  EXPECT_THAT(svg, HasSubstr("p50 &lt;c&gt;"));
  EXPECT_THAT(svg, HasSubstr("t &amp; t"));
  EXPECT_THAT(svg, Not(HasSubstr("nan")));
}

TEST(ReportTest, FormatsLevels) {
  BenchReport report;
  report.method = "Predict";
  report.model = "m";
  report.target = "localhost:1";
  LevelResult r;
  r.mode = "concurrency";
  r.level = 4;
  r.windows = 3;
  r.stable = true;
  r.ok = 100;
  r.throughput = 50;
  r.rows_per_s = 50;
  r.errors_by_code["UNAVAILABLE"] = 2;
  r.errors = 2;
  report.levels.push_back(r);
  EXPECT_THAT(FormatReport(report, "table"), HasSubstr("UNAVAILABLE:2"));
  EXPECT_THAT(FormatReport(report, "table"), HasSubstr("c=4"));
  EXPECT_THAT(FormatReport(report, "csv"), HasSubstr("level,win,req/s"));
  EXPECT_THAT(FormatReport(report, "json"), HasSubstr("\"throughput\": 50"));
  EXPECT_THAT(PlotReport(report), HasSubstr("c=4"));
}

TEST(ReportTest, SingleV1RunHasNoProtocolColumn) {
  BenchReport report;
  report.method = "Predict";
  report.model = "m";
  LevelResult r;
  r.mode = "concurrency";
  r.level = 1;
  report.levels.push_back(r);
  EXPECT_FALSE(ShowsProtocols(report));
  EXPECT_THAT(FormatReport(report, "csv"), ::testing::StartsWith("level,win,req/s"));
  EXPECT_EQ(ThroughputRatios(report), "");
}

TEST(ReportTest, ProtocolColumnAndThroughputRatios) {
  BenchReport report;
  report.model = "identity";
  report.rows = 1;
  report.protocols = {{"v1", "localhost:1", "Predict", 1100, 4},
                      {"v2", "localhost:1", "ModelInfer", 1150, 4},
                      {"rest", "http://localhost:2/v2/models/identity/infer", "POST infer", 2900, 0}};
  const double throughputs[][3] = {{1000, 980, 500}, {4000, 3900, 0}};
  for (int level = 0; level < 2; ++level) {
    for (int p = 0; p < 3; ++p) {
      LevelResult r;
      r.protocol = report.protocols[p].protocol;
      r.mode = "concurrency";
      r.level = level == 0 ? 1 : 16;
      r.windows = 3;
      r.stable = true;
      r.ok = 10;
      r.throughput = throughputs[level][p];
      r.latency.p50 = p + 1;
      report.levels.push_back(r);
    }
  }
  EXPECT_TRUE(ShowsProtocols(report));
  EXPECT_EQ(ThroughputRatios(report),
            "c=1 throughput v2/v1 0.980, rest/v1 0.500\n"
            "c=16 throughput v2/v1 0.975, rest/v1 0.000\n");
  const std::string table = FormatReport(report, "table");
  EXPECT_THAT(table, HasSubstr("  v2: ModelInfer at localhost:1, 1150 B payload, 4 channel(s)"));
  EXPECT_THAT(table, HasSubstr("  rest: POST infer at http://localhost:2/v2/models/identity/infer, 2900 B payload, "
                               "a kept-alive connection per request in flight"));
  EXPECT_THAT(table, HasSubstr("c=1 throughput v2/v1 0.980"));
  const std::string csv = FormatReport(report, "csv");
  EXPECT_THAT(csv, ::testing::StartsWith("proto,level,win,req/s"));
  EXPECT_THAT(csv, HasSubstr("\nrest,c=16,3,0.0,"));
  const std::string json = FormatReport(report, "json");
  EXPECT_THAT(json, HasSubstr("\"protocol\": \"rest\""));
  EXPECT_THAT(json, HasSubstr("\"method\": \"ModelInfer\""));
  const std::string svg = PlotReport(report);
  EXPECT_THAT(svg, HasSubstr("p50 (concurrency, v2)"));
  EXPECT_THAT(svg, HasSubstr("p99 (concurrency, rest)"));
}

}  // namespace
}  // namespace bench
}  // namespace microbatch
