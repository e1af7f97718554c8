// `microbatch batch`: streams a dataset file through BatchPredict and writes
// the results in input order, in constant memory, resumable.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/csv.h"
#include "client/npy.h"
#include "client/tensor_json.h"
#include "microbatch/v1/inference.grpc.pb.h"

namespace microbatch {
namespace {

namespace fs = std::filesystem;
using Tensors = google::protobuf::RepeatedPtrField<v1::Tensor>;

int Fail(const std::string& message) {
  std::cerr << "microbatch batch: " << message << "\n";
  return 1;
}

// The rows of the job's input, read by row range.
class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual int64_t rows() const = 0;
  // Reads rows [first, first + count) into `out`, one tensor per input.
  // Reads are sequential: `first` is where the previous read ended.
  virtual absl::Status Read(int64_t first, int64_t count, Tensors* out) = 0;
};

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
    if (input.shape_size() != 2 || (input.shape(1) != -1 && input.shape(1) != columns)) {
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

// Where results go: one .npy per output, or one CSV with every output's
// columns.
class ResultSink {
 public:
  // `outputs` are the model outputs written, in order.
  static absl::StatusOr<std::unique_ptr<ResultSink>> Open(const std::string& path,
                                                          const std::vector<v1::TensorMetadata>& outputs,
                                                          bool resume, int64_t* resume_rows) {
    auto sink = std::make_unique<ResultSink>();
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

  // Opens the files, keeping `keep_rows` rows already there.
  absl::Status Start(int64_t keep_rows) {
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

  absl::Status Write(const v1::BatchChunkResult& result) {
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

  absl::Status Finish() {
    for (auto& w : npy_writers_) {
      if (absl::Status s = w->Finish(); !s.ok()) return s;
    }
    if (csv_writer_) return csv_writer_->Finish();
    return absl::OkStatus();
  }

  std::string Describe() const {
    return csv_ ? csv_path_ : absl::StrJoin(npy_paths_, ", ");
  }

 private:
  absl::Status WriteCsv(const v1::BatchChunkResult& result) {
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

  bool csv_ = false;
  std::vector<v1::TensorMetadata> outputs_;
  std::string csv_path_;
  std::unique_ptr<CsvWriter> csv_writer_;
  std::vector<std::string> npy_paths_;
  std::vector<std::unique_ptr<NpyWriter>> npy_writers_;
};

// Progress on stderr: a live line on a terminal, a plain line every 5 s
// otherwise.
class Progress {
 public:
  Progress(int64_t total, int64_t done) : total_(total), start_done_(done), tty_(isatty(2)) {}
  void Update(int64_t done, bool final = false) {
    const absl::Time now = absl::Now();
    if (!final && now - last_ < (tty_ ? absl::Milliseconds(200) : absl::Seconds(5))) return;
    last_ = now;
    const double seconds = std::max(1e-3, absl::ToDoubleSeconds(now - start_));
    const double rate = (done - start_done_) / seconds;
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    const std::string line = absl::StrFormat("%d/%d rows (%.1f%%)  %.0f rows/s  ETA %.0fs", done,
                                             total_, total_ ? 100.0 * done / total_ : 100.0, rate, eta);
    if (tty_) {
      std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), final ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }

 private:
  const int64_t total_;
  const int64_t start_done_;
  const bool tty_;
  const absl::Time start_ = absl::Now();
  absl::Time last_ = absl::InfinitePast();
};

// One BatchPredict stream to one target; results come back in its send order.
struct Stream {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::BatchPredictRequest, v1::BatchPredictResponse>> rw;
  std::deque<int64_t> in_flight;  // global chunk indices, send order
  int64_t next_sequence = 0;
  std::thread receiver;
};

}  // namespace

int BatchCommand(int argc, char** argv) {
  Args args("batch",
            "Streams a dataset (.npy or CSV) through BatchPredict and writes the results in input\n"
            "order (.npy or CSV), in constant memory; --resume continues an interrupted job.");
  args.Flag("target", "localhost:8500",
            "Server address; repeat to split the job across replicas, or use dns:///host:port "
            "with --streams",
            /*repeated=*/true);
  args.Flag("streams", "0", "Streams to open (default: one per --target)");
  args.Flag("model", "", "Model name (required)");
  args.Flag("version", "0", "Model version (0: latest)");
  args.Flag("input", "", "data.npy, data.csv, or name=file.npy per model input", /*repeated=*/true);
  args.Flag("output", "", "out.npy or out.csv (several outputs: out.<name>.npy each)");
  args.Flag("outputs", "", "Outputs to write (default: all)", /*repeated=*/true);
  args.Flag("chunk-rows", "1024", "Rows per chunk sent");
  args.Flag("window", "4", "Chunks in flight per stream");
  args.Flag("resume", "false", "Continue after the rows already in --output");
  args.Flag("shard-index", "0", "Process only shard INDEX of --shard-count equal row ranges");
  args.Flag("shard-count", "1", "Number of shards the input is split into");
  args.Flag("job-id", "", "Job id sent to the server (logged)");
  if (absl::Status s = args.Parse(argc, argv); !s.ok()) return Fail(std::string(s.message()));
  if (args.help()) {
    std::cout << args.Usage();
    return 0;
  }
  int64_t version = 0, chunk_rows = 0, window = 0, shard_index = 0, shard_count = 1, streams_flag = 0;
  for (auto [name, value] : {std::pair{"version", &version}, {"chunk-rows", &chunk_rows},
                             {"window", &window}, {"shard-index", &shard_index},
                             {"shard-count", &shard_count}, {"streams", &streams_flag}}) {
    if (absl::Status s = args.GetInt(name, value); !s.ok()) return Fail(std::string(s.message()));
  }
  if (args.Get("model").empty()) return Fail("--model is required");
  if (args.GetAll("input").empty()) return Fail("--input is required");
  if (args.Get("output").empty()) return Fail("--output is required");
  if (chunk_rows < 1 || window < 1) return Fail("--chunk-rows and --window must be >= 1");
  if (shard_count < 1 || shard_index < 0 || shard_index >= shard_count) {
    return Fail("--shard-index must be in [0, --shard-count)");
  }
  std::vector<std::string> targets = args.GetAll("target");
  if (targets.empty()) targets = {args.Get("target")};

  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(-1);
  channel_args.SetMaxSendMessageSize(-1);
  channel_args.SetLoadBalancingPolicyName("round_robin");
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (const std::string& target : targets) {
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), channel_args));
  }

  // The model's metadata: input dtypes and the outputs to write.
  v1::ModelMetadata model;
  {
    auto stub = v1::Inference::NewStub(channels[0]);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::GetModelMetadataRequest request;
    request.set_model(args.Get("model"));
    request.set_version(version);
    grpc::Status status = stub->GetModelMetadata(&context, request, &model);
    if (!status.ok()) return Fail(absl::StrCat(targets[0], ": ", status.error_message()));
  }
  std::vector<v1::TensorMetadata> outputs;
  for (const std::string& name : args.GetAll("outputs")) {
    bool found = false;
    for (const auto& out : model.outputs()) {
      if (out.name() == name) {
        outputs.push_back(out);
        found = true;
      }
    }
    if (!found) return Fail(absl::StrCat("model '", model.name(), "' has no output '", name, "'"));
  }
  if (outputs.empty()) outputs.assign(model.outputs().begin(), model.outputs().end());

  // The input.
  std::unique_ptr<RowSource> source;
  const std::vector<std::string>& inputs = args.GetAll("input");
  if (inputs.size() == 1 && absl::EndsWith(inputs[0], ".csv")) {
    absl::StatusOr<std::unique_ptr<CsvSource>> csv = CsvSource::Open(inputs[0], model);
    if (!csv.ok()) return Fail(std::string(csv.status().message()));
    source = std::move(*csv);
  } else {
    std::vector<std::pair<std::string, std::string>> files;
    for (const std::string& input : inputs) {
      const size_t eq = input.find('=');
      if (eq == std::string::npos) {
        if (model.inputs_size() != 1 || inputs.size() != 1) {
          return Fail(absl::StrCat("--input ", input, ": the model has ", model.inputs_size(),
                                   " inputs; name each: --input name=file.npy"));
        }
        files.emplace_back(model.inputs(0).name(), input);
      } else {
        files.emplace_back(input.substr(0, eq), input.substr(eq + 1));
      }
    }
    if (static_cast<int>(files.size()) != model.inputs_size()) {
      return Fail(absl::StrCat("the model has ", model.inputs_size(), " inputs, got ", files.size(), " --input"));
    }
    absl::StatusOr<std::unique_ptr<NpySource>> npy = NpySource::Open(files, model);
    if (!npy.ok()) return Fail(std::string(npy.status().message()));
    source = std::move(*npy);
  }
  const int64_t shard_begin = source->rows() * shard_index / shard_count;
  const int64_t shard_end = source->rows() * (shard_index + 1) / shard_count;

  // The output, and where to resume.
  int64_t done_rows = 0;
  absl::StatusOr<std::unique_ptr<ResultSink>> sink =
      ResultSink::Open(args.Get("output"), outputs, args.GetBool("resume"), &done_rows);
  if (!sink.ok()) return Fail(std::string(sink.status().message()));
  done_rows = std::min(done_rows, shard_end - shard_begin);
  if (absl::Status s = (*sink)->Start(done_rows); !s.ok()) return Fail(std::string(s.message()));
  if (done_rows > 0) std::cerr << "resuming after " << done_rows << " rows already in the output\n";

  const int64_t first_row = shard_begin + done_rows;
  const int64_t total_chunks = (shard_end - first_row + chunk_rows - 1) / chunk_rows;
  const int num_streams = static_cast<int>(streams_flag > 0 ? streams_flag : targets.size());

  std::mutex mu;
  std::condition_variable cv;
  std::map<int64_t, v1::BatchChunkResult> results;  // out of order, bounded by the windows
  std::string error;
  int64_t next_to_write = 0;
  std::vector<Stream> streams(num_streams);

  for (int s = 0; s < num_streams; ++s) {
    Stream& stream = streams[s];
    stream.context = std::make_unique<grpc::ClientContext>();
    auto stub = v1::Inference::NewStub(channels[s % channels.size()]);
    stream.rw = stub->BatchPredict(stream.context.get());
    v1::BatchPredictRequest header;
    header.mutable_header()->set_model(model.name());
    header.mutable_header()->set_version(version);
    header.mutable_header()->set_job_id(args.Get("job-id"));
    header.mutable_header()->set_start_offset(first_row);
    for (const auto& out : outputs) header.mutable_header()->add_outputs(out.name());
    stream.rw->Write(header);
    stream.receiver = std::thread([&, s] {
      Stream& st = streams[s];
      v1::BatchPredictResponse response;
      while (st.rw->Read(&response)) {
        std::lock_guard<std::mutex> lock(mu);
        if (st.in_flight.empty()) {
          error = "the server answered a chunk that was never sent";
          break;
        }
        const int64_t chunk = st.in_flight.front();
        st.in_flight.pop_front();
        const v1::BatchChunkResult& result = response.result();
        if (result.has_error() && error.empty()) {
          error = absl::StrCat("rows ", first_row + chunk * chunk_rows, "..",
                               first_row + chunk * chunk_rows + result.rows() - 1, ": ",
                               absl::StatusCodeToString(static_cast<absl::StatusCode>(result.error().code())),
                               ": ", result.error().message());
        }
        results[chunk] = std::move(*response.mutable_result());
        cv.notify_all();
      }
      grpc::Status status = st.rw->Finish();
      std::lock_guard<std::mutex> lock(mu);
      if (!status.ok() && error.empty()) {
        error = absl::StrCat(targets[s % targets.size()], ": ",
                             absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                             ": ", status.error_message());
      }
      if (error.empty() && !st.in_flight.empty()) error = "the stream ended before every chunk was answered";
      cv.notify_all();
    });
  }

  // Sender: chunk c goes to stream c % N, with at most `window` chunks in
  // flight per stream and the reorder buffer bounded by N x window.
  std::thread sender([&] {
    for (int64_t c = 0; c < total_chunks; ++c) {
      Stream& stream = streams[c % num_streams];
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] {
          return !error.empty() || (static_cast<int64_t>(stream.in_flight.size()) < window &&
                                    c - next_to_write < num_streams * window);
        });
        if (!error.empty()) break;
      }
      v1::BatchPredictRequest request;
      v1::BatchChunk* chunk = request.mutable_chunk();
      const int64_t first = first_row + c * chunk_rows;
      const int64_t rows = std::min(chunk_rows, shard_end - first);
      absl::Status read = source->Read(first, rows, chunk->mutable_inputs());
      std::lock_guard<std::mutex> lock(mu);
      if (!read.ok()) {
        error = std::string(read.message());
        break;
      }
      chunk->set_sequence(stream.next_sequence++);
      stream.in_flight.push_back(c);
      if (!stream.rw->Write(request)) {
        if (error.empty()) error = "the stream broke while sending";
        break;
      }
    }
    for (Stream& stream : streams) stream.rw->WritesDone();
    cv.notify_all();
  });

  // Writer (this thread): results in input order.
  Progress progress(shard_end - shard_begin, done_rows);
  absl::Status write_status;
  while (true) {
    v1::BatchChunkResult result;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return next_to_write >= total_chunks || results.count(next_to_write) || !error.empty(); });
      if (next_to_write >= total_chunks || !results.count(next_to_write) || results[next_to_write].has_error()) break;
      result = std::move(results[next_to_write]);
      results.erase(next_to_write);
    }
    write_status = (*sink)->Write(result);
    if (!write_status.ok()) break;
    done_rows += result.rows();
    progress.Update(done_rows);
    std::lock_guard<std::mutex> lock(mu);
    ++next_to_write;
    cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!write_status.ok() && error.empty()) error = std::string(write_status.message());
    if (!error.empty()) {
      for (Stream& stream : streams) stream.context->TryCancel();
    }
    cv.notify_all();
  }
  sender.join();
  for (Stream& stream : streams) stream.receiver.join();
  absl::Status finished = (*sink)->Finish();
  progress.Update(done_rows, /*final=*/true);
  if (!error.empty() || !finished.ok()) {
    return Fail(absl::StrCat(error.empty() ? std::string(finished.message()) : error, "\n", done_rows,
                             " rows written to ", (*sink)->Describe(),
                             "; rerun with --resume to continue"));
  }
  std::cerr << "done: " << done_rows << " rows written to " << (*sink)->Describe() << "\n";
  return 0;
}

}  // namespace microbatch
