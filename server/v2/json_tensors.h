// The JSON of KServe v2 REST infer requests and responses (RapidJSON),
// with Triton's binary tensor data extension.
#ifndef MICROBATCH_SERVER_V2_JSON_TENSORS_H_
#define MICROBATCH_SERVER_V2_JSON_TENSORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/core/batcher.h"
#include "server/core/signature.h"

namespace microbatch::v2 {

// A decoded infer request. Movable; `inputs` point into the strings and
// vectors held here and into the binary part of the body it was parsed from,
// which must outlive it.
struct JsonInferRequest {
  std::string id;
  bool has_id = false;
  std::vector<RequestTensor> inputs;
  // Requested outputs (empty: all) and whether each goes back as binary.
  std::vector<std::string> outputs;
  std::vector<bool> binary_outputs;
  // Per requested output: the classification extension's class count, 0
  // when the output goes back as its values.
  std::vector<int64_t> classification;
  // Request parameter binary_data_output: outputs not named go back binary.
  bool binary_by_default = false;
  // Request parameter timeout (Triton's): microseconds the request may take;
  // 0 when not given (no timeout).
  int64_t timeout_us = 0;

  // Storage behind `inputs`; sized once, never moved element-wise.
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::string> data;
};

// Parses `body`: its first `json_bytes` bytes are the JSON (all of it when
// json_bytes is body.size()), the rest the binary tensor data. Numbers are
// checked against the datatype (integers in range, BOOL true/false, the
// element count equal to the shape's). Errors are INVALID_ARGUMENT: malformed
// JSON gives the byte offset of the error; others name the input.
absl::Status ParseInferRequest(absl::string_view body, size_t json_bytes, JsonInferRequest* out);

// One output as it goes back.
struct JsonOutput {
  absl::string_view name;
  DType dtype = DType::kInvalid;
  std::vector<int64_t> shape;
  absl::string_view data;  // dense little-endian bytes
  bool binary = false;
  // A BYTES output (the classification extension's): its elements. When
  // set, `dtype` is ignored, and `data` must hold the elements serialized
  // (SerializeBytesTensor) if `binary`.
  const std::vector<std::string>* strings = nullptr;
};

// The response: JSON, followed by the binary outputs' bytes in order.
// `json_bytes` is the length of the JSON part (for the
// Inference-Header-Content-Length header when any output is binary). Floats
// are written in their shortest exact form; NaN and infinities as NaN,
// Infinity, -Infinity.
struct EncodedResponse {
  std::string body;
  size_t json_bytes = 0;
  bool has_binary = false;
};
EncodedResponse EncodeInferResponse(absl::string_view model, int64_t version, const std::string* id,
                                    absl::Span<const JsonOutput> outputs);

// {"error":"..."}; bytes of `message` that are not UTF-8 become U+FFFD.
std::string JsonErrorBody(absl::string_view message);

}  // namespace microbatch::v2

#endif  // MICROBATCH_SERVER_V2_JSON_TENSORS_H_
