// A model version's declared inputs and outputs, and the checks every request
// passes before it is queued.
#ifndef MICROBATCH_SERVER_CORE_SIGNATURE_H_
#define MICROBATCH_SERVER_CORE_SIGNATURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tensor/tensor.h"

namespace microbatch {

// One declared tensor. `dims` are the dimensions of one row (the batch
// dimension excluded); -1 marks a variable dimension.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kInvalid;
  std::vector<int64_t> dims;
  // Inputs only: a request may leave it out (see IsAbsent).
  bool optional = false;

  // [-1, dims...]
  std::vector<int64_t> BatchedShape() const;
};

struct ModelSignature {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  // False for a model whose tensors have no batch dimension: a request's
  // tensors then have exactly their `dims`, and inside the server they are
  // one row (a leading dimension of 1 is added and removed at the edges).
  bool has_batch_dimension = true;

  // The shape clients see: BatchedShape(), or `dims` without a batch
  // dimension.
  std::vector<int64_t> ClientShape(const TensorSpec& spec) const;
  // A tensor's shape inside the server (rows first) as clients see it: the
  // leading 1 removed without a batch dimension.
  std::vector<int64_t> ToClientShape(std::vector<int64_t> server_shape) const;
};

// A tensor as it arrived in a request; the memory stays owned by the caller.
struct RequestTensor {
  absl::string_view name;
  DType dtype = DType::kInvalid;
  absl::Span<const int64_t> shape;
  absl::string_view data;
};

// Whether `input` (a validated input) stands for an optional input the
// request left out: no shape, no bytes. The model gets None for it.
inline bool IsAbsent(const TensorView& input) { return input.shape.empty(); }

// Inputs that passed validation, in the order of ModelSignature::inputs.
struct ValidatedInputs {
  std::vector<TensorView> inputs;
  int64_t rows = 0;
  // Equal for two requests exactly when their row shapes are equal, i.e. when
  // they may share a batch.
  std::string shape_key;
};

// Checks `request`, whose tensors have a leading batch dimension, against
// `signature`: every input present once (optional ones at most once; a left
// out one is an IsAbsent view) and no other, dtype, rank, fixed
// dims, non-negative dims without overflow, byte length, same row count on
// every input, 1 <= rows <= max_rows (no upper limit when max_rows <= 0).
// Errors are INVALID_ARGUMENT and name the input with expected and received
// values. For a signature without a batch dimension each row is one call
// (BatchPredict's chunks).
absl::StatusOr<ValidatedInputs> ValidateInputs(const ModelSignature& signature,
                                               absl::Span<const RequestTensor> request,
                                               int64_t max_rows);

// Checks one inference call: ValidateInputs when the signature has a batch
// dimension; otherwise every input's shape must be its dims exactly, and the
// result is one row (each view's shape has a leading 1).
absl::StatusOr<ValidatedInputs> ValidateCall(const ModelSignature& signature,
                                             absl::Span<const RequestTensor> request,
                                             int64_t max_rows);

// Maps requested output names to indices into ModelSignature::outputs; an
// empty request selects every output. Unknown or repeated names are
// INVALID_ARGUMENT.
absl::StatusOr<std::vector<int>> ResolveOutputs(const ModelSignature& signature,
                                                absl::Span<const std::string> requested);

// Bytes the outputs of `selected` (indices into signature.outputs) take for
// `rows` rows, counting outputs whose dims are all fixed; outputs with a -1
// dim count as much as the inputs' bytes per row (`input_bytes` / rows), the
// usual case of an output shaped like its input. Saturates at INT64_MAX.
int64_t EstimateOutputBytes(const ModelSignature& signature, const std::vector<int>& selected,
                            int64_t rows, int64_t input_bytes);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_SIGNATURE_H_
