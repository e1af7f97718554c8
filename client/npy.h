// NumPy .npy files (format versions 1.0-3.0, C order, little-endian), read
// and written a row range at a time so that files of any size stream in
// constant memory. Debian packages no maintained C++ .npy library that
// streams row ranges with a runtime dtype, so this is our own.
#ifndef MICROBATCH_CLIENT_NPY_H_
#define MICROBATCH_CLIENT_NPY_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensor/tensor.h"

namespace microbatch {

// Reads rows of an existing .npy file. Not thread-safe.
class NpyReader {
 public:
  // Errors (INVALID_ARGUMENT, NOT_FOUND) name the file and the byte offset of
  // the problem: bad magic, malformed header, Fortran order, big-endian or
  // unsupported dtype, rank 0, data shorter than the header says.
  static absl::StatusOr<std::unique_ptr<NpyReader>> Open(const std::string& path);

  DType dtype() const { return dtype_; }
  // Full shape; shape()[0] is the number of rows.
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t rows() const { return shape_[0]; }
  size_t row_bytes() const { return row_bytes_; }

  // Replaces `*out` with rows [first, first + count) (clamped to the file).
  absl::Status ReadRows(int64_t first, int64_t count, std::string* out);

 private:
  std::string path_;
  std::ifstream in_;
  DType dtype_ = DType::kInvalid;
  std::vector<int64_t> shape_;
  size_t row_bytes_ = 0;
  uint64_t data_offset_ = 0;
};

// Writes a .npy file row block by row block; the header's row count is
// patched by Finish(). Not thread-safe.
class NpyWriter {
 public:
  // `row_shape` excludes the row dimension. Creates or truncates `path`.
  static absl::StatusOr<std::unique_ptr<NpyWriter>> Create(const std::string& path, DType dtype,
                                                           std::vector<int64_t> row_shape);
  // Opens a file written by NpyWriter (possibly unfinished) to append rows
  // after its first `keep_rows` rows; the rest is discarded.
  static absl::StatusOr<std::unique_ptr<NpyWriter>> Append(const std::string& path,
                                                           int64_t keep_rows);
  // `bytes` holds whole rows.
  absl::Status WriteRows(absl::string_view bytes);
  // Writes the final shape into the header and closes the file.
  absl::Status Finish();
  int64_t rows() const { return rows_; }

 private:
  absl::Status WriteHeader();

  std::string path_;
  std::fstream out_;
  DType dtype_ = DType::kInvalid;
  std::vector<int64_t> row_shape_;
  size_t row_bytes_ = 0;
  int64_t rows_ = 0;
};

// Counts the complete rows of an .npy file whose data may have been cut short
// (an interrupted job's output): (file size - header) / row bytes.
absl::StatusOr<int64_t> CountCompleteRows(const std::string& path);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_NPY_H_
