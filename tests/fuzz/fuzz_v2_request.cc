// The KServe v2 request decoders: the fuzz input is (1) a REST infer body
// (JSON, optionally followed by binary tensor data, split where the first two
// bytes say) for ParseInferRequest, and (2) a protobuf ModelInferRequest
// whose typed contents go through DecodeContents for every datatype. Decoded
// inputs must hold exactly shape-many elements of their datatype.
#include <string>

#include "server/v2/datatype.h"
#include "server/v2/json_tensors.h"
#include "server/v2/typed_contents.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microbatch;
  const std::string body(reinterpret_cast<const char*>(data), size);
  const size_t split = size >= 2 ? (static_cast<size_t>(data[0]) << 8 | data[1]) % (size + 1) : size;
  for (size_t json_bytes : {size, split}) {
    v2::JsonInferRequest request;
    if (v2::ParseInferRequest(body, json_bytes, &request).ok()) {
      FUZZ_CHECK(request.outputs.size() == request.binary_outputs.size());
      FUZZ_CHECK(request.outputs.size() == request.classification.size());
      for (int64_t count : request.classification) FUZZ_CHECK(count >= 0);
      for (const RequestTensor& input : request.inputs) {
        std::optional<int64_t> elements = ElementCount(input.shape);
        FUZZ_CHECK(elements.has_value());
        FUZZ_CHECK(input.data.size() == static_cast<size_t>(*elements) * DTypeSize(input.dtype));
      }
    }
  }
  inference::ModelInferRequest message;
  if (message.ParseFromString(body)) {
    for (const auto& input : message.inputs()) {
      for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt64,
                          DType::kInt32, DType::kInt16, DType::kInt8, DType::kUInt8, DType::kBool}) {
        std::string out;
        if (v2::DecodeContents(input.contents(), dtype, input.name(), &out).ok()) {
          FUZZ_CHECK(out.size() % DTypeSize(dtype) == 0);
          FUZZ_CHECK(static_cast<int64_t>(out.size() / DTypeSize(dtype)) <=
                     v2::ContentsCount(input.contents()));
        }
      }
      (void)v2::ParseDatatype(input.datatype(), input.name());
    }
  }
  return 0;
}
