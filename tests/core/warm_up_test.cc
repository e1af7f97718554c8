#include "server/core/warm_up.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/fake_instance.h"

namespace microbatch {
namespace {

using ::microbatch::testing::FloatColumn;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// One FP32 zero per row: `rows` rows of shape [1].
std::vector<TensorView> ZeroOutput(int64_t rows) {
  return {FloatColumn(std::make_shared<std::vector<float>>(static_cast<size_t>(rows), 0.0f))};
}

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
    return ZeroOutput(rows);
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

// Records every batch it runs (shape and bytes) and answers one FP32 per row;
// fails a batch whose first byte is 0xFF.
class RecordingInstance : public ModelInstance {
 public:
  absl::StatusOr<std::vector<TensorView>> Run(absl::Span<const TensorView> inputs) override {
    Batch batch;
    for (const TensorView& in : inputs) {
      batch.shapes.push_back(in.shape);
      batch.bytes.push_back(in.data == nullptr ? std::string() : std::string(static_cast<const char*>(in.data), in.byte_size));
    }
    runs.push_back(batch);
    if (!batch.bytes[0].empty() && static_cast<unsigned char>(batch.bytes[0][0]) == 0xFF) {
      return absl::InvalidArgumentError("bad first byte");
    }
    const int64_t rows = inputs[0].shape[0];
    return ZeroOutput(rows);
  }
  struct Batch {
    std::vector<std::vector<int64_t>> shapes;
    std::vector<std::string> bytes;
  };
  std::vector<Batch> runs;
};

std::string Floats(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

TEST(RunWarmUpSamplesTest, EachSampleRunsCountTimesWithItsRowRepeated) {
  ModelSignature signature;
  signature.inputs = {{"x", DType::kFloat32, {-1}}, {"ids", DType::kInt64, {2}}};
  signature.outputs = {{"y", DType::kFloat32, {1}}};
  WarmUpSample data;
  data.name = "from_file";
  data.rows = 3;
  data.count = 2;
  data.inputs = {{{2}, WarmUpSample::Fill::kData, Floats({1.5f, -2.0f})}, {{2}, WarmUpSample::Fill::kZero, ""}};
  WarmUpSample random;
  random.name = "random";
  random.rows = 64;
  random.inputs = {{{5}, WarmUpSample::Fill::kRandom, ""}, {{2}, WarmUpSample::Fill::kRandom, ""}};
  RecordingInstance instance;
  absl::Status status = RunWarmUpSamples(instance, signature, {data, random});
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(instance.runs.size(), 3u);
  for (int run = 0; run < 2; ++run) {
    EXPECT_THAT(instance.runs[run].shapes, ElementsAre(std::vector<int64_t>{3, 2}, std::vector<int64_t>{3, 2}));
    EXPECT_EQ(instance.runs[run].bytes[0], Floats({1.5f, -2.0f, 1.5f, -2.0f, 1.5f, -2.0f}));
    EXPECT_EQ(instance.runs[run].bytes[1], std::string(3 * 2 * sizeof(int64_t), '\0'));
  }
  const RecordingInstance::Batch& r = instance.runs[2];
  EXPECT_THAT(r.shapes, ElementsAre(std::vector<int64_t>{64, 5}, std::vector<int64_t>{64, 2}));
  ASSERT_EQ(r.bytes[0].size(), 64u * 5 * sizeof(float));
  const float* floats = reinterpret_cast<const float*>(r.bytes[0].data());
  bool varied = false;
  for (int i = 0; i < 5; ++i) {  // one row's values, repeated in every row
    EXPECT_GE(floats[i], 0.0f);
    EXPECT_LT(floats[i], 1.0f);
    varied = varied || floats[i] != floats[0];
    EXPECT_EQ(floats[i], floats[5 * 63 + i]);
  }
  EXPECT_TRUE(varied);
  const int64_t* ids = reinterpret_cast<const int64_t*>(r.bytes[1].data());
  for (int i = 0; i < 64 * 2; ++i) {
    EXPECT_GE(ids[i], 0);
    EXPECT_LE(ids[i], 127);
  }
}

TEST(RunWarmUpSamplesTest, AnOptionalInputLeftOutIsAbsent) {
  ModelSignature signature;
  signature.inputs = {{"x", DType::kFloat32, {2}}, {"mask", DType::kFloat32, {2}, /*optional=*/true}};
  signature.outputs = {{"y", DType::kFloat32, {1}}};
  WarmUpSample sample;
  sample.name = "no_mask";
  sample.rows = 2;
  sample.inputs = {{{2}, WarmUpSample::Fill::kZero, ""}, {{}, WarmUpSample::Fill::kAbsent, ""}};
  RecordingInstance instance;
  absl::Status status = RunWarmUpSamples(instance, signature, {sample});
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(instance.runs.size(), 1u);
  EXPECT_THAT(instance.runs[0].shapes, ElementsAre(std::vector<int64_t>{2, 2}, std::vector<int64_t>{}));
  EXPECT_TRUE(instance.runs[0].bytes[1].empty());
}

TEST(RunWarmUpSamplesTest, AFailingSampleFailsNamingItAndStops) {
  ModelSignature signature;
  signature.inputs = {{"x", DType::kUInt8, {1}}};
  signature.outputs = {{"y", DType::kFloat32, {1}}};
  WarmUpSample bad;
  bad.name = "bad_bytes";
  bad.rows = 2;
  bad.count = 5;
  bad.inputs = {{{1}, WarmUpSample::Fill::kData, std::string(1, '\xFF')}};
  RecordingInstance instance;
  absl::Status status = RunWarmUpSamples(instance, signature, {bad, bad});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("warm-up sample 'bad_bytes' (batch size 2) failed: bad first byte"));
  EXPECT_EQ(instance.runs.size(), 1u);

  WarmUpSample short_data = bad;
  short_data.name = "short";
  short_data.inputs = {{{3}, WarmUpSample::Fill::kData, "ab"}};
  status = RunWarmUpSamples(instance, signature, {short_data});
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("warm-up sample 'short': input 'x' needs 3 bytes per row, the data has 2"));
}

TEST(RunWarmUpSamplesTest, AnOutputWithoutTheBatchDimensionFirstFails) {
  ShapeCheckingInstance instance(/*min_length=*/1, /*output_rows=*/1);
  WarmUpSample sample;
  sample.name = "s";
  sample.rows = 4;
  sample.inputs = {{{4}, WarmUpSample::Fill::kZero, ""}};
  absl::Status status = RunWarmUpSamples(instance, Signature({-1}), {sample});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("warm-up sample 's': output 'y' has shape [1,1]"));
}

}  // namespace
}  // namespace microbatch
