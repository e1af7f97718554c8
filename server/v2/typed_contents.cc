#include "server/v2/typed_contents.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/core/text.h"

namespace microbatch::v2 {
namespace {

// The name of the field `dtype` takes its values from; null when none.
const char* FieldFor(DType dtype) {
  switch (dtype) {
    case DType::kBool: return "bool_contents";
    case DType::kInt8:
    case DType::kInt16:
    case DType::kInt32: return "int_contents";
    case DType::kInt64: return "int64_contents";
    case DType::kUInt8: return "uint_contents";
    case DType::kFloat32: return "fp32_contents";
    case DType::kFloat64: return "fp64_contents";
    default: return nullptr;
  }
}

// The first non-empty field of `contents`, for messages.
const char* FilledField(const inference::InferTensorContents& c) {
  if (c.bool_contents_size() > 0) return "bool_contents";
  if (c.int_contents_size() > 0) return "int_contents";
  if (c.int64_contents_size() > 0) return "int64_contents";
  if (c.uint_contents_size() > 0) return "uint_contents";
  if (c.uint64_contents_size() > 0) return "uint64_contents";
  if (c.fp32_contents_size() > 0) return "fp32_contents";
  if (c.fp64_contents_size() > 0) return "fp64_contents";
  if (c.bytes_contents_size() > 0) return "bytes_contents";
  return nullptr;
}

template <typename To, typename Field>
absl::Status Narrow(const Field& values, DType dtype, absl::string_view input, std::string* out) {
  out->resize(static_cast<size_t>(values.size()) * sizeof(To));
  char* data = out->data();
  for (int i = 0; i < values.size(); ++i) {
    const auto v = values.Get(i);
    if (v < std::numeric_limits<To>::min() || v > std::numeric_limits<To>::max()) {
      return absl::InvalidArgumentError(absl::StrCat("input '", ClientText(input), "': value ", v,
                                                     " at index ", i, " does not fit ",
                                                     DTypeName(dtype)));
    }
    const To narrowed = static_cast<To>(v);
    std::memcpy(data + static_cast<size_t>(i) * sizeof(To), &narrowed, sizeof(To));
  }
  return absl::OkStatus();
}

template <typename Field>
void Copy(const Field& values, std::string* out) {
  out->assign(reinterpret_cast<const char*>(values.data()),
              static_cast<size_t>(values.size()) * sizeof(values.Get(0)));
}

}  // namespace

int64_t ContentsCount(const inference::InferTensorContents& c) {
  return int64_t{c.bool_contents_size()} + c.int_contents_size() + c.int64_contents_size() +
         c.uint_contents_size() + c.uint64_contents_size() + c.fp32_contents_size() +
         c.fp64_contents_size() + c.bytes_contents_size();
}

absl::Status DecodeContents(const inference::InferTensorContents& contents, DType dtype,
                            absl::string_view input, std::string* out) {
  const char* field = FieldFor(dtype);
  if (field == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", ClientText(input), "': datatype ", DTypeName(dtype),
        " has no typed contents field; send its bytes in raw_input_contents"));
  }
  const char* filled = FilledField(contents);
  if (filled != nullptr && std::strcmp(filled, field) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("input '", ClientText(input), "': datatype ",
                                                   DTypeName(dtype), " takes its values in contents.",
                                                   field, ", got contents.", filled));
  }
  switch (dtype) {
    case DType::kBool: {
      const auto& values = contents.bool_contents();
      out->resize(static_cast<size_t>(values.size()));
      for (int i = 0; i < values.size(); ++i) (*out)[i] = values.Get(i) ? 1 : 0;
      return absl::OkStatus();
    }
    case DType::kInt8: return Narrow<int8_t>(contents.int_contents(), dtype, input, out);
    case DType::kInt16: return Narrow<int16_t>(contents.int_contents(), dtype, input, out);
    case DType::kInt32: Copy(contents.int_contents(), out); return absl::OkStatus();
    case DType::kInt64: Copy(contents.int64_contents(), out); return absl::OkStatus();
    case DType::kUInt8: return Narrow<uint8_t>(contents.uint_contents(), dtype, input, out);
    case DType::kFloat32: Copy(contents.fp32_contents(), out); return absl::OkStatus();
    case DType::kFloat64: Copy(contents.fp64_contents(), out); return absl::OkStatus();
    default: return absl::InternalError("unreachable datatype");
  }
}

}  // namespace microbatch::v2
