// Request validation and tensor decoding: a microbatch.v1.PredictRequest
// parsed from the fuzz input goes through ToRequestTensors (convert.h), then
// ValidateInputs and ResolveOutputs (signature.h) against several model
// signatures, and, when valid, through the row split a BatchPredict chunk
// gets (batch_stream.cc). Checks that every accepted view lies inside the
// request's bytes and matches the signature.
#include <cstdint>
#include <vector>

#include "microbatch/v1/inference.pb.h"
#include "server/core/signature.h"
#include "server/service/convert.h"
#include "tests/fuzz/fuzz_util.h"

namespace microbatch {
namespace {

std::vector<ModelSignature> Signatures() {
  std::vector<ModelSignature> all;
  // mlp: one fixed-width input, two outputs.
  all.push_back({{{"x", DType::kFloat32, {16}}},
                 {{"logits", DType::kFloat32, {4}}, {"probs", DType::kFloat32, {4}}}});
  // pair: two variable-width inputs.
  all.push_back({{{"a", DType::kFloat32, {-1}}, {"b", DType::kFloat32, {-1}}},
                 {{"sum", DType::kFloat32, {-1}}}});
  // Mixed dtypes and ranks.
  all.push_back({{{"ids", DType::kInt64, {2, -1}}, {"mask", DType::kBool, {-1, 3}},
                  {"h", DType::kFloat16, {}}},
                 {{"y", DType::kInt8, {1}}}});
  return all;
}

void CheckValidated(const ModelSignature& signature, const v1::PredictRequest& request,
                    const ValidatedInputs& validated, int64_t max_rows) {
  FUZZ_CHECK(validated.rows >= 1);
  FUZZ_CHECK(max_rows <= 0 || validated.rows <= max_rows);
  FUZZ_CHECK(validated.inputs.size() == signature.inputs.size());
  for (size_t i = 0; i < signature.inputs.size(); ++i) {
    const TensorView& view = validated.inputs[i];
    const TensorSpec& spec = signature.inputs[i];
    FUZZ_CHECK(view.dtype == spec.dtype);
    FUZZ_CHECK(view.shape.size() == spec.dims.size() + 1);
    FUZZ_CHECK(view.rows() == validated.rows);
    std::optional<int64_t> elements = ElementCount(view.shape);
    FUZZ_CHECK(elements.has_value());
    FUZZ_CHECK(view.byte_size == static_cast<uint64_t>(*elements) * DTypeSize(view.dtype));
    // The view points into one of the request's tensors.
    bool inside = false;
    for (const v1::Tensor& t : request.inputs()) {
      inside |= view.data == t.data().data() && view.byte_size == t.data().size();
    }
    FUZZ_CHECK(inside);
    // The BatchPredict split: pieces of at most 8 rows tile the bytes.
    const size_t row_bytes = view.row_bytes();
    FUZZ_CHECK(row_bytes * static_cast<size_t>(view.rows()) == view.byte_size);
    size_t covered = 0;
    for (int64_t first = 0; first < validated.rows; first += 8) {
      const int64_t rows = std::min<int64_t>(8, validated.rows - first);
      FUZZ_CHECK(first * row_bytes + rows * row_bytes <= view.byte_size);
      covered += rows * row_bytes;
    }
    FUZZ_CHECK(covered == view.byte_size);
  }
}

}  // namespace
}  // namespace microbatch

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microbatch;
  static const std::vector<ModelSignature> signatures = Signatures();
  v1::PredictRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<std::vector<RequestTensor>> tensors = ToRequestTensors(request.inputs());
  if (!tensors.ok()) {
    FUZZ_CHECK(tensors.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(static_cast<int>(tensors->size()) == request.inputs_size());
  const int64_t max_rows = request.version() % 64;  // <= 0: no limit
  for (const ModelSignature& signature : signatures) {
    absl::StatusOr<ValidatedInputs> validated = ValidateInputs(signature, *tensors, max_rows);
    if (validated.ok()) {
      CheckValidated(signature, request, *validated, max_rows);
    } else {
      FUZZ_CHECK(validated.status().code() == absl::StatusCode::kInvalidArgument);
      FUZZ_CHECK(!validated.status().message().empty());
    }
    std::vector<std::string> outputs(request.outputs().begin(), request.outputs().end());
    absl::StatusOr<std::vector<int>> selected = ResolveOutputs(signature, outputs);
    if (selected.ok()) {
      FUZZ_CHECK(outputs.empty() ? selected->size() == signature.outputs.size()
                                 : selected->size() == outputs.size());
      for (int index : *selected) {
        FUZZ_CHECK(index >= 0 && index < static_cast<int>(signature.outputs.size()));
      }
    } else {
      FUZZ_CHECK(selected.status().code() == absl::StatusCode::kInvalidArgument);
    }
  }
  return 0;
}
