// Numeric CSV files with a header row, read and written a row at a time.
#ifndef MICROBATCH_CLIENT_CSV_H_
#define MICROBATCH_CLIENT_CSV_H_

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensor/tensor.h"

namespace microbatch {

// Reads rows forward from a CSV file: a header row of column names, then one
// row of numbers per line (empty lines are skipped). Not thread-safe.
class CsvReader {
 public:
  // Reads the header. Errors name the file: empty file, empty or duplicate
  // column names.
  static absl::StatusOr<std::unique_ptr<CsvReader>> Open(const std::string& path);

  const std::vector<std::string>& columns() const { return columns_; }
  // Appends the next `count` rows (fewer at the end of the file) to `out` as
  // elements of `dtype`; returns how many were read. Errors name the file,
  // line and column: a ragged row, a field that is not a number.
  absl::StatusOr<int64_t> ReadRows(int64_t count, DType dtype, std::string* out);
  // Skips `count` rows without converting them.
  absl::Status SkipRows(int64_t count);

 private:
  absl::StatusOr<bool> NextRow(std::vector<absl::string_view>* fields);

  std::string path_;
  std::ifstream in_;
  std::string line_;
  int64_t line_number_ = 0;
  std::vector<std::string> columns_;
};

// Checks every row of `path` (so a bad file fails before any output is
// written) and returns the number of data rows.
absl::StatusOr<int64_t> ValidateCsv(const std::string& path, DType dtype);

// Writes a header row, then rows of numbers. Not thread-safe.
class CsvWriter {
 public:
  // Creates or truncates `path` and writes the header.
  static absl::StatusOr<std::unique_ptr<CsvWriter>> Create(const std::string& path,
                                                           const std::vector<std::string>& columns);
  // Opens an existing file written by CsvWriter, keeps its header and first
  // `keep_rows` rows, and appends after them.
  static absl::StatusOr<std::unique_ptr<CsvWriter>> Append(const std::string& path, int64_t keep_rows);
  // `columns` values per row, row-major, as doubles.
  absl::Status WriteRows(const std::vector<double>& values, size_t columns);
  absl::Status Finish();

 private:
  std::string path_;
  std::ofstream out_;
};

// Complete data rows (newline-terminated lines after the header) of a CSV
// file written by CsvWriter; 0 when only the header or less is there.
absl::StatusOr<int64_t> CountCsvRows(const std::string& path);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_CSV_H_
