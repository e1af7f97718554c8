#include "server/v2/json_tensors.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <system_error>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "common/tensor/float16.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "server/core/text.h"
#include "server/v2/datatype.h"

namespace microbatch::v2 {
namespace {

using rapidjson::Value;

constexpr int kMaxDataDepth = 32;

// Numbers are parsed as their text (kParseNumbersAsStringsFlag) and
// converted here with std::from_chars: floats round once, straight to the
// datatype, and -0 keeps its sign.
absl::string_view Text(const Value& value) {
  return absl::string_view(value.GetString(), value.GetStringLength());
}

enum class NumberError { kNone, kNotANumber, kOutOfRange };

template <typename T>
NumberError ParseNumber(absl::string_view text, T* out) {
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, *out);
  if (ec == std::errc::result_out_of_range) {
    if constexpr (std::is_floating_point_v<T>) {
      // Underflow becomes a signed zero, overflow stays an error.
      const double magnitude = std::strtod(std::string(text).c_str(), nullptr);
      if (std::fabs(magnitude) < 1.0) {
        *out = std::signbit(magnitude) ? -T{0} : T{0};
        return NumberError::kNone;
      }
    }
    return NumberError::kOutOfRange;
  }
  if (ec != std::errc() || ptr != end) return NumberError::kNotANumber;
  return NumberError::kNone;
}

// A non-negative integer (shape dimensions, byte counts).
bool ParseCount(const Value& value, int64_t* out) {
  return value.IsString() && ParseNumber(Text(value), out) == NumberError::kNone && *out >= 0;
}

absl::Status Bad(absl::string_view input, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("input '", ClientText(input), "': ", message));
}

// Writes the elements of one input's "data" into dense bytes.
class ElementWriter {
 public:
  ElementWriter(absl::string_view input, DType dtype, int64_t expected, std::string* out)
      : input_(input), dtype_(dtype), size_(DTypeSize(dtype)), expected_(expected), out_(out) {
    out_->resize(static_cast<size_t>(expected) * size_);
  }

  absl::Status Walk(const Value& value, int depth) {
    if (value.IsArray()) {
      if (depth >= kMaxDataDepth) {
        return Bad(input_, absl::StrCat("data is nested deeper than ", kMaxDataDepth, " levels"));
      }
      for (const Value& element : value.GetArray()) {
        if (absl::Status s = Walk(element, depth + 1); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    if (count_ >= expected_) return CountMismatch(count_ + 1);
    if (absl::Status s = Put(value); !s.ok()) return s;
    ++count_;
    return absl::OkStatus();
  }

  absl::Status Finish() const {
    return count_ == expected_ ? absl::OkStatus() : CountMismatch(count_);
  }

 private:
  absl::Status CountMismatch(int64_t got) const {
    return Bad(input_, absl::StrCat("the shape has ", expected_, " elements, data has ",
                                    got > expected_ ? "more" : absl::StrCat(got)));
  }

  template <typename T>
  void Store(T v) {
    std::memcpy(out_->data() + static_cast<size_t>(count_) * sizeof(T), &v, sizeof(T));
  }

  template <typename T>
  absl::Status PutInteger(const Value& value) {
    if (!value.IsString()) return NotA("an integer");
    int64_t v = 0;
    switch (ParseNumber(Text(value), &v)) {
      case NumberError::kNotANumber: return NotA("an integer");
      case NumberError::kOutOfRange: return OutOfRange(ClientText(Text(value)));
      case NumberError::kNone: break;
    }
    if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
      return OutOfRange(absl::StrCat(v));
    }
    Store(static_cast<T>(v));
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status ParseFloat(const Value& value, T* out) {
    if (!value.IsString()) return NotA("a number");
    switch (ParseNumber(Text(value), out)) {
      case NumberError::kNotANumber: return NotA("a number");
      case NumberError::kOutOfRange: return OutOfRange(ClientText(Text(value)));
      case NumberError::kNone: return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  absl::Status OutOfRange(const std::string& v) const {
    return Bad(input_, absl::StrCat("element ", count_, ": ", v, " does not fit ", DTypeName(dtype_)));
  }
  absl::Status NotA(const char* what) const {
    return Bad(input_, absl::StrCat("element ", count_, " is not ", what, " (datatype ",
                                    DTypeName(dtype_), ")"));
  }

  absl::Status Put(const Value& value) {
    switch (dtype_) {
      case DType::kBool:
        if (!value.IsBool()) return NotA("true or false");
        Store<uint8_t>(value.GetBool() ? 1 : 0);
        return absl::OkStatus();
      case DType::kInt8: return PutInteger<int8_t>(value);
      case DType::kInt16: return PutInteger<int16_t>(value);
      case DType::kInt32: return PutInteger<int32_t>(value);
      case DType::kInt64: return PutInteger<int64_t>(value);
      case DType::kUInt8: return PutInteger<uint8_t>(value);
      default: break;
    }
    if (dtype_ == DType::kFloat64) {
      double v = 0;
      if (absl::Status s = ParseFloat(value, &v); !s.ok()) return s;
      Store<double>(v);
      return absl::OkStatus();
    }
    float v = 0;
    if (absl::Status s = ParseFloat(value, &v); !s.ok()) return s;
    switch (dtype_) {
      case DType::kFloat32: Store<float>(v); break;
      case DType::kFloat16: Store<uint16_t>(FloatToHalf(v)); break;
      case DType::kBFloat16: Store<uint16_t>(FloatToBFloat16(v)); break;
      default: return NotA("supported");
    }
    return absl::OkStatus();
  }

  absl::string_view input_;
  DType dtype_;
  size_t size_;
  int64_t expected_;
  std::string* out_;
  int64_t count_ = 0;
};

// A member of `object` that must be a string, if present.
absl::Status OptionalString(const Value& object, const char* member, absl::string_view where,
                            const Value** out) {
  *out = nullptr;
  auto it = object.FindMember(member);
  if (it == object.MemberEnd()) return absl::OkStatus();
  if (!it->value.IsString()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "\"", member, "\" must be a string"));
  }
  *out = &it->value;
  return absl::OkStatus();
}

// parameters[name] as a bool (false when absent or not a bool).
bool BoolParameter(const Value& object, const char* name) {
  auto params = object.FindMember("parameters");
  if (params == object.MemberEnd() || !params->value.IsObject()) return false;
  auto it = params->value.FindMember(name);
  return it != params->value.MemberEnd() && it->value.IsBool() && it->value.GetBool();
}

absl::Status ParseInput(const Value& input, size_t index, absl::string_view binary,
                        size_t* binary_used, JsonInferRequest* out) {
  const std::string where = absl::StrCat("inputs[", index, "]: ");
  if (!input.IsObject()) return absl::InvalidArgumentError(where + "must be an object");
  const Value* name = nullptr;
  if (absl::Status s = OptionalString(input, "name", where, &name); !s.ok()) return s;
  if (name == nullptr) return absl::InvalidArgumentError(where + "\"name\" is missing");
  out->names[index].assign(name->GetString(), name->GetStringLength());
  const std::string& input_name = out->names[index];
  const Value* datatype = nullptr;
  if (absl::Status s = OptionalString(input, "datatype", where, &datatype); !s.ok()) return s;
  if (datatype == nullptr) return Bad(input_name, "\"datatype\" is missing");
  absl::StatusOr<DType> dtype =
      ParseDatatype(absl::string_view(datatype->GetString(), datatype->GetStringLength()), input_name);
  if (!dtype.ok()) return dtype.status();
  auto shape_member = input.FindMember("shape");
  if (shape_member == input.MemberEnd() || !shape_member->value.IsArray()) {
    return Bad(input_name, "\"shape\" must be an array of non-negative integers");
  }
  std::vector<int64_t>& shape = out->shapes[index];
  for (const Value& d : shape_member->value.GetArray()) {
    int64_t dim = 0;
    if (!ParseCount(d, &dim)) {
      return Bad(input_name, "\"shape\" must be an array of non-negative integers");
    }
    shape.push_back(dim);
  }
  std::optional<int64_t> elements = ElementCount(shape);
  if (!elements) return Bad(input_name, absl::StrCat("shape ", ShapeToString(shape), " overflows"));

  RequestTensor tensor;
  tensor.name = input_name;
  tensor.dtype = *dtype;
  tensor.shape = shape;
  auto params = input.FindMember("parameters");
  if (params != input.MemberEnd() && params->value.IsObject() &&
      params->value.HasMember("shared_memory_region")) {
    return Bad(input_name, "shared memory (parameters.shared_memory_region) is not supported; send the data in "
                           "\"data\" or as binary data");
  }
  auto binary_size = params != input.MemberEnd() && params->value.IsObject()
                         ? params->value.FindMember("binary_data_size")
                         : input.MemberEnd();
  const bool has_binary = params != input.MemberEnd() && params->value.IsObject() &&
                          binary_size != params->value.MemberEnd();
  auto data = input.FindMember("data");
  if (has_binary) {
    if (data != input.MemberEnd()) {
      return Bad(input_name, "both \"data\" and parameters.binary_data_size are set");
    }
    int64_t count = 0;
    if (!ParseCount(binary_size->value, &count)) {
      return Bad(input_name, "parameters.binary_data_size must be a non-negative integer");
    }
    const uint64_t bytes = static_cast<uint64_t>(count);
    if (bytes > binary.size() - *binary_used) {
      return Bad(input_name, absl::StrCat("binary_data_size ", bytes, " runs past the ",
                                          binary.size(), " bytes of binary data in the body"));
    }
    tensor.data = binary.substr(*binary_used, bytes);
    *binary_used += bytes;
  } else {
    if (data == input.MemberEnd()) return Bad(input_name, "\"data\" is missing");
    const Value& values = data->value;
    if (!values.IsArray()) return Bad(input_name, "\"data\" must be an array (flat or nested)");
    std::string& bytes = out->data[index];
    // Count first (cheap), then size and fill.
    int64_t counted = 0;
    std::vector<const Value*> stack = {&values};
    while (!stack.empty()) {
      const Value* v = stack.back();
      stack.pop_back();
      if (v->IsArray()) {
        if (stack.size() > 1u << 20) return Bad(input_name, "\"data\" is nested too deeply");
        for (const Value& element : v->GetArray()) stack.push_back(&element);
      } else {
        ++counted;
      }
    }
    if (counted != *elements) {
      return Bad(input_name, absl::StrCat("shape ", ShapeToString(shape), " has ", *elements,
                                          " elements, \"data\" has ", counted));
    }
    ElementWriter fill(input_name, *dtype, *elements, &bytes);
    if (absl::Status s = fill.Walk(values, 0); !s.ok()) return s;
    if (absl::Status s = fill.Finish(); !s.ok()) return s;
    tensor.data = bytes;
  }
  out->inputs.push_back(tensor);
  return absl::OkStatus();
}

// Appends `v` in its shortest exact decimal form (JSON number).
template <typename T>
void WriteFloat(rapidjson::Writer<rapidjson::StringBuffer>& writer, T v) {
  if (std::isnan(v)) {
    writer.RawValue("NaN", 3, rapidjson::kNumberType);
  } else if (std::isinf(v)) {
    if (v > 0) writer.RawValue("Infinity", 8, rapidjson::kNumberType);
    else writer.RawValue("-Infinity", 9, rapidjson::kNumberType);
  } else {
    char text[64];
    auto [end, ec] = std::to_chars(text, text + sizeof(text), v);
    writer.RawValue(text, static_cast<size_t>(end - text), rapidjson::kNumberType);
  }
}

template <typename T>
T Load(absl::string_view data, size_t i) {
  T v;
  std::memcpy(&v, data.data() + i * sizeof(T), sizeof(T));
  return v;
}

void WriteData(rapidjson::Writer<rapidjson::StringBuffer>& writer, const JsonOutput& output) {
  const size_t n = DTypeSize(output.dtype) == 0 ? 0 : output.data.size() / DTypeSize(output.dtype);
  writer.StartArray();
  for (size_t i = 0; i < n; ++i) {
    switch (output.dtype) {
      case DType::kBool: writer.Bool(Load<uint8_t>(output.data, i) != 0); break;
      case DType::kInt8: writer.Int(Load<int8_t>(output.data, i)); break;
      case DType::kInt16: writer.Int(Load<int16_t>(output.data, i)); break;
      case DType::kInt32: writer.Int(Load<int32_t>(output.data, i)); break;
      case DType::kInt64: writer.Int64(Load<int64_t>(output.data, i)); break;
      case DType::kUInt8: writer.Uint(Load<uint8_t>(output.data, i)); break;
      case DType::kFloat32: WriteFloat(writer, Load<float>(output.data, i)); break;
      case DType::kFloat64: WriteFloat(writer, Load<double>(output.data, i)); break;
      case DType::kFloat16: WriteFloat(writer, HalfToFloat(Load<uint16_t>(output.data, i))); break;
      case DType::kBFloat16:
        WriteFloat(writer, BFloat16ToFloat(Load<uint16_t>(output.data, i)));
        break;
      default: writer.Null(); break;
    }
  }
  writer.EndArray();
}

}  // namespace

absl::Status ParseInferRequest(absl::string_view body, size_t json_bytes, JsonInferRequest* out) {
  if (json_bytes > body.size()) {
    return absl::InvalidArgumentError(absl::StrCat("Inference-Header-Content-Length ", json_bytes,
                                                   " exceeds the body's ", body.size(), " bytes"));
  }
  rapidjson::Document document;
  document.Parse<rapidjson::kParseNanAndInfFlag | rapidjson::kParseIterativeFlag |
                 rapidjson::kParseNumbersAsStringsFlag>(body.data(), json_bytes);
  if (document.HasParseError()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed JSON at byte offset ",
                                                   document.GetErrorOffset(), ": ",
                                                   rapidjson::GetParseError_En(document.GetParseError())));
  }
  if (!document.IsObject()) {
    return absl::InvalidArgumentError("the request body must be a JSON object");
  }
  const Value* id = nullptr;
  if (absl::Status s = OptionalString(document, "id", "", &id); !s.ok()) return s;
  if (id != nullptr) {
    out->id.assign(id->GetString(), id->GetStringLength());
    out->has_id = true;
    // The id is echoed back whole in the answer's JSON, which is UTF-8.
    // (Other strings are checked against the model's names, and echoed only
    // through ClientText, which replaces what is not UTF-8; validating every
    // string in the parser cost 0.4 us a request on a 256-value body.)
    if (const size_t bad = FirstInvalidUtf8(out->id); bad != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"id\" is not UTF-8 (byte ", bad + 1, "); JSON text is UTF-8"));
    }
  }
  out->binary_by_default = BoolParameter(document, "binary_data_output");
  if (auto params = document.FindMember("parameters"); params != document.MemberEnd() && params->value.IsObject()) {
    if (auto timeout = params->value.FindMember("timeout"); timeout != params->value.MemberEnd()) {
      if (!ParseCount(timeout->value, &out->timeout_us)) {
        return absl::InvalidArgumentError("parameters.timeout must be a whole number of microseconds >= 0");
      }
    }
  }
  auto inputs = document.FindMember("inputs");
  if (inputs == document.MemberEnd() || !inputs->value.IsArray() || inputs->value.Empty()) {
    return absl::InvalidArgumentError("\"inputs\" must be a non-empty array");
  }
  const size_t count = inputs->value.Size();
  out->names.assign(count, std::string());
  out->shapes.assign(count, std::vector<int64_t>());
  out->data.assign(count, std::string());
  out->inputs.reserve(count);
  const absl::string_view binary = body.substr(json_bytes);
  size_t binary_used = 0;
  for (size_t i = 0; i < count; ++i) {
    if (absl::Status s = ParseInput(inputs->value[static_cast<rapidjson::SizeType>(i)], i, binary,
                                    &binary_used, out);
        !s.ok()) {
      return s;
    }
  }
  if (binary_used != binary.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the body has ", binary.size(), " bytes of binary data, the inputs' binary_data_size add up to ",
        binary_used));
  }
  auto outputs = document.FindMember("outputs");
  if (outputs != document.MemberEnd()) {
    if (!outputs->value.IsArray()) return absl::InvalidArgumentError("\"outputs\" must be an array");
    size_t index = 0;
    for (const Value& output : outputs->value.GetArray()) {
      const std::string where = absl::StrCat("outputs[", index++, "]: ");
      if (!output.IsObject()) return absl::InvalidArgumentError(where + "must be an object");
      const Value* name = nullptr;
      if (absl::Status s = OptionalString(output, "name", where, &name); !s.ok()) return s;
      if (name == nullptr) return absl::InvalidArgumentError(where + "\"name\" is missing");
      out->outputs.emplace_back(name->GetString(), name->GetStringLength());
      auto params = output.FindMember("parameters");
      bool binary_output = out->binary_by_default;
      int64_t class_count = 0;
      if (params != output.MemberEnd() && params->value.IsObject()) {
        auto classification = params->value.FindMember("classification");
        if (classification != params->value.MemberEnd()) {
          if (!ParseCount(classification->value, &class_count) || class_count < 1) {
            return absl::InvalidArgumentError(absl::StrCat(
                "output '", ClientText(out->outputs.back()),
                "': parameters.classification must be an integer >= 1 (the number of classes)"));
          }
        }
        if (params->value.HasMember("shared_memory_region")) {
          return absl::InvalidArgumentError(absl::StrCat(
              "output '", ClientText(out->outputs.back()),
              "': shared memory (parameters.shared_memory_region) is not supported; the output comes in the "
              "answer"));
        }
        auto b = params->value.FindMember("binary_data");
        if (b != params->value.MemberEnd() && b->value.IsBool()) binary_output = b->value.GetBool();
      }
      out->binary_outputs.push_back(binary_output);
      out->classification.push_back(class_count);
    }
  }
  return absl::OkStatus();
}

EncodedResponse EncodeInferResponse(absl::string_view model, int64_t version, const std::string* id,
                                    absl::Span<const JsonOutput> outputs) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("model_name");
  writer.String(model.data(), static_cast<rapidjson::SizeType>(model.size()));
  writer.Key("model_version");
  const std::string v = absl::StrCat(version);
  writer.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  if (id != nullptr) {
    writer.Key("id");
    writer.String(id->data(), static_cast<rapidjson::SizeType>(id->size()));
  }
  writer.Key("outputs");
  writer.StartArray();
  EncodedResponse encoded;
  for (const JsonOutput& output : outputs) {
    writer.StartObject();
    writer.Key("name");
    writer.String(output.name.data(), static_cast<rapidjson::SizeType>(output.name.size()));
    writer.Key("datatype");
    const std::string datatype = output.strings != nullptr ? "BYTES" : DatatypeName(output.dtype);
    writer.String(datatype.data(), static_cast<rapidjson::SizeType>(datatype.size()));
    writer.Key("shape");
    writer.StartArray();
    for (int64_t d : output.shape) writer.Int64(d);
    writer.EndArray();
    if (output.binary) {
      writer.Key("parameters");
      writer.StartObject();
      writer.Key("binary_data_size");
      writer.Uint64(output.data.size());
      writer.EndObject();
      encoded.has_binary = true;
    } else {
      writer.Key("data");
      if (output.strings != nullptr) {
        writer.StartArray();
        for (const std::string& element : *output.strings) {
          writer.String(element.data(), static_cast<rapidjson::SizeType>(element.size()));
        }
        writer.EndArray();
      } else {
        WriteData(writer, output);
      }
    }
    writer.EndObject();
  }
  writer.EndArray();
  writer.EndObject();
  encoded.json_bytes = buffer.GetSize();
  encoded.body.reserve(buffer.GetSize());
  encoded.body.assign(buffer.GetString(), buffer.GetSize());
  for (const JsonOutput& output : outputs) {
    if (output.binary) encoded.body.append(output.data.data(), output.data.size());
  }
  return encoded;
}

std::string JsonErrorBody(absl::string_view message) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("error");
  // JSON strings are UTF-8, whatever a message quotes.
  const std::string text = ToValidUtf8(message);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace microbatch::v2
