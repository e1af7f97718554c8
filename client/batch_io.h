// The files of `microbatch batch`: the input rows (.npy per model input, or
// one CSV for a single-input model) and the results (.npy per output, or one
// CSV), both read and written in constant memory and resumable.
#ifndef MICROBATCH_CLIENT_BATCH_IO_H_
#define MICROBATCH_CLIENT_BATCH_IO_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/csv.h"
#include "client/npy.h"
#include "microbatch/v1/inference.pb.h"

namespace microbatch {

using Tensors = google::protobuf::RepeatedPtrField<v1::Tensor>;

// The rows of the job's input, read by row range.
class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual int64_t rows() const = 0;
  // Reads rows [first, first + count) into `out`, one tensor per input.
  // Reads are sequential: `first` is where the previous read ended (or later).
  virtual absl::Status Read(int64_t first, int64_t count, Tensors* out) = 0;
};

// Opens the --input values for `model`: one data.csv (single-input model),
// one data.npy (single-input model), or name=file.npy for every input.
// INVALID_ARGUMENT naming the file (and line or byte offset) for a malformed
// file, a dtype or shape the model does not take, or inputs that do not
// match the model's.
absl::StatusOr<std::unique_ptr<RowSource>> OpenRowSource(const std::vector<std::string>& inputs,
                                                         const v1::ModelMetadata& model);

// Creates the missing parent directories of `output` (a file path).
// FAILED_PRECONDITION naming the directory when that fails (e.g. a parent is
// a regular file, or no permission).
absl::Status CreateParentDirectories(const std::string& output);

// Where results go: one .npy per output (out.npy for a single output,
// out.<name>.npy each for several), or one CSV with every output's columns.
class ResultSink {
 public:
  // `outputs` are the model outputs written, in order. With `resume`,
  // *resume_rows is the number of complete rows already in every output file
  // (a torn last row does not count); else 0. Nothing is written yet.
  // INVALID_ARGUMENT when `path` ends in neither .npy nor .csv.
  static absl::StatusOr<std::unique_ptr<ResultSink>> Open(const std::string& path,
                                                          const std::vector<v1::TensorMetadata>& outputs,
                                                          bool resume, int64_t* resume_rows);

  // Opens the files, keeping `keep_rows` rows already there (0: files are
  // created at the first Write, when the output shapes are known).
  absl::Status Start(int64_t keep_rows);
  // Appends the rows of one chunk result, in order.
  absl::Status Write(const v1::BatchChunkResult& result);
  // Completes the files (npy headers with the final row count).
  absl::Status Finish();
  // The files written, for messages.
  std::string Describe() const;

 private:
  ResultSink() = default;
  absl::Status WriteCsv(const v1::BatchChunkResult& result);

  bool csv_ = false;
  std::vector<v1::TensorMetadata> outputs_;
  std::string csv_path_;
  std::unique_ptr<CsvWriter> csv_writer_;
  std::vector<std::string> npy_paths_;
  std::vector<std::unique_ptr<NpyWriter>> npy_writers_;
};

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_BATCH_IO_H_
