#include "client/open_inference.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/tensor_json.h"

namespace microbatch {
namespace {

std::vector<int64_t> ShapeOf(const v1::Tensor& tensor) { return {tensor.shape().begin(), tensor.shape().end()}; }

bool IsFloat(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat64 || dtype == DType::kFloat16 ||
         dtype == DType::kBFloat16;
}

// The smallest and largest value of an integer dtype.
void IntegerBounds(DType dtype, int64_t* lo, int64_t* hi) {
  switch (dtype) {
    case DType::kInt32: *lo = INT32_MIN; *hi = INT32_MAX; return;
    case DType::kInt16: *lo = INT16_MIN; *hi = INT16_MAX; return;
    case DType::kInt8: *lo = INT8_MIN; *hi = INT8_MAX; return;
    case DType::kUInt8: *lo = 0; *hi = UINT8_MAX; return;
    case DType::kBool: *lo = 0; *hi = 1; return;
    default: *lo = INT64_MIN; *hi = INT64_MAX; return;
  }
}

// Stores integer `v` (known to be in the dtype's bounds) as element `index`.
void PutInteger(DType dtype, int64_t v, char* data, size_t index) {
  switch (dtype) {
    case DType::kInt64: return StoreElement<int64_t>(v, data, index);
    case DType::kInt32: return StoreElement<int32_t>(static_cast<int32_t>(v), data, index);
    case DType::kInt16: return StoreElement<int16_t>(static_cast<int16_t>(v), data, index);
    case DType::kInt8: return StoreElement<int8_t>(static_cast<int8_t>(v), data, index);
    case DType::kUInt8:
    case DType::kBool: return StoreElement<uint8_t>(static_cast<uint8_t>(v), data, index);
    default: return;
  }
}

// Element `index` of an integer (or BOOL) buffer, exactly.
int64_t LoadInteger(DType dtype, const char* data, size_t index) {
  switch (dtype) {
    case DType::kInt64: return LoadElement<int64_t>(data, index);
    case DType::kInt32: return LoadElement<int32_t>(data, index);
    case DType::kInt16: return LoadElement<int16_t>(data, index);
    case DType::kInt8: return LoadElement<int8_t>(data, index);
    case DType::kUInt8:
    case DType::kBool: return LoadElement<uint8_t>(data, index);
    default: return 0;
  }
}

// A binary floating-point format narrower than double.
struct FloatFormat {
  int precision;      // significand bits, the implicit one included
  int min_exponent;   // exponent of the smallest normal number
  double max_finite;
};

const FloatFormat* FormatOf(DType dtype) {
  static constexpr FloatFormat kFp32{24, -126, 3.4028234663852886e38};
  static constexpr FloatFormat kFp16{11, -14, 65504.0};
  static constexpr FloatFormat kBf16{8, -126, 3.3895313892515355e38};
  switch (dtype) {
    case DType::kFloat32: return &kFp32;
    case DType::kFloat16: return &kFp16;
    case DType::kBFloat16: return &kBf16;
    default: return nullptr;
  }
}

// `d` rounded once, to nearest even, to `format` (infinity beyond its
// range): straight from the double, not through FP32, so FP16 and BF16 are
// not rounded twice.
double RoundTo(const FloatFormat& format, double d) {
  if (!std::isfinite(d) || d == 0) return d;
  int exponent;
  std::frexp(d, &exponent);  // d = m * 2^exponent, 0.5 <= |m| < 1
  const int e = std::max(exponent - 1, format.min_exponent);
  const double quantum = std::ldexp(1.0, e - (format.precision - 1));
  const double r = std::nearbyint(d / quantum) * quantum;  // exact scaling by a power of two
  if (std::fabs(r) > format.max_finite) return std::copysign(std::numeric_limits<double>::infinity(), d);
  return r;
}

// The shortest "%.*g" text of `value` (a value of `format`) that rounds back
// to it.
std::string ShortestText(const FloatFormat& format, double value) {
  char text[40];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(text, sizeof(text), "%.*g", digits, value);
    if (RoundTo(format, std::strtod(text, nullptr)) == value) break;
  }
  return text;
}

// The value of `format` next to `r` (one of its values), upwards or down.
double Neighbour(const FloatFormat& format, double r, bool up) {
  const double smallest = std::ldexp(1.0, format.min_exponent - (format.precision - 1));
  if (r == 0) return up ? smallest : -smallest;
  const bool away_from_zero = up == (r > 0);
  const double magnitude = std::fabs(r);
  int exponent;
  std::frexp(magnitude, &exponent);  // magnitude in [2^(exponent-1), 2^exponent)
  const int e = std::max(exponent - 1, format.min_exponent);
  const double quantum = std::ldexp(1.0, e - (format.precision - 1));
  double next;
  if (away_from_zero) {
    next = magnitude + quantum;
  } else {
    // Just below a normal power of two the spacing is half as wide.
    const bool power_of_two = magnitude == std::ldexp(1.0, exponent - 1);
    next = power_of_two && exponent - 1 > format.min_exponent ? magnitude - quantum / 2 : magnitude - quantum;
  }
  return std::copysign(next, r);
}

// The value of `format` that a JSON number parsed as the double `d` stands
// for. A server writes either a value's exact decimal (then d is the value)
// or its shortest decimal, which rounds to the value directly but may round
// to a double that lies exactly halfway between it and a neighbour; then the
// neighbour whose own shortest text parses to `d` is not the one meant.
double NarrowFloat(const FloatFormat& format, double d) {
  const double r = RoundTo(format, d);
  if (r == d || !std::isfinite(r)) return r;
  // d is exactly between r and its neighbour towards d?
  const double other = Neighbour(format, r, d > r);
  if ((r + other) / 2 != d) return r;
  if (std::strtod(ShortestText(format, r).c_str(), nullptr) == d) return r;
  if (std::fabs(other) <= format.max_finite && std::strtod(ShortestText(format, other).c_str(), nullptr) == d) {
    return other;
  }
  return r;
}

// Stores a floating-point value; false when a finite value is beyond the
// dtype's range.
bool PutFloat(DType dtype, double v, char* data, size_t index) {
  const FloatFormat* format = FormatOf(dtype);
  if (format != nullptr) {
    const double narrowed = NarrowFloat(*format, v);
    if (std::isfinite(v) && !std::isfinite(narrowed)) return false;
    v = narrowed;  // exact in the dtype: StoreElement does not round again
  }
  StoreElement(dtype, v, data, index);
  return true;
}

// ---------------------------------------------------------------------------
// Typed contents.

template <typename Repeated>
absl::Status CopyIntegers(DType dtype, const Repeated& values, const std::string& name, std::string* data) {
  int64_t lo, hi;
  IntegerBounds(dtype, &lo, &hi);
  for (int i = 0; i < values.size(); ++i) {
    const auto v = values.Get(i);
    // Compare in the value's own signedness: uint64 values above INT64_MAX
    // never fit.
    bool fits;
    if constexpr (std::is_unsigned_v<decltype(v)>) {
      fits = v <= static_cast<uint64_t>(hi);
    } else {
      fits = v >= lo && v <= hi;
    }
    if (!fits) {
      return absl::InternalError(
          absl::StrCat("output '", name, "': value ", v, " does not fit ", DTypeName(dtype)));
    }
    PutInteger(dtype, static_cast<int64_t>(v), data->data(), static_cast<size_t>(i));
  }
  return absl::OkStatus();
}

// `data` (already sized) from the typed contents of `dtype`.
absl::Status FromContents(DType dtype, const inference::InferTensorContents& contents, int64_t count,
                          const std::string& name, std::string* data) {
  auto check_count = [&](int n, const char* field) -> absl::Status {
    if (n == count) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("output '", name, "': ", field, " has ", n, " values, the shape needs ",
                                            count));
  };
  switch (dtype) {
    case DType::kFloat32: {
      if (absl::Status s = check_count(contents.fp32_contents_size(), "fp32_contents"); !s.ok()) return s;
      if (count > 0) std::memcpy(data->data(), contents.fp32_contents().data(), count * sizeof(float));
      return absl::OkStatus();
    }
    case DType::kFloat64: {
      if (absl::Status s = check_count(contents.fp64_contents_size(), "fp64_contents"); !s.ok()) return s;
      if (count > 0) std::memcpy(data->data(), contents.fp64_contents().data(), count * sizeof(double));
      return absl::OkStatus();
    }
    case DType::kInt64: {
      if (absl::Status s = check_count(contents.int64_contents_size(), "int64_contents"); !s.ok()) return s;
      if (count > 0) std::memcpy(data->data(), contents.int64_contents().data(), count * sizeof(int64_t));
      return absl::OkStatus();
    }
    case DType::kInt32:
    case DType::kInt16:
    case DType::kInt8: {
      if (absl::Status s = check_count(contents.int_contents_size(), "int_contents"); !s.ok()) return s;
      return CopyIntegers(dtype, contents.int_contents(), name, data);
    }
    case DType::kUInt8: {
      if (absl::Status s = check_count(contents.uint_contents_size(), "uint_contents"); !s.ok()) return s;
      return CopyIntegers(dtype, contents.uint_contents(), name, data);
    }
    case DType::kBool: {
      if (absl::Status s = check_count(contents.bool_contents_size(), "bool_contents"); !s.ok()) return s;
      for (int i = 0; i < contents.bool_contents_size(); ++i) {
        StoreElement<uint8_t>(contents.bool_contents(i) ? 1 : 0, data->data(), static_cast<size_t>(i));
      }
      return absl::OkStatus();
    }
    case DType::kFloat16:
    case DType::kBFloat16:
      return absl::InternalError(absl::StrCat("output '", name, "': ", DTypeName(dtype),
                                              " has no typed contents; the server sent no raw_output_contents"));
    case DType::kInvalid: break;
  }
  return absl::InternalError(absl::StrCat("output '", name, "': unsupported datatype"));
}

// dtype and element count of a declared output; INTERNAL naming it otherwise.
absl::Status OutputHeader(const std::string& name, const std::string& datatype, const std::vector<int64_t>& shape,
                          DType* dtype, int64_t* count) {
  std::optional<DType> parsed = DTypeFromName(datatype);
  if (!parsed) {
    return absl::InternalError(absl::StrCat("output '", name, "': unsupported datatype '", datatype, "'"));
  }
  std::optional<int64_t> n = ElementCount(shape);
  if (!n || *n > static_cast<int64_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InternalError(absl::StrCat("output '", name, "': bad shape ", ShapeToString(shape)));
  }
  *dtype = *parsed;
  *count = *n;
  return absl::OkStatus();
}

v1::Tensor MakeTensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  v1::Tensor tensor;
  tensor.set_name(name);
  tensor.set_dtype(static_cast<v1::DataType>(dtype));
  for (int64_t d : shape) tensor.add_shape(d);
  return tensor;
}

// ---------------------------------------------------------------------------
// JSON.

std::string PercentEncode(absl::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : segment) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

template <typename T>
void AppendShortest(std::string* out, T v) {
  if (std::isnan(v)) {
    out->append("NaN");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "Infinity" : "-Infinity");
  } else if (v == 0 && std::signbit(v)) {
    out->append("-0.0");  // "-0" reads as the integer 0 in many parsers
  } else {
    char text[64];
    const auto result = std::to_chars(text, text + sizeof(text), v);
    out->append(text, static_cast<size_t>(result.ptr - text));
  }
}

// Appends element `index` of a tensor as the JSON text that parses back to
// the same bits: integers as integers, BOOL as true/false, FP64 as the
// shortest text of the double, FP32 (and FP16, BF16, whose values are FP32
// values) as the shortest text of the float, non-finite values as the bare
// tokens NaN, Infinity and -Infinity.
void AppendElement(std::string* out, DType dtype, const char* data, size_t index) {
  switch (dtype) {
    case DType::kBool: out->append(LoadElement<uint8_t>(data, index) != 0 ? "true" : "false"); return;
    case DType::kFloat64: return AppendShortest(out, LoadElement<double>(data, index));
    case DType::kFloat32:
    case DType::kFloat16:
    case DType::kBFloat16: return AppendShortest(out, static_cast<float>(ElementAsDouble(dtype, data, index)));
    default: absl::StrAppend(out, LoadInteger(dtype, data, index)); return;
  }
}

// `body` made digestible for a strict JSON parser that keeps no number
// text: outside strings, the bare tokens NaN, Infinity and -Infinity (which
// Python's json, RapidJSON's kParseNanAndInfFlag and microbatch-server
// write) become the strings "NaN", "Infinity" and "-Infinity", and the
// number -0 becomes -0.0 (as an integer its sign would be lost).
std::string NormalizeJsonNumbers(absl::string_view body) {
  std::string out;
  out.reserve(body.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < body.size()) {
        out.push_back(body[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (absl::string_view token : {"NaN", "Infinity", "-Infinity"}) {
      if (body.substr(i, token.size()) == token) {
        absl::StrAppend(&out, "\"", token, "\"");
        i += token.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced && c == '-' && body.substr(i, 2) == "-0" &&
        (i + 2 == body.size() || !(absl::ascii_isdigit(body[i + 2]) || body[i + 2] == '.' ||
                                   body[i + 2] == 'e' || body[i + 2] == 'E'))) {
      out.append("-0.0");
      ++i;
      replaced = true;
    }
    if (!replaced) out.push_back(c);
  }
  return out;
}

void FlattenJson(const nlohmann::json& value, std::vector<const nlohmann::json*>* out) {
  if (value.is_array()) {
    for (const auto& element : value) FlattenJson(element, out);
  } else {
    out->push_back(&value);
  }
}

// Stores JSON `value` as element `index` of `dtype`; false when it is not a
// value of that dtype.
bool StoreJson(DType dtype, const nlohmann::json& value, char* data, size_t index) {
  if (IsFloat(dtype)) {
    if (value.is_number()) return PutFloat(dtype, value.get<double>(), data, index);
    if (value.is_string()) {
      const std::string& s = value.get_ref<const std::string&>();
      const double inf = std::numeric_limits<double>::infinity();
      if (s == "NaN" || s == "nan") return PutFloat(dtype, std::numeric_limits<double>::quiet_NaN(), data, index);
      if (s == "Infinity" || s == "inf") return PutFloat(dtype, inf, data, index);
      if (s == "-Infinity" || s == "-inf") return PutFloat(dtype, -inf, data, index);
    }
    return false;
  }
  if (dtype == DType::kBool && value.is_boolean()) {
    StoreElement<uint8_t>(value.get<bool>() ? 1 : 0, data, index);
    return true;
  }
  int64_t lo, hi;
  IntegerBounds(dtype, &lo, &hi);
  int64_t v;
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) return false;
    v = static_cast<int64_t>(u);
  } else if (value.is_number_integer()) {
    v = value.get<int64_t>();
  } else if (value.is_number_float()) {
    // 3.0 for an integer: only when integral and exactly in range.
    const double d = value.get<double>();
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || std::trunc(d) != d) return false;
    v = static_cast<int64_t>(d);
  } else {
    return false;
  }
  if (v < lo || v > hi) return false;
  PutInteger(dtype, v, data, index);
  return true;
}

absl::StatusOr<nlohmann::json> ParseJsonBody(absl::string_view body, const char* what) {
  nlohmann::json json;
  if (body.find("NaN") != absl::string_view::npos || body.find("Infinity") != absl::string_view::npos ||
      body.find("-0") != absl::string_view::npos) {
    const std::string quoted = NormalizeJsonNumbers(body);
    json = nlohmann::json::parse(quoted, nullptr, /*allow_exceptions=*/false);
  } else {
    json = nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  }
  if (json.is_discarded() || !json.is_object()) {
    return absl::InternalError(absl::StrCat(what, ": the answer is not a JSON object"));
  }
  return json;
}

// A string member of `object`, "" when absent or not a string.
std::string StringMember(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// A shape member: an array of integers >= 0 (or -1 when `allow_variable`).
bool ShapeMember(const nlohmann::json& object, bool allow_variable, std::vector<int64_t>* shape) {
  auto it = object.find("shape");
  if (it == object.end() || !it->is_array()) return false;
  shape->clear();
  for (const auto& d : *it) {
    if (!d.is_number_integer()) return false;
    const int64_t v = d.get<int64_t>();
    if (v < (allow_variable ? -1 : 0)) return false;
    shape->push_back(v);
  }
  return true;
}

// A classification asks for named outputs.
absl::Status CheckClassification(const InferRequestSpec& spec) {
  if (spec.classification < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("classification: the class count must be >= 0, got ", spec.classification));
  }
  if (spec.classification > 0 && spec.outputs.empty()) {
    return absl::InvalidArgumentError("classification: name the outputs to classify");
  }
  return absl::OkStatus();
}

// The elements of a BYTES tensor in the binary form (a 4-byte
// little-endian length before each).
absl::StatusOr<std::vector<std::string>> SplitBytesElements(absl::string_view raw, const std::string& name) {
  std::vector<std::string> elements;
  size_t at = 0;
  while (at < raw.size()) {
    if (raw.size() - at < 4) {
      return absl::InternalError(absl::StrCat("output '", name, "': a BYTES element's length is cut off"));
    }
    const uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(raw[at])) |
                       static_cast<uint32_t>(static_cast<unsigned char>(raw[at + 1])) << 8 |
                       static_cast<uint32_t>(static_cast<unsigned char>(raw[at + 2])) << 16 |
                       static_cast<uint32_t>(static_cast<unsigned char>(raw[at + 3])) << 24;
    at += 4;
    if (raw.size() - at < n) {
      return absl::InternalError(absl::StrCat("output '", name, "': a BYTES element runs past the data"));
    }
    elements.emplace_back(raw.substr(at, n));
    at += n;
  }
  return elements;
}

// `elements` as the BYTES output `name` of `shape`, checked against it.
absl::StatusOr<BytesOutput> MakeBytesOutput(const std::string& name, std::vector<int64_t> shape,
                                            std::vector<std::string> elements) {
  std::optional<int64_t> count = ElementCount(shape);
  if (!count || *count != static_cast<int64_t>(elements.size())) {
    return absl::InternalError(absl::StrCat("output '", name, "': ", elements.size(),
                                            " BYTES elements for shape ", ShapeToString(shape)));
  }
  return BytesOutput{name, std::move(shape), std::move(elements)};
}

// A BYTES output of a REST answer: its "data" strings.
absl::StatusOr<BytesOutput> RestBytesOutput(const nlohmann::json& output) {
  const std::string name = StringMember(output, "name");
  std::vector<int64_t> shape;
  if (!ShapeMember(output, /*allow_variable=*/false, &shape)) {
    return absl::InternalError(absl::StrCat("output '", name, "': missing or bad shape"));
  }
  auto data = output.find("data");
  if (data == output.end()) return absl::InternalError(absl::StrCat("output '", name, "': no data"));
  std::vector<const nlohmann::json*> flat;
  FlattenJson(*data, &flat);
  std::vector<std::string> elements;
  for (const nlohmann::json* element : flat) {
    if (!element->is_string()) {
      return absl::InternalError(absl::StrCat("output '", name, "': a BYTES element is not a string"));
    }
    elements.push_back(element->get<std::string>());
  }
  return MakeBytesOutput(name, std::move(shape), std::move(elements));
}

absl::StatusOr<v1::Tensor> RestOutput(const nlohmann::json& output, size_t position) {
  if (!output.is_object()) return absl::InternalError(absl::StrCat("outputs[", position, "] is not an object"));
  const std::string name = StringMember(output, "name");
  if (name.empty()) return absl::InternalError(absl::StrCat("outputs[", position, "] has no name"));
  std::vector<int64_t> shape;
  if (!ShapeMember(output, /*allow_variable=*/false, &shape)) {
    return absl::InternalError(absl::StrCat("output '", name, "': missing or bad shape"));
  }
  DType dtype;
  int64_t count;
  if (absl::Status s = OutputHeader(name, StringMember(output, "datatype"), shape, &dtype, &count); !s.ok()) {
    return s;
  }
  auto data = output.find("data");
  if (data == output.end()) return absl::InternalError(absl::StrCat("output '", name, "': no data"));
  std::vector<const nlohmann::json*> flat;
  FlattenJson(*data, &flat);
  if (static_cast<int64_t>(flat.size()) != count) {
    return absl::InternalError(
        absl::StrCat("output '", name, "': data has ", flat.size(), " values, the shape needs ", count));
  }
  v1::Tensor tensor = MakeTensor(name, dtype, shape);
  std::string bytes(static_cast<size_t>(count) * DTypeSize(dtype), '\0');
  for (size_t i = 0; i < flat.size(); ++i) {
    if (!StoreJson(dtype, *flat[i], bytes.data(), i)) {
      return absl::InternalError(
          absl::StrCat("output '", name, "': data[", i, "] = ", flat[i]->dump(), " is not a ", DTypeName(dtype)));
    }
  }
  tensor.set_data(std::move(bytes));
  return tensor;
}

std::vector<DeclaredTensor> RestTensorSpecs(const nlohmann::json& object, const char* key) {
  std::vector<DeclaredTensor> specs;
  auto it = object.find(key);
  if (it == object.end() || !it->is_array()) return specs;
  for (const auto& t : *it) {
    if (!t.is_object()) continue;
    DeclaredTensor spec;
    spec.name = StringMember(t, "name");
    spec.datatype = StringMember(t, "datatype");
    spec.dtype = DTypeFromName(spec.datatype).value_or(DType::kInvalid);
    ShapeMember(t, /*allow_variable=*/true, &spec.shape);
    specs.push_back(std::move(spec));
  }
  return specs;
}

}  // namespace

std::string ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kV1: return "v1";
    case Protocol::kV2: return "v2";
    case Protocol::kRest: return "rest";
  }
  return "?";
}

absl::StatusOr<Protocol> ParseProtocol(absl::string_view name) {
  for (Protocol p : {Protocol::kV1, Protocol::kV2, Protocol::kRest}) {
    if (name == ProtocolName(p)) return p;
  }
  return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a protocol (v1, v2 or rest)"));
}

absl::StatusOr<std::vector<Protocol>> ParseProtocolList(absl::string_view list) {
  std::vector<Protocol> protocols;
  for (absl::string_view name : absl::StrSplit(list, ',')) {
    absl::StatusOr<Protocol> p = ParseProtocol(absl::StripAsciiWhitespace(name));
    if (!p.ok()) return p.status();
    if (std::find(protocols.begin(), protocols.end(), *p) != protocols.end()) {
      return absl::InvalidArgumentError(absl::StrCat("protocol '", name, "' is listed twice"));
    }
    protocols.push_back(*p);
  }
  return protocols;
}

std::string V2Version(int64_t version) { return version == 0 ? "" : absl::StrCat(version); }

absl::Status CheckTensor(const v1::Tensor& tensor) {
  const DType dtype = static_cast<DType>(tensor.dtype());
  if (DTypeSize(dtype) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("input '", tensor.name(), "': invalid dtype"));
  }
  const std::vector<int64_t> shape = ShapeOf(tensor);
  std::optional<int64_t> count = ElementCount(shape);
  if (!count) {
    return absl::InvalidArgumentError(absl::StrCat("input '", tensor.name(), "': bad shape ", ShapeToString(shape)));
  }
  if (tensor.data().size() != static_cast<uint64_t>(*count) * DTypeSize(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("input '", tensor.name(), "': ", tensor.data().size(),
                                                   " bytes of data for shape ", ShapeToString(shape), " of ",
                                                   DTypeName(dtype)));
  }
  return absl::OkStatus();
}

absl::StatusOr<inference::ModelInferRequest> BuildModelInferRequest(const InferRequestSpec& spec) {
  inference::ModelInferRequest request;
  request.set_model_name(spec.model);
  request.set_model_version(spec.version);
  request.set_id(spec.id);
  for (const v1::Tensor& tensor : spec.inputs) {
    if (absl::Status s = CheckTensor(tensor); !s.ok()) return s;
    inference::ModelInferRequest::InferInputTensor* input = request.add_inputs();
    input->set_name(tensor.name());
    input->set_datatype(DTypeName(static_cast<DType>(tensor.dtype())));
    *input->mutable_shape() = tensor.shape();
    request.add_raw_input_contents(tensor.data());
  }
  if (absl::Status s = CheckClassification(spec); !s.ok()) return s;
  for (const std::string& output : spec.outputs) {
    auto* requested = request.add_outputs();
    requested->set_name(output);
    if (spec.classification > 0) {
      (*requested->mutable_parameters())["classification"].set_int64_param(spec.classification);
    }
  }
  return request;
}

absl::StatusOr<InferResult> ParseModelInferResponse(const inference::ModelInferResponse& response) {
  InferResult result;
  result.model = response.model_name();
  result.version = response.model_version();
  result.id = response.id();
  const bool raw = response.raw_output_contents_size() > 0;
  if (raw && response.raw_output_contents_size() != response.outputs_size()) {
    return absl::InternalError(absl::StrCat("the response has ", response.outputs_size(), " outputs but ",
                                            response.raw_output_contents_size(), " raw_output_contents"));
  }
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    const std::vector<int64_t> shape(output.shape().begin(), output.shape().end());
    if (output.datatype() == "BYTES") {
      absl::StatusOr<std::vector<std::string>> elements =
          raw ? SplitBytesElements(response.raw_output_contents(i), output.name())
              : std::vector<std::string>(output.contents().bytes_contents().begin(),
                                         output.contents().bytes_contents().end());
      if (!elements.ok()) return elements.status();
      absl::StatusOr<BytesOutput> bytes = MakeBytesOutput(output.name(), shape, *std::move(elements));
      if (!bytes.ok()) return bytes.status();
      result.bytes_outputs.push_back(*std::move(bytes));
      continue;
    }
    DType dtype;
    int64_t count;
    if (absl::Status s = OutputHeader(output.name(), output.datatype(), shape, &dtype, &count); !s.ok()) return s;
    const size_t bytes = static_cast<size_t>(count) * DTypeSize(dtype);
    v1::Tensor tensor = MakeTensor(output.name(), dtype, shape);
    if (raw) {
      const std::string& contents = response.raw_output_contents(i);
      if (contents.size() != bytes) {
        return absl::InternalError(absl::StrCat("output '", output.name(), "': ", contents.size(),
                                                " bytes of raw_output_contents, the shape needs ", bytes));
      }
      tensor.set_data(contents);
    } else {
      std::string data(bytes, '\0');
      if (absl::Status s = FromContents(dtype, output.contents(), count, output.name(), &data); !s.ok()) return s;
      tensor.set_data(std::move(data));
    }
    result.outputs.push_back(std::move(tensor));
  }
  return result;
}

ModelInfo SignatureFromV1(const v1::ModelMetadata& metadata) {
  ModelInfo signature;
  signature.name = metadata.name();
  for (int64_t v : metadata.versions()) signature.versions.push_back(absl::StrCat(v));
  auto specs = [](const auto& tensors) {
    std::vector<DeclaredTensor> out;
    for (const auto& t : tensors) {
      const DType dtype = static_cast<DType>(t.dtype());
      out.push_back({t.name(), DTypeName(dtype), DTypeSize(dtype) > 0 ? dtype : DType::kInvalid,
                     {t.shape().begin(), t.shape().end()}});
    }
    return out;
  };
  signature.inputs = specs(metadata.inputs());
  signature.outputs = specs(metadata.outputs());
  return signature;
}

std::optional<int64_t> ParseRestMaxBatchSize(long http_status, absl::string_view body) {
  if (http_status < 200 || http_status >= 300) return std::nullopt;
  const nlohmann::json config = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (!config.is_object() || !config.contains("max_batch_size")) return std::nullopt;
  const nlohmann::json& value = config["max_batch_size"];
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

ModelInfo SignatureFromV2(const inference::ModelMetadataResponse& metadata) {
  ModelInfo signature;
  signature.name = metadata.name();
  signature.versions.assign(metadata.versions().begin(), metadata.versions().end());
  auto specs = [](const auto& tensors) {
    std::vector<DeclaredTensor> out;
    for (const auto& t : tensors) {
      out.push_back({t.name(), t.datatype(), DTypeFromName(t.datatype()).value_or(DType::kInvalid),
                     {t.shape().begin(), t.shape().end()}});
    }
    return out;
  };
  signature.inputs = specs(metadata.inputs());
  signature.outputs = specs(metadata.outputs());
  return signature;
}

std::string RestModelPath(absl::string_view model, absl::string_view version) {
  std::string path = absl::StrCat("/v2/models/", PercentEncode(model));
  if (!version.empty()) absl::StrAppend(&path, "/versions/", PercentEncode(version));
  return path;
}

std::string RestInferPath(absl::string_view model, absl::string_view version) {
  return absl::StrCat(RestModelPath(model, version), "/infer");
}

absl::StatusOr<std::string> BuildRestInferBody(const InferRequestSpec& spec) {
  size_t bytes = 64;
  for (const v1::Tensor& tensor : spec.inputs) {
    if (absl::Status s = CheckTensor(tensor); !s.ok()) return s;
    bytes += 96 + tensor.name().size() + tensor.data().size() * 6;
  }
  std::string body;
  body.reserve(bytes);
  body.push_back('{');
  if (!spec.id.empty()) absl::StrAppend(&body, "\"id\":", nlohmann::json(spec.id).dump(), ",");
  body.append("\"inputs\":[");
  for (size_t t = 0; t < spec.inputs.size(); ++t) {
    const v1::Tensor& tensor = spec.inputs[t];
    const DType dtype = static_cast<DType>(tensor.dtype());
    absl::StrAppend(&body, t ? "," : "", "{\"name\":", nlohmann::json(tensor.name()).dump(), ",\"shape\":[",
                    absl::StrJoin(tensor.shape(), ","), "],\"datatype\":\"", DTypeName(dtype), "\",\"data\":[");
    const size_t count = tensor.data().size() / DTypeSize(dtype);
    for (size_t i = 0; i < count; ++i) {
      if (i) body.push_back(',');
      AppendElement(&body, dtype, tensor.data().data(), i);
    }
    body.append("]}");
  }
  body.push_back(']');
  if (absl::Status s = CheckClassification(spec); !s.ok()) return s;
  if (!spec.outputs.empty()) {
    body.append(",\"outputs\":[");
    for (size_t o = 0; o < spec.outputs.size(); ++o) {
      absl::StrAppend(&body, o ? "," : "", "{\"name\":", nlohmann::json(spec.outputs[o]).dump());
      if (spec.classification > 0) {
        absl::StrAppend(&body, ",\"parameters\":{\"classification\":", spec.classification, "}");
      }
      body.push_back('}');
    }
    body.push_back(']');
  }
  body.push_back('}');
  return body;
}

absl::StatusCode HttpStatusToCode(long http_status) {
  if (http_status >= 200 && http_status < 300) return absl::StatusCode::kOk;
  switch (http_status) {
    case 400: return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kNotFound;
    case 408:
    case 504: return absl::StatusCode::kDeadlineExceeded;
    case 409: return absl::StatusCode::kAborted;
    case 413:
    case 429: return absl::StatusCode::kResourceExhausted;
    case 499: return absl::StatusCode::kCancelled;
    case 501: return absl::StatusCode::kUnimplemented;
    case 503: return absl::StatusCode::kUnavailable;
    default: break;
  }
  if (http_status >= 400 && http_status < 500) return absl::StatusCode::kFailedPrecondition;
  if (http_status >= 500 && http_status < 600) return absl::StatusCode::kInternal;
  return absl::StatusCode::kUnknown;
}

absl::Status RestError(long http_status, absl::string_view body) {
  std::string message;
  nlohmann::json json = nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!json.is_discarded() && json.is_object()) message = StringMember(json, "error");
  if (message.empty()) {
    message = std::string(absl::StripAsciiWhitespace(body.substr(0, 200)));
    if (body.size() > 200) message += "...";
  }
  absl::StatusCode code = HttpStatusToCode(http_status);
  if (code == absl::StatusCode::kOk) code = absl::StatusCode::kUnknown;
  return absl::Status(code, absl::StrCat("HTTP ", http_status, ": ", message.empty() ? "(no body)" : message));
}

absl::StatusOr<InferResult> ParseRestInferResponse(long http_status, absl::string_view body) {
  if (http_status < 200 || http_status >= 300) return RestError(http_status, body);
  absl::StatusOr<nlohmann::json> json = ParseJsonBody(body, "infer");
  if (!json.ok()) return json.status();
  InferResult result;
  result.model = StringMember(*json, "model_name");
  result.version = StringMember(*json, "model_version");
  result.id = StringMember(*json, "id");
  auto outputs = json->find("outputs");
  if (outputs == json->end() || !outputs->is_array()) {
    return absl::InternalError("infer: the answer has no \"outputs\" array");
  }
  for (size_t i = 0; i < outputs->size(); ++i) {
    const nlohmann::json& output = (*outputs)[i];
    if (output.is_object() && StringMember(output, "datatype") == "BYTES") {
      absl::StatusOr<BytesOutput> bytes = RestBytesOutput(output);
      if (!bytes.ok()) return absl::InternalError(absl::StrCat("infer: ", bytes.status().message()));
      result.bytes_outputs.push_back(*std::move(bytes));
      continue;
    }
    absl::StatusOr<v1::Tensor> tensor = RestOutput(output, i);
    if (!tensor.ok()) return absl::InternalError(absl::StrCat("infer: ", tensor.status().message()));
    result.outputs.push_back(std::move(*tensor));
  }
  return result;
}

absl::StatusOr<ModelInfo> ParseRestModelMetadata(long http_status, absl::string_view body) {
  if (http_status < 200 || http_status >= 300) return RestError(http_status, body);
  absl::StatusOr<nlohmann::json> json = ParseJsonBody(body, "model metadata");
  if (!json.ok()) return json.status();
  ModelInfo signature;
  signature.name = StringMember(*json, "name");
  if (auto versions = json->find("versions"); versions != json->end() && versions->is_array()) {
    for (const auto& v : *versions) {
      if (v.is_string()) signature.versions.push_back(v.get<std::string>());
      if (v.is_number_integer()) signature.versions.push_back(absl::StrCat(v.get<int64_t>()));
    }
  }
  signature.inputs = RestTensorSpecs(*json, "inputs");
  signature.outputs = RestTensorSpecs(*json, "outputs");
  return signature;
}

}  // namespace microbatch
