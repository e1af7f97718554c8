#include "server/service/batch_stream.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/log.h"
#include "server/core/text.h"
#include "server/service/convert.h"
#include "server/service/wire.h"

namespace microbatch {

constexpr char kResumeOffsetKey[] = "microbatch-resume-offset";

namespace {
// Job start/end lines: a client can open streams at any rate.
RateLimitedLog& JobLog() {
  static RateLimitedLog* log = new RateLimitedLog(20);
  return *log;
}
}  // namespace

// A chunk read from the stream and not yet written back.
struct BatchPredictReactor::Chunk {
  v1::BatchPredictRequest request;  // owns the input bytes the tasks point into
  int64_t sequence = 0;
  int64_t offset = 0;
  int64_t rows = 0;
  int64_t pending_rows = 0;  // rows not yet answered by the batcher
  absl::Status status;
  absl::Time received;
  v1::BatchPredictResponse response;
  MemoryBudget::Lease memory;  // the chunk's bytes and its results'
  bool ready() const { return pending_rows == 0; }
};

BatchPredictReactor::BatchPredictReactor(grpc::CallbackServerContext* context,
                                         ModelManager* repository, ServerMetrics* metrics,
                                         MemoryBudget* budget, BatchStreamRegistry* registry,
                                         int window)
    : context_(context),
      repository_(repository),
      metrics_(metrics),
      budget_(budget),
      registry_(registry),
      window_(std::max(1, window)) {
  // Registered before taking mu_: the registry's lock is always taken first
  // (BatchStreamRegistry::BeginDrain pins reactors under it), never inside a
  // reactor's.
  const bool registered = repository != nullptr && registry_->Add(this);
  {
    MutexLock lock(&mu_);
    if (repository == nullptr) {
      FailStream(absl::UnavailableError("the server is still loading its models; retry shortly"));
    } else if (!registered) {
      FailStream(absl::UnavailableError("the server is shutting down; send the job elsewhere"));
    }
  }
  Pump();
}

BatchPredictReactor::~BatchPredictReactor() = default;

void BatchPredictReactor::FailStream(absl::Status status) {
  if (!finish_status_) finish_status_ = std::move(status);
}

void BatchPredictReactor::OnReadDone(bool ok) {
  {
    MutexLock lock(&mu_);
    reading_ = false;
    if (!ok) {
      read_closed_ = true;
    } else if (!finish_status_) {
      AcceptChunk();
    }
  }
  Pump();
}

void BatchPredictReactor::AcceptChunk() {
  v1::BatchPredictRequest message;
  if (absl::Status decoded = ParseBody(read_buffer_, &message); !decoded.ok()) {
    FailStream(absl::InvalidArgumentError(absl::StrCat(
        "message ", framing_.next_message_index(), " of the stream: ", decoded.message())));
    return;
  }
  read_buffer_.Clear();
  absl::StatusOr<BatchFraming::Kind> kind = framing_.Classify(message);
  if (!kind.ok()) {
    FailStream(kind.status());
    return;
  }
  if (*kind == BatchFraming::Kind::kHeader) {
    const v1::BatchJobHeader& header = message.header();
    absl::StatusOr<std::shared_ptr<ServedModel>> model = repository_->Find(header.model(), header.version(), header.version_label());
    if (!model.ok()) {
      FailStream(model.status());
      return;
    }
    absl::StatusOr<std::vector<int>> selected = ResolveOutputs(
        (*model)->signature,
        std::vector<std::string>(header.outputs().begin(), header.outputs().end()));
    if (!selected.ok()) {
      FailStream(selected.status());
      return;
    }
    if (absl::Status accepted = framing_.AcceptHeader(header); !accepted.ok()) {
      FailStream(accepted);
      return;
    }
    model_ = *model;
    selected_outputs_ = std::move(*selected);
    answered_offset_ = framing_.start_offset();
    JobLog().Log(LogLevel::kInfo, "batch_job_started",
                 {{"model", model_->name}, {"version", model_->version},
                  {"job_id", ClientText(header.job_id())}, {"start_offset", header.start_offset()},
                  {"peer", context_->peer()}});
    return;
  }
  // The rows the client sent, as it counts them, even when the chunk is bad.
  absl::StatusOr<ChunkPosition> position = framing_.AcceptChunk(message.chunk());
  if (!position.ok()) {
    FailStream(position.status());
    return;
  }
  auto chunk = std::make_unique<Chunk>();
  chunk->request.Swap(&message);
  chunk->sequence = position->sequence;
  chunk->offset = position->offset;
  chunk->received = absl::Now();
  const auto& inputs = chunk->request.chunk().inputs();
  chunk->rows = position->rows;
  v1::BatchChunkResult* result = chunk->response.mutable_result();
  result->set_sequence(chunk->sequence);
  result->set_offset(chunk->offset);
  result->set_rows(chunk->rows);

  absl::StatusOr<std::vector<RequestTensor>> tensors = ToRequestTensors(inputs);
  absl::StatusOr<ValidatedInputs> validated =
      tensors.ok() ? ValidateInputs(model_->signature, *tensors, /*max_rows=*/0)
                   : absl::StatusOr<ValidatedInputs>(tensors.status());
  if (!validated.ok()) {
    chunk->status = validated.status();
    model_->metrics->RecordReject(RejectReason::kInvalidInput);
    window_chunks_.push_back(std::move(chunk));
    return;
  }
  int64_t input_bytes = 0;
  for (const TensorView& in : validated->inputs) input_bytes += static_cast<int64_t>(in.byte_size);
  absl::StatusOr<MemoryBudget::Lease> memory = budget_->Reserve(
      2 * input_bytes +
      EstimateOutputBytes(model_->signature, selected_outputs_, validated->rows, input_bytes));
  if (!memory.ok()) {
    model_->metrics->RecordReject(RejectReason::kMemoryBudget);
    FailStream(memory.status());
    return;
  }
  chunk->memory = std::move(*memory);
  // The whole chunk is one splittable bulk task: the batcher cuts it into
  // parts where batches have room (next to Predict rows, or short runs while
  // Predict traffic is active); each part's rows are copied into the chunk's
  // outputs (pre-sized by its first part) in place.
  Chunk* raw = chunk.get();
  BatchTask task;
  task.rows = validated->rows;
  task.shape_key = validated->shape_key;
  task.priority = Priority::kBulk;
  task.splittable = true;
  task.inputs = validated->inputs;
  task.is_cancelled = [this] { return cancelled_.load(); };
  task.done = [this, raw, model = model_](const absl::Status& status, const TaskOutputs& outputs,
                                         const BatchInfo& info) {
    model->metrics->RecordQueueWait(info.queue_wait);
    OnPartDone(raw, status, outputs);
  };
  chunk->pending_rows = validated->rows;
  window_chunks_.push_back(std::move(chunk));
  ++refs_;
  absl::Status queued = model_->batcher->Enqueue(std::move(task));
  if (!queued.ok()) {
    --refs_;
    raw->pending_rows = 0;
    if (raw->status.ok()) raw->status = queued;
  }
}

void BatchPredictReactor::OnPartDone(Chunk* chunk, const absl::Status& status,
                                     const TaskOutputs& outputs) {
  bool chunk_done;
  {
    MutexLock lock(&mu_);
    // The chunk's reference is held until its last part is counted, which
    // may happen on another thread as soon as mu_ is released: this part
    // holds one of its own until it is through with the reactor.
    ++refs_;
    const int64_t row_offset = outputs.task_row();
    if (!status.ok()) {
      if (chunk->status.ok()) chunk->status = status;
    } else if (chunk->status.ok()) {
      v1::BatchChunkResult* result = chunk->response.mutable_result();
      const bool first_piece = result->outputs_size() == 0;
      for (size_t i = 0; i < selected_outputs_.size(); ++i) {
        const int index = selected_outputs_[i];
        const absl::string_view bytes = outputs.data(index);
        const size_t row_bytes = outputs.rows() > 0 ? bytes.size() / outputs.rows() : 0;
        if (first_piece) {
          v1::Tensor* tensor = result->add_outputs();
          tensor->set_name(model_->signature.outputs[index].name);
          tensor->set_dtype(ToProtoDType(outputs.dtype(index)));
          std::vector<int64_t> shape = outputs.shape(index);
          shape[0] = chunk->rows;
          for (int64_t d : shape) tensor->add_shape(d);
          tensor->mutable_data()->resize(row_bytes * chunk->rows);
        }
        std::string* data = result->mutable_outputs(static_cast<int>(i))->mutable_data();
        if ((row_offset + outputs.rows()) * row_bytes <= data->size()) {
          std::memcpy(data->data() + row_offset * row_bytes, bytes.data(), bytes.size());
        } else if (chunk->status.ok()) {
          chunk->status = absl::InternalError("output row size differs between the chunk's batches");
        }
      }
    }
    chunk->pending_rows -= outputs.rows();
    chunk_done = chunk->pending_rows <= 0;
  }
  Pump();
  // This part's reference, and the chunk task's, released by its last part.
  Unref(chunk_done ? 2 : 1);
}

void BatchPredictReactor::OnWriteDone(bool ok) {
  {
    MutexLock lock(&mu_);
    writing_ = false;
    if (!window_chunks_.empty()) {
      const Chunk& written = *window_chunks_.front();
      model_->metrics->RecordRequest(RpcMethod::kBatchPredict,
                                     ok ? written.status.code() : absl::StatusCode::kCancelled,
                                     written.received);
      answered_offset_ = written.offset + written.rows;
      window_chunks_.pop_front();
    }
    if (!ok) FailStream(absl::CancelledError("the client went away"));
  }
  Pump();
}

void BatchPredictReactor::OnCancel() {
  cancelled_ = true;
  {
    MutexLock lock(&mu_);
    FailStream(absl::CancelledError("the client cancelled the stream"));
  }
  Pump();
}

void BatchPredictReactor::BeginDrain() {
  {
    MutexLock lock(&mu_);
    draining_ = true;
  }
  Pump();
}

void BatchPredictReactor::Pin() {
  MutexLock lock(&mu_);
  ++refs_;
}

void BatchPredictReactor::Unpin() { Unref(); }

void BatchPredictReactor::Unref(int64_t count) {
  bool destroy;
  {
    MutexLock lock(&mu_);
    refs_ -= count;
    destroy = refs_ == 0 && done_;
  }
  if (destroy) delete this;
}

void BatchPredictReactor::OnDone() {
  registry_->Remove(this);
  bool destroy;
  {
    MutexLock lock(&mu_);
    done_ = true;
    destroy = refs_ == 0;
    if (framing_.have_header()) {
      JobLog().Log(LogLevel::kInfo, "batch_job_ended",
          {{"model", model_->name}, {"answered_offset", answered_offset_},
           {"status", final_status_.ToString()}});
    }
  }
  if (destroy) delete this;
}

void BatchPredictReactor::Pump() {
  enum class Action { kNone, kRead, kWrite, kFinish };
  Action action = Action::kNone;
  const grpc::ByteBuffer* to_write = nullptr;
  grpc::Status finish;
  bool failed_to_encode = false;
  {
    MutexLock lock(&mu_);
    if (finished_) return;
    if (finish_status_) {
      // Errors end the stream as soon as no write is in flight; chunks read
      // but not answered are dropped, and the status says where to resume.
      if (!writing_) {
        action = Action::kFinish;
        if (framing_.have_header()) {
          context_->AddTrailingMetadata(kResumeOffsetKey, absl::StrCat(answered_offset_));
          finish = ToGrpcStatus(absl::Status(
              finish_status_->code(),
              absl::StrCat(finish_status_->message(), "; resume the job at offset ",
                           answered_offset_)));
        } else {
          finish = ToGrpcStatus(*finish_status_);
        }
      }
    } else if (!writing_ && !window_chunks_.empty() && window_chunks_.front()->ready()) {
      Chunk& front = *window_chunks_.front();
      if (!front.status.ok()) {
        front.response.mutable_result()->clear_outputs();
        v1::ChunkError* error = front.response.mutable_result()->mutable_error();
        error->set_code(static_cast<int>(front.status.code()));
        error->set_message(std::string(front.status.message()));
      }
      writing_ = true;
      action = Action::kWrite;
      write_buffer_.Clear();
      if (absl::Status s = SerializeBody(front.response, &write_buffer_); !s.ok()) {
        FailStream(s);
        writing_ = false;
        action = Action::kNone;
        failed_to_encode = true;
      }
      to_write = &write_buffer_;
    } else if (!reading_ && !read_closed_ && !draining_ &&
               static_cast<int>(window_chunks_.size()) < window_) {
      reading_ = true;
      action = Action::kRead;
    } else if (!writing_ && window_chunks_.empty() && (read_closed_ || draining_)) {
      action = Action::kFinish;
      if (read_closed_) {
        finish = grpc::Status::OK;
      } else {
        context_->AddTrailingMetadata(kResumeOffsetKey, absl::StrCat(answered_offset_));
        finish = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              absl::StrCat("the server is shutting down; resume the job at offset ",
                                           answered_offset_, " on another server"));
      }
    }
    if (action == Action::kFinish) {
      finished_ = true;
      final_status_ = absl::Status(static_cast<absl::StatusCode>(finish.error_code()),
                                   finish.error_message());
    }
  }
  switch (action) {
    case Action::kRead:
      StartRead(&read_buffer_);
      // A chunk may already be writable too.
      Pump();
      break;
    case Action::kWrite:
      StartWrite(to_write);
      Pump();
      break;
    case Action::kFinish:
      Finish(finish);
      break;
    case Action::kNone:
      if (failed_to_encode) Pump();  // now finishes with the error
      break;
  }
}

bool BatchStreamRegistry::Add(BatchPredictReactor* reactor) {
  MutexLock lock(&mu_);
  if (draining_) return false;
  reactors_.push_back(reactor);
  return true;
}

void BatchStreamRegistry::Remove(BatchPredictReactor* reactor) {
  MutexLock lock(&mu_);
  reactors_.erase(std::remove(reactors_.begin(), reactors_.end(), reactor), reactors_.end());
}

void BatchStreamRegistry::BeginDrain() {
  std::vector<BatchPredictReactor*> reactors;
  {
    MutexLock lock(&mu_);
    draining_ = true;
    reactors = reactors_;
    for (BatchPredictReactor* reactor : reactors) reactor->Pin();
  }
  for (BatchPredictReactor* reactor : reactors) {
    reactor->BeginDrain();
    reactor->Unpin();
  }
}

int64_t BatchStreamRegistry::size() {
  MutexLock lock(&mu_);
  return static_cast<int64_t>(reactors_.size());
}

bool BatchStreamRegistry::draining() {
  MutexLock lock(&mu_);
  return draining_;
}

}  // namespace microbatch
