// Typed tensor contents of the Open Inference Protocol (InferTensorContents)
// to and from the dense little-endian bytes a model takes.
#ifndef MICROBATCH_SERVER_V2_TYPED_CONTENTS_H_
#define MICROBATCH_SERVER_V2_TYPED_CONTENTS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/tensor/tensor.h"
#include "inference/grpc_predict_v2.pb.h"

namespace microbatch::v2 {

// Number of values in all fields of `contents` together.
int64_t ContentsCount(const inference::InferTensorContents& contents);

// Writes the values of the field that `dtype` uses (fp32_contents for FP32,
// int_contents for INT8/16/32, uint_contents for UINT8, bool_contents for
// BOOL, ...) to `out` as dense bytes. INVALID_ARGUMENT naming `input` when
// values sit in another field, a value does not fit the datatype (300 for
// INT8), or the datatype has no typed field (FP16, BF16: raw only).
absl::Status DecodeContents(const inference::InferTensorContents& contents, DType dtype,
                            absl::string_view input, std::string* out);

}  // namespace microbatch::v2

#endif  // MICROBATCH_SERVER_V2_TYPED_CONTENTS_H_
