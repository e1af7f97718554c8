#include "server/core/classification.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/tensor/float16.h"
#include "server/core/text.h"

namespace microbatch {
namespace {

// Ranks one row's elements (values widened to V) and appends the top `k`.
template <typename V>
void TopK(const std::vector<V>& values, size_t k, absl::Span<const std::string> labels,
          std::vector<size_t>* order, std::vector<std::string>* out) {
  order->resize(values.size());
  std::iota(order->begin(), order->end(), size_t{0});
  auto higher = [&values](size_t a, size_t b) {
    const V& va = values[a];
    const V& vb = values[b];
    if constexpr (std::is_floating_point_v<V>) {
      const bool na = std::isnan(va), nb = std::isnan(vb);
      if (na || nb) return na == nb ? a < b : nb;  // NaN last
    }
    if (va != vb) return va > vb;
    return a < b;
  };
  std::partial_sort(order->begin(), order->begin() + static_cast<std::ptrdiff_t>(k), order->end(),
                    higher);
  for (size_t j = 0; j < k; ++j) {
    const size_t index = (*order)[j];
    std::string entry = absl::StrCat(std::to_string(values[index]), ":", index);
    if (index < labels.size()) absl::StrAppend(&entry, ":", labels[index]);
    out->push_back(std::move(entry));
  }
}

template <typename T, typename V = T>
void ClassifyRows(const char* data, size_t rows, size_t row_elements, size_t k,
                  absl::Span<const std::string> labels, V (*widen)(T), std::vector<std::string>* out) {
  std::vector<V> values(row_elements);
  std::vector<size_t> order;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t i = 0; i < row_elements; ++i) values[i] = widen(LoadElement<T>(data, r * row_elements + i));
    TopK(values, k, labels, &order, out);
  }
}

// Values compare and print as V: integers as int64 (int32 as itself), floats
// as double.
template <typename T, typename V>
V Widen(T v) { return v; }
double WidenHalf(uint16_t v) { return HalfToFloat(v); }
double WidenBFloat16(uint16_t v) { return BFloat16ToFloat(v); }

}  // namespace

absl::StatusOr<Classification> Classify(absl::string_view output, DType dtype,
                                        absl::Span<const int64_t> server_shape,
                                        bool has_batch_dimension, absl::string_view data,
                                        int64_t count, absl::Span<const std::string> labels) {
  if (count < 1) {
    return absl::InvalidArgumentError(absl::StrCat("output '", ClientText(output),
                                                   "': classification count must be >= 1, got ", count));
  }
  if (dtype == DType::kBool || DTypeSize(dtype) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("output '", ClientText(output), "': a ",
                                                   DTypeName(dtype), " output cannot be classified"));
  }
  const int64_t rows = server_shape.empty() ? 1 : server_shape[0];
  const size_t elements = data.size() / DTypeSize(dtype);
  const size_t row_elements = rows > 0 ? elements / static_cast<size_t>(rows) : 0;
  const size_t k = std::min(static_cast<size_t>(count), row_elements);
  Classification result;
  if (has_batch_dimension) result.shape.push_back(rows);
  result.shape.push_back(static_cast<int64_t>(k));
  result.classes.reserve(static_cast<size_t>(rows) * k);
  const char* p = data.data();
  const size_t n = static_cast<size_t>(rows);
  std::vector<std::string>* out = &result.classes;
  switch (dtype) {
    case DType::kFloat32: ClassifyRows<float, double>(p, n, row_elements, k, labels, Widen<float, double>, out); break;
    case DType::kFloat64: ClassifyRows<double>(p, n, row_elements, k, labels, Widen<double, double>, out); break;
    case DType::kFloat16: ClassifyRows<uint16_t, double>(p, n, row_elements, k, labels, WidenHalf, out); break;
    case DType::kBFloat16:
      ClassifyRows<uint16_t, double>(p, n, row_elements, k, labels, WidenBFloat16, out);
      break;
    case DType::kInt64: ClassifyRows<int64_t>(p, n, row_elements, k, labels, Widen<int64_t, int64_t>, out); break;
    case DType::kInt32: ClassifyRows<int32_t>(p, n, row_elements, k, labels, Widen<int32_t, int32_t>, out); break;
    case DType::kInt16:
      ClassifyRows<int16_t, int64_t>(p, n, row_elements, k, labels, Widen<int16_t, int64_t>, out);
      break;
    case DType::kInt8: ClassifyRows<int8_t, int64_t>(p, n, row_elements, k, labels, Widen<int8_t, int64_t>, out); break;
    case DType::kUInt8:
      ClassifyRows<uint8_t, int64_t>(p, n, row_elements, k, labels, Widen<uint8_t, int64_t>, out);
      break;
    case DType::kBool:
    case DType::kInvalid: break;  // refused above
  }
  return result;
}

std::string SerializeBytesTensor(absl::Span<const std::string> elements) {
  size_t total = 0;
  for (const std::string& e : elements) total += 4 + e.size();
  std::string out;
  out.reserve(total);
  for (const std::string& e : elements) {
    const uint32_t n = static_cast<uint32_t>(e.size());
    const char length[4] = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                            static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
    out.append(length, 4);
    out.append(e);
  }
  return out;
}

}  // namespace microbatch
