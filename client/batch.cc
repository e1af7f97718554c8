// `microbatch batch`: see client/batch.h. The files are read and written by
// client/batch_io.h; this file runs the streams.
#include "client/batch.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/batch_io.h"
#include "microbatch/v1/inference.grpc.pb.h"

namespace microbatch {
namespace {

int Fail(const std::string& message) {
  std::cerr << "microbatch batch: " << message << "\n";
  return 1;
}

// Progress on stderr: a live line on a terminal, a plain line every
// `every` otherwise.
class Progress {
 public:
  Progress(int64_t total, int64_t done, absl::Duration every)
      : total_(total), start_done_(done), tty_(isatty(2)), every_(every) {}
  void Update(int64_t done, bool final = false) {
    const absl::Time now = absl::Now();
    if (!final && now - last_ < (tty_ ? absl::Milliseconds(200) : every_)) return;
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
  const absl::Duration every_;
  const absl::Time start_ = absl::Now();
  absl::Time last_ = absl::InfinitePast();
};

std::string StatusText(int code, const std::string& message) {
  return absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), ": ", message);
}

// One channel per target, round-robin over the addresses a target resolves to.
std::vector<std::shared_ptr<grpc::Channel>> OpenChannels(const std::vector<std::string>& targets,
                                                         const ChannelFactory& factory) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  args.SetLoadBalancingPolicyName("round_robin");
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (const std::string& target : targets) channels.push_back(factory.NewChannel(target, args));
  return channels;
}

// The model's metadata: input dtypes and the outputs to write.
absl::StatusOr<v1::ModelMetadata> FetchModel(const std::shared_ptr<grpc::Channel>& channel,
                                             const std::string& target, const BatchOptions& options) {
  auto stub = v1::Inference::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetModelMetadataRequest request;
  request.set_model(options.model);
  request.set_version(options.version);
  v1::ModelMetadata model;
  grpc::Status status = stub->GetModelMetadata(&context, request, &model);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat(target, ": ", status.error_message()));
  }
  return model;
}

// The outputs named by --outputs, in that order; all of them when none is.
absl::StatusOr<std::vector<v1::TensorMetadata>> SelectOutputs(const v1::ModelMetadata& model,
                                                              const std::vector<std::string>& names) {
  if (names.empty()) return std::vector<v1::TensorMetadata>(model.outputs().begin(), model.outputs().end());
  std::vector<v1::TensorMetadata> outputs;
  for (const std::string& name : names) {
    auto it = std::find_if(model.outputs().begin(), model.outputs().end(),
                           [&](const v1::TensorMetadata& out) { return out.name() == name; });
    if (it == model.outputs().end()) {
      return absl::InvalidArgumentError(absl::StrCat("model '", model.name(), "' has no output '", name, "'"));
    }
    outputs.push_back(*it);
  }
  return outputs;
}

// The rows this shard covers: [begin, end) of the input.
struct RowRange {
  int64_t begin = 0;
  int64_t end = 0;
};

RowRange ShardRows(int64_t rows, const BatchOptions& options) {
  return {rows * options.shard_index / options.shard_count, rows * (options.shard_index + 1) / options.shard_count};
}

// One BatchPredict stream to one target; results come back in its send order.
struct Stream {
  std::string target;
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::BatchPredictRequest, v1::BatchPredictResponse>> rw;
  std::deque<int64_t> in_flight;  // global chunk indices, send order
  int64_t next_sequence = 0;
  std::thread receiver;
};

// Rows [first_row, end_row) sent as chunks of `chunk_rows`: chunk c goes to
// stream c % N, with at most `window` chunks in flight per stream and the
// reorder buffer bounded by N x window; results are written in input order.
class BatchJob {
 public:
  BatchJob(const BatchOptions& options, std::vector<std::shared_ptr<grpc::Channel>> channels,
           std::vector<v1::TensorMetadata> outputs, std::string model, RowSource* source, ResultSink* sink,
           int64_t first_row, int64_t end_row)
      : options_(options),
        channels_(std::move(channels)),
        outputs_(std::move(outputs)),
        model_(std::move(model)),
        source_(source),
        sink_(sink),
        first_row_(first_row),
        end_row_(end_row),
        total_chunks_((end_row - first_row + options.chunk_rows - 1) / options.chunk_rows),
        streams_(static_cast<size_t>(options.streams > 0 ? options.streams
                                                         : static_cast<int64_t>(options.targets.size()))) {}

  // Sends every chunk and writes every result; `*written_rows` grows by the
  // rows written, `progress` follows it. The first error (in-band chunk error, stream
  // status, read or write failure) ends the job.
  absl::Status Run(int64_t* written_rows, Progress* progress) {
    for (size_t s = 0; s < streams_.size(); ++s) OpenStream(s);
    std::thread sender([this] { SendChunks(); });
    const absl::Status write_status = WriteResults(written_rows, progress);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!write_status.ok() && error_.empty()) error_ = std::string(write_status.message());
      if (!error_.empty()) {
        for (Stream& stream : streams_) stream.context->TryCancel();
      }
      cv_.notify_all();
    }
    sender.join();
    for (Stream& stream : streams_) stream.receiver.join();
    std::lock_guard<std::mutex> lock(mu_);
    return error_.empty() ? absl::OkStatus() : absl::UnavailableError(error_);
  }

 private:
  // Opens stream `s`, sends the job header and starts its receiver.
  void OpenStream(size_t s) {
    Stream& stream = streams_[s];
    stream.target = options_.targets[s % options_.targets.size()];
    stream.context = std::make_unique<grpc::ClientContext>();
    auto stub = v1::Inference::NewStub(channels_[s % channels_.size()]);
    stream.rw = stub->BatchPredict(stream.context.get());
    v1::BatchPredictRequest header;
    header.mutable_header()->set_model(model_);
    header.mutable_header()->set_version(options_.version);
    header.mutable_header()->set_job_id(options_.job_id);
    header.mutable_header()->set_start_offset(first_row_);
    for (const auto& out : outputs_) header.mutable_header()->add_outputs(out.name());
    stream.rw->Write(header);
    stream.receiver = std::thread([this, s] { ReceiveResults(&streams_[s]); });
  }

  // Receiver of one stream: files each result under its chunk index.
  void ReceiveResults(Stream* stream) {
    v1::BatchPredictResponse response;
    while (stream->rw->Read(&response)) {
      std::lock_guard<std::mutex> lock(mu_);
      if (stream->in_flight.empty()) {
        error_ = "the server answered a chunk that was never sent";
        break;
      }
      const int64_t chunk = stream->in_flight.front();
      stream->in_flight.pop_front();
      const v1::BatchChunkResult& result = response.result();
      if (result.has_error() && error_.empty()) {
        const int64_t first = first_row_ + chunk * options_.chunk_rows;
        error_ = absl::StrCat("rows ", first, "..", first + result.rows() - 1, ": ",
                              StatusText(result.error().code(), result.error().message()));
      }
      results_[chunk] = std::move(*response.mutable_result());
      cv_.notify_all();
    }
    grpc::Status status = stream->rw->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    if (!status.ok() && error_.empty()) {
      error_ = absl::StrCat(stream->target, ": ", StatusText(status.error_code(), status.error_message()));
    }
    if (error_.empty() && !stream->in_flight.empty()) error_ = "the stream ended before every chunk was answered";
    cv_.notify_all();
  }

  // Sender: reads and sends every chunk within the windows, then half-closes
  // every stream.
  void SendChunks() {
    const int64_t num_streams = static_cast<int64_t>(streams_.size());
    for (int64_t c = 0; c < total_chunks_; ++c) {
      Stream& stream = streams_[c % num_streams];
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] {
          return !error_.empty() || (static_cast<int64_t>(stream.in_flight.size()) < options_.window &&
                                     c - next_to_write_ < num_streams * options_.window);
        });
        if (!error_.empty()) break;
      }
      if (!SendChunk(c, &stream)) break;
    }
    for (Stream& stream : streams_) stream.rw->WritesDone();
    cv_.notify_all();
  }

  // False (with error_ set) when the chunk could not be read or sent.
  bool SendChunk(int64_t c, Stream* stream) {
    v1::BatchPredictRequest request;
    v1::BatchChunk* chunk = request.mutable_chunk();
    const int64_t first = first_row_ + c * options_.chunk_rows;
    const int64_t rows = std::min(options_.chunk_rows, end_row_ - first);
    absl::Status read = source_->Read(first, rows, chunk->mutable_inputs());
    std::lock_guard<std::mutex> lock(mu_);
    if (!read.ok()) {
      error_ = std::string(read.message());
      return false;
    }
    chunk->set_sequence(stream->next_sequence++);
    stream->in_flight.push_back(c);
    if (!stream->rw->Write(request)) {
      if (error_.empty()) error_ = "the stream broke while sending";
      return false;
    }
    return true;
  }

  // Writer (the calling thread): results in input order until the last chunk
  // or the first error.
  absl::Status WriteResults(int64_t* written_rows, Progress* progress) {
    while (true) {
      v1::BatchChunkResult result;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] {
          return next_to_write_ >= total_chunks_ || results_.count(next_to_write_) || !error_.empty();
        });
        if (next_to_write_ >= total_chunks_ || !results_.count(next_to_write_) ||
            results_[next_to_write_].has_error()) {
          return absl::OkStatus();
        }
        result = std::move(results_[next_to_write_]);
        results_.erase(next_to_write_);
      }
      if (absl::Status s = sink_->Write(result); !s.ok()) return s;
      *written_rows += result.rows();
      progress->Update(*written_rows);
      std::lock_guard<std::mutex> lock(mu_);
      ++next_to_write_;
      cv_.notify_all();
    }
  }

  const BatchOptions& options_;
  const std::vector<std::shared_ptr<grpc::Channel>> channels_;
  const std::vector<v1::TensorMetadata> outputs_;
  const std::string model_;
  RowSource* const source_;
  ResultSink* const sink_;
  const int64_t first_row_;
  const int64_t end_row_;
  const int64_t total_chunks_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Stream> streams_;                       // in_flight, next_sequence guarded by mu_
  std::map<int64_t, v1::BatchChunkResult> results_;  // out of order, bounded by the windows
  std::string error_;                                 // the first error
  int64_t next_to_write_ = 0;
};

}  // namespace

int RunBatch(const BatchOptions& options) {
  absl::StatusOr<ChannelFactory> factory = ChannelFactory::Create(options.tls);
  if (!factory.ok()) return Fail(std::string(factory.status().message()));
  const std::vector<std::shared_ptr<grpc::Channel>> channels = OpenChannels(options.targets, *factory);
  absl::StatusOr<v1::ModelMetadata> model = FetchModel(channels[0], options.targets[0], options);
  if (!model.ok()) return Fail(std::string(model.status().message()));
  absl::StatusOr<std::vector<v1::TensorMetadata>> outputs = SelectOutputs(*model, options.outputs);
  if (!outputs.ok()) return Fail(std::string(outputs.status().message()));
  // The input is checked before anything is written.
  absl::StatusOr<std::unique_ptr<RowSource>> source = OpenRowSource(options.inputs, *model);
  if (!source.ok()) return Fail(std::string(source.status().message()));
  const RowRange shard = ShardRows((*source)->rows(), options);

  // The output, and where to resume.
  if (absl::Status s = CreateParentDirectories(options.output); !s.ok()) return Fail(std::string(s.message()));
  int64_t done_rows = 0;
  absl::StatusOr<std::unique_ptr<ResultSink>> sink =
      ResultSink::Open(options.output, *outputs, options.resume, &done_rows);
  if (!sink.ok()) return Fail(std::string(sink.status().message()));
  done_rows = std::min(done_rows, shard.end - shard.begin);
  if (absl::Status s = (*sink)->Start(done_rows); !s.ok()) return Fail(std::string(s.message()));
  if (done_rows > 0) std::cerr << "resuming after " << done_rows << " rows already in the output\n";

  Progress progress(shard.end - shard.begin, done_rows, absl::Seconds(options.progress_seconds));
  BatchJob job(options, channels, *outputs, model->name(), source->get(), sink->get(), shard.begin + done_rows,
               shard.end);
  const absl::Status run = job.Run(&done_rows, &progress);
  const absl::Status finished = (*sink)->Finish();
  progress.Update(done_rows, /*final=*/true);
  if (!run.ok() || !finished.ok()) {
    return Fail(absl::StrCat(run.ok() ? finished.message() : run.message(), "\n", done_rows,
                             " rows written to ", (*sink)->Describe(), "; rerun with --resume to continue"));
  }
  std::cerr << "done: " << done_rows << " rows written to " << (*sink)->Describe() << "\n";
  return 0;
}

}  // namespace microbatch
