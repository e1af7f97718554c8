#include "common/tensor/tensor.h"

#include <cstdlib>
#include <new>

#include "absl/strings/str_join.h"

namespace microbatch {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kFloat32, "FP32", 4}, {DType::kFloat64, "FP64", 8}, {DType::kFloat16, "FP16", 2},
    {DType::kBFloat16, "BF16", 2}, {DType::kInt64, "INT64", 8}, {DType::kInt32, "INT32", 4},
    {DType::kInt16, "INT16", 2},  {DType::kInt8, "INT8", 1},    {DType::kUInt8, "UINT8", 1},
    {DType::kBool, "BOOL", 1},
};

const DTypeInfo* Find(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return &info;
  }
  return nullptr;
}

}  // namespace

size_t DTypeSize(DType dtype) {
  const DTypeInfo* info = Find(dtype);
  return info ? info->size : 0;
}

std::string DTypeName(DType dtype) {
  const DTypeInfo* info = Find(dtype);
  return info ? info->name : "INVALID";
}

std::optional<DType> DTypeFromName(absl::string_view name) {
  for (const auto& info : kDTypes) {
    if (name == info.name) return info.dtype;
  }
  return std::nullopt;
}

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return "[" + absl::StrJoin(shape, ",") + "]";
}

std::optional<int64_t> ElementCount(absl::Span<const int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && count > INT64_MAX / d) return std::nullopt;
    count *= d;
  }
  return count;
}

void AlignedBuffer::Free::operator()(uint8_t* p) const { std::free(p); }

void AlignedBuffer::Reserve(size_t bytes) {
  if (bytes <= capacity_) return;
  size_t capacity = std::max<size_t>(bytes, capacity_ * 2);
  capacity = (capacity + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, capacity);
  if (p == nullptr) throw std::bad_alloc();
  storage_.reset(static_cast<uint8_t*>(p));
  capacity_ = capacity;
}

}  // namespace microbatch
