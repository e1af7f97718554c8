// Datatype strings of the Open Inference Protocol (KServe v2) and the
// element types microbatch models take.
#ifndef MICROBATCH_SERVER_V2_DATATYPE_H_
#define MICROBATCH_SERVER_V2_DATATYPE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tensor/tensor.h"

namespace microbatch::v2 {

// "FP32" -> kFloat32, ... for BOOL, UINT8, INT8, INT16, INT32, INT64, FP16,
// BF16, FP32, FP64. INVALID_ARGUMENT naming `input` for datatypes of the
// protocol that no microbatch model takes (UINT16, UINT32, UINT64, BYTES) and
// for strings that are not datatypes at all.
absl::StatusOr<DType> ParseDatatype(absl::string_view datatype, absl::string_view input);

// The protocol's name of `dtype` ("FP32", ...).
std::string DatatypeName(DType dtype);

// What the protocol calls a TorchScript model's platform: "pytorch_libtorch".
std::string PlatformName(const std::string& config_platform);

}  // namespace microbatch::v2

#endif  // MICROBATCH_SERVER_V2_DATATYPE_H_
