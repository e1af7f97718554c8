#include "server/core/warm_up.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Runs only when the input's last dim is at least `min_length` (as a 3x3
// convolution needs 3); answers one FP32 per row, `output_rows` rows (the
// batch's when negative). Records the input shapes it was given.
class ShapeCheckingInstance : public ModelInstance {
 public:
  explicit ShapeCheckingInstance(int64_t min_length, int64_t output_rows = -1)
      : min_length_(min_length), output_rows_(output_rows) {}

  absl::StatusOr<std::vector<TensorView>> Run(absl::Span<const TensorView> inputs) override {
    seen.push_back(inputs[0].shape);
    if (inputs[0].shape.back() < min_length_) {
      return absl::InternalError(absl::StrCat("input too short: ", inputs[0].shape.back()));
    }
    const int64_t rows = output_rows_ < 0 ? inputs[0].shape[0] : output_rows_;
    auto owner = std::make_shared<std::vector<float>>(static_cast<size_t>(rows), 0.0f);
    TensorView out;
    out.dtype = DType::kFloat32;
    out.shape = {rows, 1};
    out.data = owner->data();
    out.byte_size = owner->size() * sizeof(float);
    out.owner = owner;
    return std::vector<TensorView>{out};
  }

  std::vector<std::vector<int64_t>> seen;

 private:
  const int64_t min_length_;
  const int64_t output_rows_;
};

ModelSignature Signature(std::vector<int64_t> dims) {
  ModelSignature signature;
  signature.inputs = {{"x", DType::kFloat32, std::move(dims)}};
  signature.outputs = {{"y", DType::kFloat32, {1}}};
  return signature;
}

TEST(WarmUpTest, RunsEveryBatchSizeWithTheDeclaredShape) {
  ShapeCheckingInstance instance(/*min_length=*/1);
  std::string skipped;
  ASSERT_TRUE(WarmUp(instance, Signature({3, 8}), {1, 4}, &skipped).ok());
  EXPECT_TRUE(skipped.empty());
  EXPECT_THAT(instance.seen, ElementsAre(std::vector<int64_t>{1, 3, 8}, std::vector<int64_t>{4, 3, 8}));
}

TEST(WarmUpTest, AFixedShapeThatFailsFailsTheWarmUp) {
  ShapeCheckingInstance instance(/*min_length=*/3);
  std::string skipped;
  absl::Status status = WarmUp(instance, Signature({2}), {1}, &skipped);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), HasSubstr("warm-up with batch size 1 failed: input too short: 2"));
  EXPECT_EQ(instance.seen.size(), 1u);  // no guess to retry: the shape is the model's
}

// Regression: variable dims were filled with 1 only, so a model whose
// forward needs more (an image model with dims [3, -1, -1] and a 3x3
// convolution) failed its warm-up and was never served.
TEST(WarmUpTest, VariableDimsAreTriedAt1Then64) {
  ShapeCheckingInstance instance(/*min_length=*/3);
  std::string skipped;
  ASSERT_TRUE(WarmUp(instance, Signature({3, -1}), {2}, &skipped).ok());
  EXPECT_TRUE(skipped.empty()) << skipped;
  EXPECT_THAT(instance.seen, ElementsAre(std::vector<int64_t>{2, 3, 1}, std::vector<int64_t>{2, 3, 64}));
}

TEST(WarmUpTest, WhenNoGuessedShapeRunsTheWarmUpIsSkippedNotFailed) {
  ShapeCheckingInstance instance(/*min_length=*/100);
  std::string skipped;
  ASSERT_TRUE(WarmUp(instance, Signature({-1}), {1, 8}, &skipped).ok());
  EXPECT_THAT(skipped, HasSubstr("warm-up with batch size 1 failed: input too short: 64"));
  EXPECT_THAT(skipped, HasSubstr("variable dims tried at 1 and 64"));
  EXPECT_EQ(instance.seen.size(), 2u);  // batch size 8 is not tried after that
}

TEST(WarmUpTest, AnOutputWithoutTheBatchDimensionFirstFails) {
  ShapeCheckingInstance instance(/*min_length=*/1, /*output_rows=*/1);
  absl::Status status = WarmUp(instance, Signature({4}), {1, 4});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("warm-up with batch size 4: output 'y' has shape [1,1]"));
}

}  // namespace
}  // namespace microbatch
