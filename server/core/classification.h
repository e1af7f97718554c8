// Triton's classification extension: an output answered as its `count`
// highest-valued classes instead of its raw values. Each row of the output
// (all of a row's elements, flattened) gives `count` strings
// "<value>:<index>[:<label>]", highest first; the answer is a BYTES tensor of
// shape [rows, count] ([count] for a model without a batch dimension).
//
// Thread-safe: pure functions.
#ifndef MICROBATCH_SERVER_CORE_CLASSIFICATION_H_
#define MICROBATCH_SERVER_CORE_CLASSIFICATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tensor/tensor.h"

namespace microbatch {

struct Classification {
  // [rows, count] or, without a batch dimension, [count]; count is the one
  // asked for, or the number of elements in a row when that is smaller.
  std::vector<int64_t> shape;
  // Row-major, highest first within a row.
  std::vector<std::string> classes;
};

// Classifies the output `data` of `server_shape` (rows first, as inside the
// server; `has_batch_dimension` as the model declares) and `dtype`. Values
// compare in their own type; equal values keep the lower index first; NaN
// ranks below every number. <value> is printed like std::to_string does
// (integers exactly, floats with 6 decimals); <label> is labels[index] when
// the model has that many labels. Errors: INVALID_ARGUMENT naming `output`
// for count < 1 and for BOOL outputs (no order).
absl::StatusOr<Classification> Classify(absl::string_view output, DType dtype,
                                        absl::Span<const int64_t> server_shape,
                                        bool has_batch_dimension, absl::string_view data,
                                        int64_t count, absl::Span<const std::string> labels);

// The Open Inference Protocol's binary form of a BYTES tensor: each element
// as a 4-byte little-endian length followed by its bytes.
std::string SerializeBytesTensor(absl::Span<const std::string> elements);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_CLASSIFICATION_H_
