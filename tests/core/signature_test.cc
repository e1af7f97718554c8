#include "server/core/signature.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

using ::testing::HasSubstr;

ModelSignature TwoInputs() {
  ModelSignature sig;
  sig.inputs = {{"x", DType::kFloat32, {16}}, {"ids", DType::kInt64, {-1}}};
  sig.outputs = {{"y", DType::kFloat32, {4}}, {"z", DType::kFloat32, {1}}};
  return sig;
}

struct Input {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string data;
  RequestTensor view() const { return RequestTensor{name, dtype, shape, data}; }
};

Input Make(std::string name, DType dtype, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return Input{std::move(name), dtype, shape, std::string(n * DTypeSize(dtype), '\0')};
}

absl::StatusOr<ValidatedInputs> Validate(const std::vector<Input>& inputs, int64_t max_rows = 8) {
  std::vector<RequestTensor> views;
  for (const auto& in : inputs) views.push_back(in.view());
  return ValidateInputs(TwoInputs(), views, max_rows);
}

void ExpectError(const std::vector<Input>& inputs, const std::string& message) {
  auto result = Validate(inputs);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(message));
}

TEST(ValidateInputsTest, AcceptsAndReordersToSignatureOrder) {
  auto result = Validate({Make("ids", DType::kInt64, {3, 5}), Make("x", DType::kFloat32, {3, 16})});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rows, 3);
  EXPECT_EQ(result->inputs[0].shape, (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(result->inputs[1].dtype, DType::kInt64);
  EXPECT_EQ(result->shape_key, "[16];[5];");
}

TEST(ValidateInputsTest, ShapeKeyDiffersOnVariableDims) {
  auto a = Validate({Make("x", DType::kFloat32, {1, 16}), Make("ids", DType::kInt64, {1, 5})});
  auto b = Validate({Make("x", DType::kFloat32, {2, 16}), Make("ids", DType::kInt64, {2, 6})});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->shape_key, b->shape_key);
}

TEST(ValidateInputsTest, RejectsBadInputsWithActionableMessages) {
  const Input x = Make("x", DType::kFloat32, {4, 16});
  const Input ids = Make("ids", DType::kInt64, {4, 2});
  ExpectError({x}, "missing input 'ids'; the model's inputs are 'x', 'ids'");
  ExpectError({x, ids, Make("w", DType::kFloat32, {4, 1})}, "unknown input 'w'");
  ExpectError({x, ids, x}, "input 'x' is given more than once");
  ExpectError({Make("x", DType::kFloat64, {4, 16}), ids}, "input 'x': expected dtype FP32, got FP64");
  ExpectError({Make("x", DType::kFloat32, {4, 15}), ids},
              "input 'x': expected shape [-1,16], got [4,15]");
  ExpectError({Make("x", DType::kFloat32, {64}), ids}, "expected shape [-1,16], got [64]");
  ExpectError({Make("x", DType::kFloat32, {0, 16}), Make("ids", DType::kInt64, {0, 2})},
              "zero rows");
  ExpectError({x, Make("ids", DType::kInt64, {3, 2})}, "input 'ids' has 3 rows but input 'x' has 4");
  ExpectError({Make("x", DType::kFloat32, {9, 16}), Make("ids", DType::kInt64, {9, 2})},
              "9 rows, more than the model's max_batch_size of 8");
  Input short_data = x;
  short_data.data.resize(10);
  ExpectError({short_data, ids}, "input 'x': shape [4,16] of FP32 needs 256 bytes, got 10");
  Input negative{"ids", DType::kInt64, {4, -2}, ""};
  ExpectError({x, negative}, "input 'ids': shape [4,-2] has a negative dimension");
  Input huge{"ids", DType::kInt64, {4, int64_t{1} << 62}, ""};
  ExpectError({x, huge}, "has too many elements");
}

// A model without a batch dimension takes tensors of exactly its dims; inside
// the server each request is one row.
TEST(ValidateCallTest, WithoutABatchDimensionTheShapeIsTheDeclaredOne) {
  ModelSignature sig = TwoInputs();
  sig.has_batch_dimension = false;
  auto call = [&](const std::vector<Input>& inputs) {
    std::vector<RequestTensor> views;
    for (const auto& in : inputs) views.push_back(in.view());
    return ValidateCall(sig, views, /*max_rows=*/1);
  };
  auto ok = call({Make("x", DType::kFloat32, {16}), Make("ids", DType::kInt64, {7})});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->rows, 1);
  EXPECT_EQ(ok->inputs[0].shape, (std::vector<int64_t>{1, 16}));
  EXPECT_EQ(ok->inputs[1].shape, (std::vector<int64_t>{1, 7}));
  EXPECT_EQ(ok->shape_key, "[16];[7];");
  // Variable dims differ per request; an empty sequence is a valid shape.
  auto empty = call({Make("x", DType::kFloat32, {16}), Make("ids", DType::kInt64, {0})});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->inputs[1].shape, (std::vector<int64_t>{1, 0}));

  auto batched = call({Make("x", DType::kFloat32, {2, 16}), Make("ids", DType::kInt64, {7})});
  ASSERT_FALSE(batched.ok());
  EXPECT_EQ(batched.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(batched.status().message()), HasSubstr("input 'x': expected shape [16], got [2,16]"));
  auto wrong = call({Make("x", DType::kFloat32, {15}), Make("ids", DType::kInt64, {7})});
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("input 'x': expected shape [16], got [15]"));

  // ValidateInputs (BatchPredict's chunks) keeps a leading row dimension.
  const Input x = Make("x", DType::kFloat32, {3, 16});
  const Input ids = Make("ids", DType::kInt64, {3, 7});
  auto rows = ValidateInputs(sig, std::vector<RequestTensor>{x.view(), ids.view()}, 0);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->rows, 3);
  EXPECT_EQ(rows->inputs[0].shape, (std::vector<int64_t>{3, 16}));

  EXPECT_EQ(sig.ClientShape(sig.inputs[1]), (std::vector<int64_t>{-1}));
  EXPECT_EQ(sig.ToClientShape({1, 4}), (std::vector<int64_t>{4}));
  sig.has_batch_dimension = true;
  EXPECT_EQ(sig.ClientShape(sig.inputs[1]), (std::vector<int64_t>{-1, -1}));
  EXPECT_EQ(sig.ToClientShape({1, 4}), (std::vector<int64_t>{1, 4}));
}

TEST(ValidateInputsTest, AnOptionalInputMayBeLeftOutAndIsThenAbsent) {
  ModelSignature sig = TwoInputs();
  sig.inputs[1].optional = true;
  auto validate = [&](const std::vector<Input>& inputs) {
    std::vector<RequestTensor> views;
    for (const auto& in : inputs) views.push_back(in.view());
    return ValidateInputs(sig, views, 8);
  };
  absl::StatusOr<ValidatedInputs> without = validate({Make("x", DType::kFloat32, {2, 16})});
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ(without->rows, 2);
  EXPECT_FALSE(IsAbsent(without->inputs[0]));
  EXPECT_TRUE(IsAbsent(without->inputs[1]));
  EXPECT_EQ(without->inputs[1].dtype, DType::kInt64);
  EXPECT_EQ(without->inputs[1].byte_size, 0u);
  absl::StatusOr<ValidatedInputs> with =
      validate({Make("x", DType::kFloat32, {2, 16}), Make("ids", DType::kInt64, {2, 1})});
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_FALSE(IsAbsent(with->inputs[1]));
  EXPECT_NE(with->shape_key, without->shape_key);  // never batched together
  // A required input is still required; an optional one given is checked.
  absl::StatusOr<ValidatedInputs> missing = validate({Make("ids", DType::kInt64, {2, 1})});
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("missing input 'x'"));
  absl::StatusOr<ValidatedInputs> bad =
      validate({Make("x", DType::kFloat32, {2, 16}), Make("ids", DType::kInt64, {3, 1})});
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("input 'ids' has 3 rows but input 'x' has 2"));
  sig.inputs[0].optional = true;
  absl::StatusOr<ValidatedInputs> none = validate({});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("the request gives none of the model's inputs"));
}

TEST(ResolveOutputsTest, SelectsNamedOutputs) {
  auto all = ResolveOutputs(TwoInputs(), {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<int>{0, 1}));
  auto z = ResolveOutputs(TwoInputs(), {"z"});
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(*z, (std::vector<int>{1}));
  auto unknown = ResolveOutputs(TwoInputs(), {"q"});
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("unknown output 'q'; the model's outputs are 'y', 'z'"));
  EXPECT_FALSE(ResolveOutputs(TwoInputs(), {"y", "y"}).ok());
}

TEST(ElementCountTest, DetectsOverflowAndNegatives) {
  EXPECT_EQ(ElementCount({2, 3}), 6);
  EXPECT_EQ(ElementCount({0, 5}), 0);
  EXPECT_FALSE(ElementCount({-1, 3}).has_value());
  EXPECT_FALSE(ElementCount({int64_t{1} << 40, int64_t{1} << 40}).has_value());
}

}  // namespace
}  // namespace microbatch
