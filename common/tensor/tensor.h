// Element types and non-owning / shared tensor views, shared by the server and
// the client (no torch, no gRPC, no protobuf).
#ifndef MICROBATCH_COMMON_TENSOR_TENSOR_H_
#define MICROBATCH_COMMON_TENSOR_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace microbatch {

// Mirrors microbatch.v1.DataType (same numeric values).
enum class DType : int {
  kInvalid = 0,
  kFloat32 = 1,
  kFloat64 = 2,
  kFloat16 = 3,
  kBFloat16 = 4,
  kInt64 = 5,
  kInt32 = 6,
  kInt16 = 7,
  kInt8 = 8,
  kUInt8 = 9,
  kBool = 10,
};

// Size of one element in bytes; 0 for kInvalid.
size_t DTypeSize(DType dtype);
// "FP32", "INT64", ... as in the proto; "INVALID" for unknown values.
std::string DTypeName(DType dtype);
// Inverse of DTypeName; nullopt for unknown names.
std::optional<DType> DTypeFromName(absl::string_view name);

// "[-1,16]"
std::string ShapeToString(absl::Span<const int64_t> shape);

// Element `index` of a dense array of T at `data`, which need not be
// aligned for T.
template <typename T>
T LoadElement(const void* data, size_t index) {
  T value;
  std::memcpy(&value, static_cast<const char*>(data) + index * sizeof(T), sizeof(T));
  return value;
}
// Writes `value` as element `index` of a dense array of T at `data` (any
// alignment).
template <typename T>
void StoreElement(T value, void* data, size_t index) {
  std::memcpy(static_cast<char*>(data) + index * sizeof(T), &value, sizeof(T));
}

// Number of elements of `shape`, or nullopt when a dimension is negative or
// the product overflows int64.
std::optional<int64_t> ElementCount(absl::Span<const int64_t> shape);

// A read-only view of a dense row-major tensor. `owner` (optional) keeps the
// memory behind `data` alive for as long as the view is copied around.
struct TensorView {
  DType dtype = DType::kInvalid;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t byte_size = 0;
  std::shared_ptr<const void> owner;

  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  // Bytes of one row (product of shape[1:] times element size).
  size_t row_bytes() const { return rows() == 0 ? 0 : byte_size / static_cast<size_t>(rows()); }
};

// A contiguous, growable byte buffer aligned for any element type; reused
// across batches so the hot path does not allocate.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&&) = default;
  AlignedBuffer& operator=(AlignedBuffer&&) = default;

  // Ensures capacity for `bytes` (contents are not preserved on growth).
  void Reserve(size_t bytes);
  uint8_t* data() { return storage_.get(); }
  size_t capacity() const { return capacity_; }

 private:
  struct Free { void operator()(uint8_t* p) const; };
  std::unique_ptr<uint8_t, Free> storage_;
  size_t capacity_ = 0;
};

}  // namespace microbatch

#endif  // MICROBATCH_COMMON_TENSOR_TENSOR_H_
