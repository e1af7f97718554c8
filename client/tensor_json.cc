#include "client/tensor_json.h"

#include <cmath>
#include <limits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/tensor/float16.h"

namespace microbatch {
namespace {

absl::Status InferShape(const nlohmann::json& value, size_t depth, std::vector<int64_t>* shape,
                        const std::string& name) {
  if (!value.is_array()) {
    if (depth != shape->size()) {
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "': ragged JSON array"));
    }
    if (!value.is_number() && !value.is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "': expected numbers, got ", value.dump()));
    }
    return absl::OkStatus();
  }
  if (depth == shape->size()) shape->push_back(static_cast<int64_t>(value.size()));
  if ((*shape)[depth] != static_cast<int64_t>(value.size())) {
    return absl::InvalidArgumentError(absl::StrCat("input '", name, "': ragged JSON array"));
  }
  for (const auto& element : value) {
    if (absl::Status s = InferShape(element, depth + 1, shape, name); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void Flatten(const nlohmann::json& value, std::vector<double>* out) {
  if (value.is_array()) {
    for (const auto& element : value) Flatten(element, out);
  } else {
    out->push_back(value.is_boolean() ? (value.get<bool>() ? 1.0 : 0.0) : value.get<double>());
  }
}

// Arrays nested by `shape` (from dimension `dim` on) whose leaves are
// leaf(0), leaf(1), ... in row-major order; `index` counts the leaves taken.
template <typename Leaf>
nlohmann::json Nest(const std::vector<int64_t>& shape, size_t dim, size_t* index, const Leaf& leaf) {
  nlohmann::json array = nlohmann::json::array();
  for (int64_t i = 0; i < shape[dim]; ++i) {
    array.push_back(dim + 1 == shape.size() ? leaf((*index)++) : Nest(shape, dim + 1, index, leaf));
  }
  return array;
}

}  // namespace

double ElementAsDouble(DType dtype, const char* data, size_t index) {
  switch (dtype) {
    case DType::kFloat32: return LoadElement<float>(data, index);
    case DType::kFloat64: return LoadElement<double>(data, index);
    case DType::kFloat16: return HalfToFloat(LoadElement<uint16_t>(data, index));
    case DType::kBFloat16: return BFloat16ToFloat(LoadElement<uint16_t>(data, index));
    case DType::kInt64: return static_cast<double>(LoadElement<int64_t>(data, index));
    case DType::kInt32: return LoadElement<int32_t>(data, index);
    case DType::kInt16: return LoadElement<int16_t>(data, index);
    case DType::kInt8: return LoadElement<int8_t>(data, index);
    case DType::kUInt8: return LoadElement<uint8_t>(data, index);
    case DType::kBool: return LoadElement<uint8_t>(data, index) ? 1 : 0;
    case DType::kInvalid: break;
  }
  return 0;
}

namespace {

// Integer dtypes: the range [lo, hi) that truncated values must fall in.
bool IntegerRange(DType dtype, double* lo, double* hi) {
  switch (dtype) {
    case DType::kInt64: *lo = -std::ldexp(1.0, 63); *hi = std::ldexp(1.0, 63); return true;
    case DType::kInt32: *lo = -std::ldexp(1.0, 31); *hi = std::ldexp(1.0, 31); return true;
    case DType::kInt16: *lo = -32768.0; *hi = 32768.0; return true;
    case DType::kInt8: *lo = -128.0; *hi = 128.0; return true;
    case DType::kUInt8: *lo = 0.0; *hi = 256.0; return true;
    default: return false;
  }
}

// `value` truncated and clamped into `dtype`'s range (NaN: 0), so that the
// conversion to the integer type is defined.
template <class T>
T Saturate(DType dtype, double value) {
  double lo, hi;
  if (!IntegerRange(dtype, &lo, &hi) || std::isnan(value)) return 0;
  const double t = std::trunc(value);
  if (t < lo) return std::numeric_limits<T>::min();
  if (t >= hi) return std::numeric_limits<T>::max();
  return static_cast<T>(t);
}

}  // namespace

bool FitsDType(DType dtype, double value) {
  double lo, hi;
  if (!IntegerRange(dtype, &lo, &hi)) return true;
  if (std::isnan(value)) return false;
  const double t = std::trunc(value);
  return t >= lo && t < hi;
}

void StoreElement(DType dtype, double value, char* data, size_t index) {
  switch (dtype) {
    case DType::kFloat32: return StoreElement<float>(static_cast<float>(value), data, index);
    case DType::kFloat64: return StoreElement<double>(value, data, index);
    case DType::kFloat16: return StoreElement<uint16_t>(FloatToHalf(static_cast<float>(value)), data, index);
    case DType::kBFloat16: {
      const float f = static_cast<float>(value);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      bits += 0x7fff + ((bits >> 16) & 1);  // round to nearest even
      return StoreElement<uint16_t>(static_cast<uint16_t>(bits >> 16), data, index);
    }
    case DType::kInt64: return StoreElement<int64_t>(Saturate<int64_t>(dtype, value), data, index);
    case DType::kInt32: return StoreElement<int32_t>(Saturate<int32_t>(dtype, value), data, index);
    case DType::kInt16: return StoreElement<int16_t>(Saturate<int16_t>(dtype, value), data, index);
    case DType::kInt8: return StoreElement<int8_t>(Saturate<int8_t>(dtype, value), data, index);
    case DType::kUInt8: return StoreElement<uint8_t>(Saturate<uint8_t>(dtype, value), data, index);
    case DType::kBool: return StoreElement<uint8_t>(value != 0 ? 1 : 0, data, index);
    case DType::kInvalid: break;
  }
}

absl::StatusOr<v1::Tensor> TensorFromJson(const std::string& name, const nlohmann::json& value,
                                          DType dtype, const std::vector<int64_t>& model_shape) {
  std::vector<int64_t> shape;
  if (absl::Status s = InferShape(value, 0, &shape, name); !s.ok()) return s;
  if (!value.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("input '", name, "': expected a JSON array"));
  }
  if (shape.size() + 1 == model_shape.size()) shape.insert(shape.begin(), 1);
  std::vector<double> flat;
  Flatten(value, &flat);
  v1::Tensor tensor;
  tensor.set_name(name);
  tensor.set_dtype(static_cast<v1::DataType>(dtype));
  for (int64_t d : shape) tensor.add_shape(d);
  std::string data(flat.size() * DTypeSize(dtype), '\0');
  for (size_t i = 0; i < flat.size(); ++i) {
    if (!FitsDType(dtype, flat[i])) {
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "': value ", flat[i],
                                                     " is out of range for ", DTypeName(dtype)));
    }
    StoreElement(dtype, flat[i], data.data(), i);
  }
  tensor.set_data(std::move(data));
  return tensor;
}

nlohmann::json TensorToJson(const v1::Tensor& tensor) {
  const DType dtype = static_cast<DType>(tensor.dtype());
  std::vector<int64_t> shape(tensor.shape().begin(), tensor.shape().end());
  nlohmann::json out;
  out["dtype"] = DTypeName(dtype);
  out["shape"] = shape;
  size_t index = 0;
  std::optional<int64_t> count = ElementCount(shape);
  if (shape.empty() || !count || tensor.data().size() != *count * DTypeSize(dtype)) {
    out["data"] = nullptr;
    return out;
  }
  const char* data = tensor.data().data();
  out["data"] = Nest(shape, 0, &index, [dtype, data](size_t i) -> nlohmann::json {
    if (dtype == DType::kInt64) return LoadElement<int64_t>(data, i);  // exactly: not every int64 is a double
    const double v = ElementAsDouble(dtype, data, i);
    if (dtype == DType::kBool) return v != 0;
    if (dtype == DType::kFloat32 || dtype == DType::kFloat64 || dtype == DType::kFloat16 ||
        dtype == DType::kBFloat16) {
      return v;
    }
    return static_cast<int64_t>(v);
  });
  return out;
}

nlohmann::json StringsToJson(const std::vector<int64_t>& shape, const std::vector<std::string>& elements) {
  nlohmann::json out = {{"dtype", "BYTES"}, {"shape", shape}};
  size_t index = 0;
  out["data"] = shape.empty() ? nlohmann::json(elements.at(0))
                              : Nest(shape, 0, &index, [&elements](size_t i) { return nlohmann::json(elements[i]); });
  return out;
}

}  // namespace microbatch
