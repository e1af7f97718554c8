#include "client/tensor_json.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "client/csv.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

TEST(TensorJsonTest, OneDimensionShortIsOneRow) {
  auto t = TensorFromJson("x", nlohmann::json::parse("[1, 2, 3]"), DType::kFloat32, {-1, 3});
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(t->shape(), ::testing::ElementsAre(1, 3));
  auto two = TensorFromJson("x", nlohmann::json::parse("[[1, 2, 3], [4, 5, 6]]"), DType::kInt64, {-1, 3});
  ASSERT_TRUE(two.ok());
  EXPECT_THAT(two->shape(), ::testing::ElementsAre(2, 3));
  EXPECT_EQ(two->data().size(), 48u);
}

TEST(TensorJsonTest, RaggedAndNonNumericAreErrors) {
  EXPECT_THAT(std::string(TensorFromJson("x", nlohmann::json::parse("[[1, 2], [3]]"), DType::kFloat32, {-1, 2})
                              .status()
                              .message()),
              ::testing::HasSubstr("input 'x': ragged"));
  EXPECT_FALSE(TensorFromJson("x", nlohmann::json::parse("[\"a\"]"), DType::kFloat32, {-1, 1}).ok());
}

TEST(TensorJsonTest, HalfPrecisionRoundTrips) {
  for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
    char buf[2];
    StoreElement(dtype, 1.5, buf, 0);
    EXPECT_EQ(ElementAsDouble(dtype, buf, 0), 1.5);
    StoreElement(dtype, -0.25, buf, 0);
    EXPECT_EQ(ElementAsDouble(dtype, buf, 0), -0.25);
  }
  char buf[2];
  StoreElement(DType::kFloat16, 65504.0, buf, 0);
  EXPECT_EQ(ElementAsDouble(DType::kFloat16, buf, 0), 65504.0);
}

TEST(TensorJsonTest, ToJsonNestsByShape) {
  auto t = TensorFromJson("x", nlohmann::json::parse("[[true, false]]"), DType::kBool, {-1, 2});
  ASSERT_TRUE(t.ok());
  nlohmann::json j = TensorToJson(*t);
  EXPECT_EQ(j["dtype"], "BOOL");
  EXPECT_EQ(j["data"].dump(), "[[true,false]]");
}

}  // namespace
}  // namespace microbatch

namespace microbatch {
namespace {

// Found by fuzz_csv: a CSV value out of range for an integer dtype (7e3 as
// UINT8) was converted with undefined behavior (UBSan float-cast-overflow).
TEST(TensorJsonTest, OutOfRangeIntegersAreErrorsNeverUndefinedConversions) {
  EXPECT_TRUE(FitsDType(DType::kUInt8, 255.9));
  EXPECT_FALSE(FitsDType(DType::kUInt8, 256));
  EXPECT_FALSE(FitsDType(DType::kUInt8, -1));
  EXPECT_TRUE(FitsDType(DType::kInt8, -128.5));
  EXPECT_FALSE(FitsDType(DType::kInt8, -129));
  EXPECT_FALSE(FitsDType(DType::kInt64, 9.3e18));
  EXPECT_TRUE(FitsDType(DType::kInt64, -9.2e18));
  EXPECT_FALSE(FitsDType(DType::kInt32, std::nan("")));
  EXPECT_TRUE(FitsDType(DType::kFloat32, 1e300));
  EXPECT_TRUE(FitsDType(DType::kBool, std::nan("")));

  // StoreElement saturates instead.
  char buf[8];
  StoreElement(DType::kUInt8, 7e3, buf, 0);
  EXPECT_EQ(static_cast<uint8_t>(buf[0]), 255);
  StoreElement(DType::kInt8, -1e9, buf, 0);
  EXPECT_EQ(static_cast<int8_t>(buf[0]), -128);
  StoreElement(DType::kInt64, 1e300, buf, 0);
  int64_t big;
  std::memcpy(&big, buf, 8);
  EXPECT_EQ(big, INT64_MAX);
  StoreElement(DType::kInt32, std::nan(""), buf, 0);
  int32_t zero;
  std::memcpy(&zero, buf, 4);
  EXPECT_EQ(zero, 0);

  absl::StatusOr<v1::Tensor> json = TensorFromJson("x", nlohmann::json::parse("[1, 300]"), DType::kUInt8, {-1, 2});
  EXPECT_THAT(std::string(json.status().message()), ::testing::HasSubstr("input 'x': value 300 is out of range for UINT8"));
}

TEST(CsvRangeTest, OutOfRangeValueNamesLineAndColumn) {
  const std::string path = ::testing::TempDir() + "/csv_range_test." + std::to_string(::getpid()) + ".csv";
  std::ofstream(path) << "a,b,c\n1,2,3\n4.5,-6,7e3\n";
  auto reader = CsvReader::Open(path);
  ASSERT_TRUE(reader.ok());
  std::string out;
  absl::StatusOr<int64_t> rows = (*reader)->ReadRows(5, DType::kUInt8, &out);
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rows.status().message()), ::testing::HasSubstr(":3: column 2 ('b'): '-6' is out of range for UINT8"));
  EXPECT_THAT(std::string(ValidateCsv(path, DType::kInt8).status().message()),
              ::testing::HasSubstr(":3: column 3 ('c'): '7e3' is out of range for INT8"));
  EXPECT_TRUE(ValidateCsv(path, DType::kFloat32).ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace microbatch
