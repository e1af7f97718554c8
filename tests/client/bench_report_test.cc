// microbatch bench's report of a --rounds run: each result tagged with its
// round, ratios between front ends taken within a round, and their median.
#include "client/bench_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace microbatch::bench {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

LevelResult Level(const std::string& protocol, int64_t round, double concurrency, double throughput) {
  LevelResult r;
  r.protocol = protocol;
  r.round = round;
  r.mode = "concurrency";
  r.level = concurrency;
  r.windows = 1;
  r.stable = true;
  r.throughput = throughput;
  r.rows_per_s = throughput;
  r.ok = 100;
  return r;
}

// v1 and v2 at c=16 over three rounds, the machine's speed drifting between
// them: v2/v1 is 0.5, 0.9 and 1.0 in rounds 1-3, but 0.95 if round 3's v2
// were (wrongly) divided by round 1's v1.
BenchReport ThreeRounds() {
  BenchReport report;
  report.model = "identity";
  report.protocols = {{"v1", "t", "Predict", 1000, 4}, {"v2", "t", "ModelInfer", 1000, 4}};
  report.rounds = 3;
  report.levels = {Level("v1", 1, 16, 20000), Level("v2", 1, 16, 10000),  //
                   Level("v1", 2, 16, 10000), Level("v2", 2, 16, 9000),   //
                   Level("v1", 3, 16, 19000), Level("v2", 3, 16, 19000)};
  return report;
}

TEST(BenchReportRoundsTest, RatiosAreTakenWithinEachRoundAndTheirMedianPrinted) {
  const std::string ratios = ThroughputRatios(ThreeRounds());
  EXPECT_THAT(ratios, HasSubstr("round 1 c=16 throughput v2/v1 0.500\n"));
  EXPECT_THAT(ratios, HasSubstr("round 2 c=16 throughput v2/v1 0.900\n"));
  EXPECT_THAT(ratios, HasSubstr("round 3 c=16 throughput v2/v1 1.000\n"));
  EXPECT_THAT(ratios, HasSubstr("median of 3 rounds: c=16 throughput v2/v1 0.900\n"));
}

TEST(BenchReportRoundsTest, EvenRoundCountTakesTheMeanOfTheMiddleTwo) {
  BenchReport report = ThreeRounds();
  report.rounds = 2;
  report.levels.resize(4);  // rounds 1 and 2: 0.5 and 0.9
  EXPECT_THAT(ThroughputRatios(report), HasSubstr("median of 2 rounds: c=16 throughput v2/v1 0.700\n"));
}

TEST(BenchReportRoundsTest, OneRoundPrintsAsBefore) {
  BenchReport report = ThreeRounds();
  report.rounds = 1;
  report.levels.resize(2);
  EXPECT_EQ(ThroughputRatios(report), "c=16 throughput v2/v1 0.500\n");
  const std::string table = FormatReport(report, "table");
  EXPECT_THAT(table, Not(HasSubstr("round")));
  EXPECT_EQ(nlohmann::json::parse(FormatReport(report, "json"))["levels"][0]["round"], 1);
}

TEST(BenchReportRoundsTest, JsonAndTableCarryTheRound) {
  const BenchReport report = ThreeRounds();
  const nlohmann::json json = nlohmann::json::parse(FormatReport(report, "json"));
  EXPECT_EQ(json["rounds"], 3);
  ASSERT_EQ(json["levels"].size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(json["levels"][i]["round"], static_cast<int>(i / 2 + 1)) << i;
  const std::string table = FormatReport(report, "table");
  EXPECT_THAT(table, HasSubstr("round"));
  EXPECT_THAT(table, HasSubstr("median of 3 rounds"));
  const std::string csv = FormatReport(report, "csv");
  EXPECT_THAT(csv, HasSubstr("round,proto,level"));
  EXPECT_THAT(csv, HasSubstr("\n3,v2,c=16,"));
}

TEST(BenchReportRoundsTest, PlotDrawsTheFirstRoundOnly) {
  BenchReport report = ThreeRounds();
  const std::string all = PlotReport(report);
  report.levels.resize(2);
  report.rounds = 1;
  EXPECT_EQ(PlotReport(report), all);
}

}  // namespace
}  // namespace microbatch::bench
