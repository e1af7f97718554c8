#include "server/core/batcher.h"

#include <cstring>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"

namespace microbatch {

std::vector<int64_t> TaskOutputs::shape(size_t i) const {
  std::vector<int64_t> shape = (*batch_outputs_)[i].shape;
  shape[0] = rows_;
  return shape;
}

absl::string_view TaskOutputs::data(size_t i) const {
  const TensorView& out = (*batch_outputs_)[i];
  const size_t row_bytes = out.row_bytes();
  return absl::string_view(static_cast<const char*>(out.data) + row_offset_ * row_bytes,
                           rows_ * row_bytes);
}

DynamicBatcher::DynamicBatcher(const BatcherOptions& options,
                               std::vector<std::unique_ptr<ModelInstance>> instances)
    : options_(options), instances_(std::move(instances)) {
  clock_listener_ = options_.clock->AddListener([this] { Wake(); });
  MutexLock lock(&join_mu_);
  for (auto& instance : instances_) {
    threads_.emplace_back([this, raw = instance.get()] { ExecutorLoop(raw); });
  }
}

DynamicBatcher::~DynamicBatcher() {
  Shutdown();
  options_.clock->RemoveListener(clock_listener_);
}

void DynamicBatcher::Wake() {
  MutexLock lock(&mu_);
  work_cv_.NotifyAll();
}

absl::Status DynamicBatcher::Enqueue(BatchTask task) {
  if (task.rows < 1 || task.rows > options_.max_batch_size) {
    return absl::InvalidArgumentError(absl::StrCat("request has ", task.rows,
                                                   " rows; the model accepts 1 to ",
                                                   options_.max_batch_size, " (max_batch_size)"));
  }
  MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  const bool interactive = task.priority == Priority::kInteractive;
  if (interactive && interactive_tasks_ >= options_.max_queue_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "queue full: ", interactive_tasks_, " requests are waiting (max_queue_size ",
        options_.max_queue_size, "); retry with backoff"));
  }
  ShapeQueue& queue = queues_[task.shape_key];
  queue.rows += task.rows;
  queued_rows_ += task.rows;
  ++queued_tasks_;
  if (interactive) ++interactive_tasks_;
  const int priority = static_cast<int>(task.priority);
  queue.by_priority[priority].push_back(Queued{std::move(task), options_.clock->Now()});
  work_cv_.NotifyOne();
  return absl::OkStatus();
}

bool DynamicBatcher::TakeBatch(Batch* batch, std::vector<std::pair<Queued, absl::Status>>* dead,
                               absl::Time* wake_at) {
  const absl::Time now = options_.clock->Now();
  *wake_at = absl::InfiniteFuture();
  ShapeQueue* best = nullptr;
  std::map<std::string, ShapeQueue>::iterator best_it;
  int best_priority = 2;
  absl::Time best_time = absl::InfiniteFuture();
  for (auto it = queues_.begin(); it != queues_.end(); ++it) {
    ShapeQueue& queue = it->second;
    const int priority = queue.by_priority[0].empty() ? 1 : 0;
    const absl::Time head = queue.by_priority[priority].front().enqueued;
    absl::Time oldest = head;
    if (priority == 0 && !queue.by_priority[1].empty()) {
      oldest = std::min(oldest, queue.by_priority[1].front().enqueued);
    }
    const bool ready = stopping_ || queue.rows >= options_.max_batch_size ||
                       now - oldest >= options_.max_queue_delay;
    if (!ready) {
      *wake_at = std::min(*wake_at, oldest + options_.max_queue_delay);
      continue;
    }
    if (priority < best_priority || (priority == best_priority && head < best_time)) {
      best = &queue;
      best_it = it;
      best_priority = priority;
      best_time = head;
    }
  }
  if (best == nullptr) return false;

  batch->formed = now;
  absl::Time earliest_deadline = absl::InfiniteFuture();
  bool closed = false;
  for (int priority = 0; priority < 2 && !closed; ++priority) {
    std::deque<Queued>& tasks = best->by_priority[priority];
    while (!tasks.empty() && batch->rows + tasks.front().task.rows <= options_.max_batch_size) {
      const BatchTask& front = tasks.front().task;
      absl::Status drop;
      if (front.deadline <= now) {
        drop = absl::DeadlineExceededError(
            absl::StrCat("deadline passed after ", absl::FormatDuration(now - tasks.front().enqueued),
                         " in the queue; the request was not run"));
      } else if (now + EstimateCompute(front.rows) > front.deadline) {
        drop = absl::DeadlineExceededError(absl::StrCat(
            "the deadline leaves ", absl::FormatDuration(front.deadline - now),
            " but the model needs about ", absl::FormatDuration(EstimateCompute(front.rows)),
            "; the request was not run"));
      } else if (front.is_cancelled && front.is_cancelled()) {
        drop = absl::CancelledError("the caller cancelled; the request was not run");
      } else if (!batch->tasks.empty() &&
                 now + EstimateCompute(batch->rows + front.rows) >
                     std::min(earliest_deadline, front.deadline)) {
        closed = true;  // more rows would make a task of this batch late
        break;
      }
      Queued queued = std::move(tasks.front());
      tasks.pop_front();
      best->rows -= queued.task.rows;
      queued_rows_ -= queued.task.rows;
      --queued_tasks_;
      if (priority == 0) --interactive_tasks_;
      if (!drop.ok()) {
        dead->emplace_back(std::move(queued), std::move(drop));
      } else {
        earliest_deadline = std::min(earliest_deadline, queued.task.deadline);
        batch->rows += queued.task.rows;
        batch->tasks.push_back(std::move(queued));
      }
    }
    // Bulk rows only top up a batch whose interactive rows all fit.
    if (!tasks.empty()) break;
  }
  if (best->by_priority[0].empty() && best->by_priority[1].empty()) queues_.erase(best_it);
  return true;
}

namespace {
int RowsBucket(int64_t rows) {
  int bucket = 0;
  while ((int64_t{1} << bucket) < rows && bucket < 31) ++bucket;
  return bucket;
}
}  // namespace

absl::Duration DynamicBatcher::EstimateCompute(int64_t rows) const {
  const int bucket = RowsBucket(rows);
  if (compute_ns_[bucket] > 0) return absl::Nanoseconds(compute_ns_[bucket]);
  // The nearest smaller bucket seen, scaled linearly; else the nearest larger.
  for (int b = bucket - 1; b >= 0; --b) {
    if (compute_ns_[b] > 0) {
      return absl::Nanoseconds(compute_ns_[b] * static_cast<double>(rows) / (int64_t{1} << b));
    }
  }
  for (int b = bucket + 1; b < static_cast<int>(compute_ns_.size()); ++b) {
    if (compute_ns_[b] > 0) return absl::Nanoseconds(compute_ns_[b] * rows / (int64_t{1} << b));
  }
  return absl::ZeroDuration();
}

void DynamicBatcher::ExecutorLoop(ModelInstance* instance) {
  std::vector<AlignedBuffer> buffers;
  while (true) {
    Batch batch;
    std::vector<std::pair<Queued, absl::Status>> dead;
    {
      MutexLock lock(&mu_);
      while (true) {
        absl::Time wake_at;
        if (TakeBatch(&batch, &dead, &wake_at)) break;
        if (stopping_ && queued_tasks_ == 0) return;
        options_.clock->WaitUntil(&work_cv_, &mu_, wake_at);
      }
      if (!batch.tasks.empty()) ++busy_;
      if (queued_tasks_ > 0) work_cv_.NotifyOne();
    }
    for (auto& [queued, status] : dead) {
      BatchInfo info;
      info.queue_wait = batch.formed - queued.enqueued;
      queued.task.done(status, TaskOutputs(nullptr, 0, 0), info);
    }
    if (batch.tasks.empty()) continue;
    RunBatch(instance, batch, buffers);
    MutexLock lock(&mu_);
    --busy_;
  }
}

void DynamicBatcher::RunBatch(ModelInstance* instance, Batch& batch,
                              std::vector<AlignedBuffer>& buffers) {
  std::vector<TensorView> inputs;
  if (batch.tasks.size() == 1) {
    inputs = batch.tasks[0].task.inputs;
  } else {
    const std::vector<TensorView>& first = batch.tasks[0].task.inputs;
    if (buffers.size() < first.size()) buffers.resize(first.size());
    inputs.resize(first.size());
    for (size_t i = 0; i < first.size(); ++i) {
      size_t total = 0;
      for (const Queued& queued : batch.tasks) total += queued.task.inputs[i].byte_size;
      buffers[i].Reserve(total);
      uint8_t* out = buffers[i].data();
      for (const Queued& queued : batch.tasks) {
        const TensorView& in = queued.task.inputs[i];
        if (in.byte_size > 0) std::memcpy(out, in.data, in.byte_size);
        out += in.byte_size;
      }
      inputs[i].dtype = first[i].dtype;
      inputs[i].shape = first[i].shape;
      inputs[i].shape[0] = batch.rows;
      inputs[i].data = buffers[i].data();
      inputs[i].byte_size = total;
    }
  }

  const absl::Time start = options_.clock->Now();
  absl::StatusOr<std::vector<TensorView>> outputs;
  try {
    outputs = instance->Run(inputs);
  } catch (const std::exception& e) {
    outputs = absl::InternalError(absl::StrCat("model run failed: ", e.what()));
  }
  if (outputs.ok()) {
    for (const TensorView& out : *outputs) {
      if (out.rows() != batch.rows || (out.byte_size % static_cast<size_t>(batch.rows)) != 0) {
        outputs = absl::InternalError(absl::StrCat("the model returned an output of shape ",
                                                   ShapeToString(out.shape), " for a batch of ",
                                                   batch.rows, " rows"));
        break;
      }
    }
  }
  BatchInfo info;
  info.batch_rows = batch.rows;
  info.batch_tasks = static_cast<int64_t>(batch.tasks.size());
  info.compute = options_.clock->Now() - start;

  if (outputs.ok()) {
    MutexLock lock(&mu_);
    double& average = compute_ns_[RowsBucket(batch.rows)];
    const double ns = absl::ToDoubleNanoseconds(info.compute);
    average = average == 0 ? ns : 0.8 * average + 0.2 * ns;
  }
  if (options_.on_batch) options_.on_batch(info, outputs.status());
  int64_t offset = 0;
  for (Queued& queued : batch.tasks) {
    info.queue_wait = batch.formed - queued.enqueued;
    if (outputs.ok()) {
      queued.task.done(absl::OkStatus(), TaskOutputs(&*outputs, offset, queued.task.rows), info);
    } else {
      queued.task.done(outputs.status(), TaskOutputs(nullptr, 0, 0), info);
    }
    offset += queued.task.rows;
  }
}

void DynamicBatcher::Shutdown() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.NotifyAll();
  }
  MutexLock lock(&join_mu_);
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

DynamicBatcher::QueueStats DynamicBatcher::Stats() const {
  MutexLock lock(&mu_);
  return QueueStats{queued_tasks_, queued_rows_, busy_};
}

}  // namespace microbatch
