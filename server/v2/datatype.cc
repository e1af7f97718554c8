#include "server/v2/datatype.h"

#include "absl/strings/str_cat.h"
#include "server/core/text.h"

namespace microbatch::v2 {

absl::StatusOr<DType> ParseDatatype(absl::string_view datatype, absl::string_view input) {
  if (std::optional<DType> dtype = DTypeFromName(datatype)) return *dtype;
  if (datatype == "UINT16" || datatype == "UINT32" || datatype == "UINT64" || datatype == "BYTES") {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", ClientText(input), "': datatype ", datatype,
        " is not taken by any microbatch model (TorchScript tensors: BOOL, UINT8, INT8, INT16, "
        "INT32, INT64, FP16, BF16, FP32, FP64)"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "input '", ClientText(input), "': unknown datatype '", ClientText(datatype),
      "'; expected one of BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64"));
}

std::string DatatypeName(DType dtype) { return DTypeName(dtype); }

std::string PlatformName(const std::string& config_platform) {
  return config_platform == "torchscript" ? "pytorch_libtorch" : config_platform;
}

}  // namespace microbatch::v2
