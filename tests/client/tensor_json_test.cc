#include "client/tensor_json.h"

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
