#include "client/batch_io.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/tensor_json.h"

namespace microbatch {
namespace {

namespace fs = std::filesystem;

class NpySource : public RowSource {
 public:
  static absl::StatusOr<std::unique_ptr<NpySource>> Open(
      const std::vector<std::pair<std::string, std::string>>& files, const v1::ModelMetadata& model) {
    auto source = std::make_unique<NpySource>();
    for (const auto& [name, path] : files) {
      const v1::TensorMetadata* declared = nullptr;
      for (const auto& in : model.inputs()) {
        if (in.name() == name) declared = &in;
      }
      if (declared == nullptr) return absl::InvalidArgumentError(absl::StrCat("model '", model.name(), "' has no input '", name, "'"));
      absl::StatusOr<std::unique_ptr<NpyReader>> reader = NpyReader::Open(path);
      if (!reader.ok()) return reader.status();
      if (static_cast<int>((*reader)->dtype()) != declared->dtype()) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": dtype ", DTypeName((*reader)->dtype()), " but input '", name, "' is ",
            DTypeName(static_cast<DType>(declared->dtype()))));
      }
      if (source->rows_ >= 0 && (*reader)->rows() != source->rows_) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": ", (*reader)->rows(), " rows, but ",
                                                       source->inputs_[0].path, " has ", source->rows_));
      }
      source->rows_ = (*reader)->rows();
      source->inputs_.push_back({name, path, std::move(*reader)});
    }
    return source;
  }
  int64_t rows() const override { return rows_; }
  absl::Status Read(int64_t first, int64_t count, Tensors* out) override {
    for (Input& input : inputs_) {
      v1::Tensor* tensor = out->Add();
      tensor->set_name(input.name);
      tensor->set_dtype(static_cast<v1::DataType>(input.reader->dtype()));
      tensor->add_shape(count);
      for (size_t i = 1; i < input.reader->shape().size(); ++i) tensor->add_shape(input.reader->shape()[i]);
      if (absl::Status s = input.reader->ReadRows(first, count, tensor->mutable_data()); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  struct Input {
    std::string name;
    std::string path;
    std::unique_ptr<NpyReader> reader;
  };
  std::vector<Input> inputs_;
  int64_t rows_ = -1;
};

// A CSV file whose columns, in order, form the rows of a single-input model.
class CsvSource : public RowSource {
 public:
  static absl::StatusOr<std::unique_ptr<CsvSource>> Open(const std::string& path,
                                                         const v1::ModelMetadata& model) {
    if (model.inputs_size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": CSV input needs a single-input model; '", model.name(),
          "' has several inputs: use one .npy file per input (--input name=file.npy)"));
    }
    auto source = std::make_unique<CsvSource>();
    const v1::TensorMetadata& input = model.inputs(0);
    source->name_ = input.name();
    source->dtype_ = static_cast<DType>(input.dtype());
    absl::StatusOr<int64_t> rows = ValidateCsv(path, source->dtype_);
    if (!rows.ok()) return rows.status();
    source->rows_ = *rows;
    absl::StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
    if (!reader.ok()) return reader.status();
    source->reader_ = std::move(*reader);
    const int64_t columns = static_cast<int64_t>(source->reader_->columns().size());
    // One CSV row is one row of the input: its shape after the batch
    // dimension (the whole shape for a model without one, max_batch_size 0).
    const int first = model.batching().max_batch_size() == 0 ? 0 : 1;
    if (input.shape_size() != first + 1 || (input.shape(first) != -1 && input.shape(first) != columns)) {
      std::vector<int64_t> shape(input.shape().begin(), input.shape().end());
      return absl::InvalidArgumentError(absl::StrCat(path, ":1: ", columns, " columns, but input '",
                                                     input.name(), "' has shape ",
                                                     ShapeToString(shape)));
    }
    return source;
  }
  int64_t rows() const override { return rows_; }
  absl::Status Read(int64_t first, int64_t count, Tensors* out) override {
    if (first > position_) {
      if (absl::Status s = reader_->SkipRows(first - position_); !s.ok()) return s;
      position_ = first;
    }
    v1::Tensor* tensor = out->Add();
    tensor->set_name(name_);
    tensor->set_dtype(static_cast<v1::DataType>(dtype_));
    absl::StatusOr<int64_t> read = reader_->ReadRows(count, dtype_, tensor->mutable_data());
    if (!read.ok()) return read.status();
    position_ += *read;
    tensor->add_shape(*read);
    tensor->add_shape(static_cast<int64_t>(reader_->columns().size()));
    return absl::OkStatus();
  }

 private:
  std::string name_;
  DType dtype_ = DType::kFloat32;
  int64_t rows_ = 0;
  int64_t position_ = 0;
  std::unique_ptr<CsvReader> reader_;
};
// --input values as (input name, .npy path) pairs: a bare path names the
// only input of a single-input model.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> NpyInputFiles(
    const std::vector<std::string>& inputs, const v1::ModelMetadata& model) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const std::string& input : inputs) {
    const size_t eq = input.find('=');
    if (eq == std::string::npos) {
      if (model.inputs_size() != 1 || inputs.size() != 1) {
        return absl::InvalidArgumentError(absl::StrCat("--input ", input, ": the model has ", model.inputs_size(),
                                                       " inputs; name each: --input name=file.npy"));
      }
      files.emplace_back(model.inputs(0).name(), input);
    } else {
      files.emplace_back(input.substr(0, eq), input.substr(eq + 1));
    }
  }
  if (static_cast<int>(files.size()) != model.inputs_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model has ", model.inputs_size(), " inputs, got ", files.size(), " --input"));
  }
  return files;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RowSource>> OpenRowSource(const std::vector<std::string>& inputs,
                                                         const v1::ModelMetadata& model) {
  if (inputs.size() == 1 && absl::EndsWith(inputs[0], ".csv")) {
    absl::StatusOr<std::unique_ptr<CsvSource>> csv = CsvSource::Open(inputs[0], model);
    if (!csv.ok()) return csv.status();
    return std::unique_ptr<RowSource>(std::move(*csv));
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> files = NpyInputFiles(inputs, model);
  if (!files.ok()) return files.status();
  absl::StatusOr<std::unique_ptr<NpySource>> npy = NpySource::Open(*files, model);
  if (!npy.ok()) return npy.status();
  return std::unique_ptr<RowSource>(std::move(*npy));
}

absl::Status CreateParentDirectories(const std::string& output) {
  const fs::path parent = fs::path(output).parent_path();
  if (parent.empty()) return absl::OkStatus();
  std::error_code error;
  fs::create_directories(parent, error);
  if (error) {
    return absl::FailedPreconditionError(absl::StrCat("--output ", output, ": cannot create directory ",
                                                      parent.string(), ": ", error.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ResultSink>> ResultSink::Open(const std::string& path,
                                                        const std::vector<v1::TensorMetadata>& outputs,
                                                        bool resume, int64_t* resume_rows) {
  std::unique_ptr<ResultSink> sink(new ResultSink());
  sink->csv_ = absl::EndsWith(path, ".csv");
  if (!sink->csv_ && !absl::EndsWith(path, ".npy")) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": --output must end in .npy or .csv"));
  }
  sink->outputs_ = outputs;
  *resume_rows = 0;
  if (sink->csv_) {
    sink->csv_path_ = path;
    if (resume && fs::exists(path)) {
      absl::StatusOr<int64_t> rows = CountCsvRows(path);
      if (!rows.ok()) return rows.status();
      *resume_rows = *rows;
    }
    return sink;
  }
  int64_t complete = INT64_MAX;
  for (const auto& output : outputs) {
    std::string file = path;
    if (outputs.size() > 1) file = path.substr(0, path.size() - 4) + "." + output.name() + ".npy";
    sink->npy_paths_.push_back(file);
    if (resume && fs::exists(file)) {
      absl::StatusOr<int64_t> rows = CountCompleteRows(file);
      if (!rows.ok()) return rows.status();
      complete = std::min(complete, *rows);
    } else {
      complete = 0;
    }
  }
  *resume_rows = resume ? complete : 0;
  return sink;
}

absl::Status ResultSink::Start(int64_t keep_rows) {
  if (csv_) {
    if (keep_rows > 0) {
      absl::StatusOr<std::unique_ptr<CsvWriter>> w = CsvWriter::Append(csv_path_, keep_rows);
      if (!w.ok()) return w.status();
      csv_writer_ = std::move(*w);
    }
    return absl::OkStatus();  // created on the first result, when shapes are known
  }
  for (size_t i = 0; i < outputs_.size(); ++i) {
    if (keep_rows > 0) {
      absl::StatusOr<std::unique_ptr<NpyWriter>> w = NpyWriter::Append(npy_paths_[i], keep_rows);
      if (!w.ok()) return w.status();
      npy_writers_.push_back(std::move(*w));
    }
  }
  return absl::OkStatus();
}

absl::Status ResultSink::Write(const v1::BatchChunkResult& result) {
  if (result.outputs_size() != static_cast<int>(outputs_.size())) {
    return absl::InternalError(absl::StrCat("the server returned ", result.outputs_size(),
                                            " outputs, expected ", outputs_.size()));
  }
  if (csv_) return WriteCsv(result);
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const v1::Tensor& t = result.outputs(static_cast<int>(i));
    if (npy_writers_.size() <= i) {
      std::vector<int64_t> row_shape(t.shape().begin() + 1, t.shape().end());
      absl::StatusOr<std::unique_ptr<NpyWriter>> w =
          NpyWriter::Create(npy_paths_[i], static_cast<DType>(t.dtype()), row_shape);
      if (!w.ok()) return w.status();
      npy_writers_.push_back(std::move(*w));
    }
    if (absl::Status s = npy_writers_[i]->WriteRows(t.data()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ResultSink::Finish() {
  for (auto& w : npy_writers_) {
    if (absl::Status s = w->Finish(); !s.ok()) return s;
  }
  if (csv_writer_) return csv_writer_->Finish();
  return absl::OkStatus();
}

std::string ResultSink::Describe() const {
  return csv_ ? csv_path_ : absl::StrJoin(npy_paths_, ", ");
}

absl::Status ResultSink::WriteCsv(const v1::BatchChunkResult& result) {
  std::vector<size_t> widths;
  for (const v1::Tensor& t : result.outputs()) {
    size_t width = 1;
    for (int d = 1; d < t.shape_size(); ++d) width *= static_cast<size_t>(t.shape(d));
    widths.push_back(width);
  }
  size_t columns = 0;
  for (size_t w : widths) columns += w;
  if (!csv_writer_) {
    std::vector<std::string> names;
    for (size_t i = 0; i < widths.size(); ++i) {
      for (size_t j = 0; j < widths[i]; ++j) {
        names.push_back(widths[i] == 1 ? outputs_[i].name() : absl::StrCat(outputs_[i].name(), "_", j));
      }
    }
    absl::StatusOr<std::unique_ptr<CsvWriter>> w = CsvWriter::Create(csv_path_, names);
    if (!w.ok()) return w.status();
    csv_writer_ = std::move(*w);
  }
  std::vector<double> values;
  values.reserve(result.rows() * columns);
  for (int64_t r = 0; r < result.rows(); ++r) {
    for (size_t i = 0; i < widths.size(); ++i) {
      const v1::Tensor& t = result.outputs(static_cast<int>(i));
      for (size_t j = 0; j < widths[i]; ++j) {
        values.push_back(ElementAsDouble(static_cast<DType>(t.dtype()), t.data().data(), r * widths[i] + j));
      }
    }
  }
  return csv_writer_->WriteRows(values, columns);
}
}  // namespace microbatch
