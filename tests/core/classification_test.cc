#include "server/core/classification.h"

#include <cstring>
#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/tensor/float16.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

TEST(ClassificationTest, EachRowGivesItsHighestClassesFirstWithLabels) {
  const std::vector<float> rows = {0.5f, 2.0f, -1.0f, 0.25f,  //
                                   3.0f, 1.0f, 2.5f, 0.0f};
  const std::vector<std::string> labels = {"cat", "dog", "bird", "fish"};
  absl::StatusOr<Classification> c =
      Classify("probs", DType::kFloat32, {2, 4}, true, Bytes(rows), 3, labels);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->shape, ElementsAre(2, 3));
  EXPECT_THAT(c->classes, ElementsAre("2.000000:1:dog", "0.500000:0:cat", "0.250000:3:fish",
                                      "3.000000:0:cat", "2.500000:2:bird", "1.000000:1:dog"));
}

TEST(ClassificationTest, ElementsBeyondTheLabelsAreUnlabelled) {
  const std::vector<float> row = {1, 4, 3, 2};
  const std::vector<std::string> labels = {"a", "b"};
  absl::StatusOr<Classification> c = Classify("y", DType::kFloat32, {1, 4}, true, Bytes(row), 4, labels);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->classes, ElementsAre("4.000000:1:b", "3.000000:2", "2.000000:3", "1.000000:0:a"));
}

TEST(ClassificationTest, ACountBeyondTheRowIsTheRowAndNoBatchDimensionDropsTheRows) {
  const std::vector<double> row = {0.1, 0.7, 0.2};
  absl::StatusOr<Classification> c = Classify("y", DType::kFloat64, {1, 3}, false, Bytes(row), 10, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->shape, ElementsAre(3));
  EXPECT_THAT(c->classes, ElementsAre("0.700000:1", "0.200000:2", "0.100000:0"));
}

TEST(ClassificationTest, TiesKeepTheLowerIndexFirstAndNanRanksLast) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> row = {nan, 1.0f, 5.0f, 1.0f, nan, 5.0f};
  absl::StatusOr<Classification> c = Classify("y", DType::kFloat32, {1, 6}, true, Bytes(row), 6, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->classes, ElementsAre("5.000000:2", "5.000000:5", "1.000000:1", "1.000000:3", "nan:0", "nan:4"));
}

TEST(ClassificationTest, IntegersCompareAndPrintExactly) {
  const std::vector<int64_t> row = {5, -3, 9007199254740993, 9007199254740992};
  absl::StatusOr<Classification> c = Classify("y", DType::kInt64, {1, 4}, true, Bytes(row), 3, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->classes, ElementsAre("9007199254740993:2", "9007199254740992:3", "5:0"));

  const std::vector<uint8_t> u8 = {200, 7, 255};
  c = Classify("y", DType::kUInt8, {1, 3}, true, Bytes(u8), 2, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->classes, ElementsAre("255:2", "200:0"));

  const std::vector<int8_t> i8 = {-128, 3, -1};
  c = Classify("y", DType::kInt8, {1, 3}, true, Bytes(i8), 3, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->classes, ElementsAre("3:1", "-1:2", "-128:0"));
}

TEST(ClassificationTest, HalfPrecisionValuesCompareAsTheirFloats) {
  const std::vector<uint16_t> half = {FloatToHalf(0.5f), FloatToHalf(-2.0f), FloatToHalf(1.5f)};
  absl::StatusOr<Classification> c = Classify("y", DType::kFloat16, {1, 3}, true, Bytes(half), 2, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->classes, ElementsAre("1.500000:2", "0.500000:0"));
  const std::vector<uint16_t> bf16 = {FloatToBFloat16(-1.0f), FloatToBFloat16(3.0f)};
  c = Classify("y", DType::kBFloat16, {1, 2}, true, Bytes(bf16), 1, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->classes, ElementsAre("3.000000:1"));
}

TEST(ClassificationTest, BoolOutputsAndCountsBelowOneAreRefusedNamingTheOutput) {
  const std::vector<uint8_t> flags = {1, 0};
  absl::StatusOr<Classification> c = Classify("flags", DType::kBool, {1, 2}, true, Bytes(flags), 1, {});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("output 'flags': a BOOL output cannot be classified"));
  const std::vector<float> row = {1, 2};
  c = Classify("y", DType::kFloat32, {1, 2}, true, Bytes(row), 0, {});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("count must be >= 1, got 0"));
}

// Against a plain reference (a stable sort of each row, highest first) on
// random rows with many ties.
TEST(ClassificationTest, MatchesAStableSortOfEachRow) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    const int64_t rows = 1 + static_cast<int64_t>(rng() % 4);
    const size_t width = 1 + rng() % 12;
    const int64_t count = 1 + static_cast<int64_t>(rng() % 14);
    std::vector<int32_t> values(static_cast<size_t>(rows) * width);
    for (int32_t& v : values) v = static_cast<int32_t>(rng() % 5) - 2;
    std::vector<std::string> labels(rng() % (width + 1));
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = "l" + std::to_string(i);

    std::vector<std::string> expected;
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<size_t> order(width);
      for (size_t i = 0; i < width; ++i) order[i] = i;
      const int32_t* row = values.data() + r * static_cast<int64_t>(width);
      std::stable_sort(order.begin(), order.end(), [row](size_t a, size_t b) { return row[a] > row[b]; });
      for (size_t j = 0; j < std::min<size_t>(static_cast<size_t>(count), width); ++j) {
        std::string entry = std::to_string(row[order[j]]) + ":" + std::to_string(order[j]);
        if (order[j] < labels.size()) entry += ":" + labels[order[j]];
        expected.push_back(entry);
      }
    }
    absl::StatusOr<Classification> c = Classify("y", DType::kInt32, {rows, static_cast<int64_t>(width)}, true,
                                                Bytes(values), count, labels);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_THAT(c->shape, ElementsAre(rows, std::min<int64_t>(count, static_cast<int64_t>(width))));
    ASSERT_EQ(c->classes, expected) << "round " << round;
  }
}

TEST(ClassificationTest, BytesTensorsAreLengthPrefixedLittleEndian) {
  const std::string long_element(300, 'x');
  const std::string bytes = SerializeBytesTensor({"ab", "", long_element});
  ASSERT_EQ(bytes.size(), 4u + 2 + 4 + 0 + 4 + 300);
  EXPECT_EQ(bytes.substr(0, 6), std::string("\x02\x00\x00\x00" "ab", 6));
  EXPECT_EQ(bytes.substr(6, 4), std::string("\x00\x00\x00\x00", 4));
  EXPECT_EQ(bytes.substr(10, 4), std::string("\x2c\x01\x00\x00", 4));  // 300
  EXPECT_EQ(bytes.substr(14), long_element);
}

}  // namespace
}  // namespace microbatch
