#include "server/core/batcher.h"

#include "server/core/signature.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <utility>

#include "absl/strings/cord.h"
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

namespace {

absl::Status DeadlineTooShort(absl::Duration left, absl::Duration model_time, int64_t rows,
                              absl::Duration margin) {
  return absl::DeadlineExceededError(absl::StrCat(
      "the deadline leaves ", absl::FormatDuration(left), " but the model needs about ",
      absl::FormatDuration(model_time), " for ", rows, rows == 1 ? " row" : " rows",
      " and the server keeps ", absl::FormatDuration(margin),
      " for the answer's way back; the request was not run"));
}

}  // namespace

DynamicBatcher::DynamicBatcher(const BatcherOptions& options,
                               std::vector<std::unique_ptr<ModelInstance>> instances)
    : DynamicBatcher(options, std::move(instances), nullptr) {}

DynamicBatcher::DynamicBatcher(const BatcherOptions& options,
                               std::vector<std::unique_ptr<ModelInstance>> instances,
                               InstanceWarmUp warm_up)
    : options_(options), instances_(std::move(instances)), warm_up_(std::move(warm_up)) {
  clock_listener_ = options_.clock->AddListener([this] { Wake(); });
  {
    MutexLock lock(&mu_);
    plan_.free_at.assign(std::max<size_t>(1, instances_.size()), absl::InfinitePast());
    instance_running_.assign(instances_.size(), 0);
    warm_up_status_.assign(instances_.size(), absl::OkStatus());
  }
  MutexLock lock(&join_mu_);
  for (size_t i = 0; i < instances_.size(); ++i) {
    threads_.emplace_back([this, i] {
      if (warm_up_) WarmUpOnThisThread(i);
      ExecutorLoop(i);
    });
  }
}

absl::StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(
    const BatcherOptions& options, std::vector<std::unique_ptr<ModelInstance>> instances,
    InstanceWarmUp warm_up) {
  std::unique_ptr<DynamicBatcher> batcher(
      new DynamicBatcher(options, std::move(instances), std::move(warm_up)));
  if (!batcher->warm_up_) return batcher;
  absl::Status first_error;
  {
    MutexLock lock(&batcher->mu_);
    while (batcher->warmed_up_ < batcher->instances_.size()) {
      batcher->warmed_up_cv_.Wait(&batcher->mu_);
    }
    for (const absl::Status& status : batcher->warm_up_status_) {
      if (!status.ok()) {
        first_error = status;
        break;
      }
    }
  }
  batcher->warm_up_ = nullptr;  // it may refer to the caller's locals
  if (!first_error.ok()) {
    batcher->Shutdown();
    return first_error;
  }
  return batcher;
}

void DynamicBatcher::WarmUpOnThisThread(size_t index) {
  absl::Status status;
  try {
    status = warm_up_(index, *instances_[index]);
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("warm-up failed: ", e.what()));
  }
  MutexLock lock(&mu_);
  warm_up_status_[index] = std::move(status);
  ++warmed_up_;
  warmed_up_cv_.NotifyAll();
}

DynamicBatcher::~DynamicBatcher() {
  Shutdown();
  options_.clock->RemoveListener(clock_listener_);
}

void DynamicBatcher::NotifyWork() {
  // Every instance runs a batch: whoever frees one looks at the queue next
  // (an executor loops back to it, an inline run wakes them all).
  if (busy_ >= static_cast<int64_t>(instances_.size())) return;
  // An executor whose instance an inline run holds would swallow a single
  // notification.
  if (inline_runs_ > 0) {
    work_cv_.NotifyAll();
  } else {
    work_cv_.NotifyOne();
  }
}

void DynamicBatcher::Wake() {
  MutexLock lock(&mu_);
  work_cv_.NotifyAll();
}

absl::Status DynamicBatcher::Enqueue(BatchTask task) {
  if (task.splittable && task.priority != Priority::kBulk) {
    return absl::InvalidArgumentError("only bulk tasks can be split across batches");
  }
  if (task.rows < 1 || (task.rows > options_.max_batch_size && !task.splittable)) {
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
  const absl::Time now = options_.clock->Now();
  EndIdleGap(now);
  bool probe = false;
  if (interactive) {
    last_interactive_ = now;
    absl::Status admitted = Admit(task, now, &probe);
    if (!admitted.ok()) return admitted;
    if (TryRunInline(task, now, probe)) return absl::OkStatus();
  }
  ShapeQueue& queue = queues_[task.shape_key];
  queue.rows += task.rows;
  queued_rows_ += task.rows;
  ++queued_tasks_;
  if (interactive) {
    ++interactive_tasks_;
    interactive_rows_ += task.rows;
  }
  const int priority = static_cast<int>(task.priority);
  queue.by_priority[priority].push_back(Queued{std::move(task), now, probe, 0});
  if (inline_runs_ > 0) queued_behind_inline_ = now;
  enqueued_.fetch_add(1, std::memory_order_release);
  NotifyWork();
  return absl::OkStatus();
}

absl::Status DynamicBatcher::Admit(const BatchTask& task, absl::Time now, bool* probe) {
  *probe = false;
  if (task.deadline <= now) {
    // Never run, not even as a probe of the estimate: nobody awaits it.
    return absl::DeadlineExceededError(absl::StrCat("the deadline passed ", absl::FormatDuration(now - task.deadline),
                                                    " before the request was queued; the request was not run"));
  }
  const absl::Duration alone = EstimateCompute(task.rows);
  // Refused only on the estimate's word: when that word is old and nothing
  // else is queued or running, run the task to measure the model again.
  auto probe_instead = [&] {
    if (busy_ > 0 || interactive_tasks_ > 0 || !running_ends_.empty() ||
        now - last_batch_end_ < options_.estimate_probe_interval) {
      return false;
    }
    last_batch_end_ = now;  // one probe per interval, even if it is dropped
    PlanTask(task, now, /*commit=*/true);
    *probe = true;
    return true;
  };
  const absl::Duration margin = MarginFor(task.deadline, now);
  if (task.deadline != absl::InfiniteFuture() && alone > absl::ZeroDuration() &&
      now + alone + margin > task.deadline) {
    if (probe_instead()) return absl::OkStatus();
    return DeadlineTooShort(task.deadline - now, alone, task.rows, margin);
  }
  absl::Time start;
  const absl::Time end = PlanTask(task, now, /*commit=*/false, &start);
  // Behind a queued batch, a new batch that would start after half the
  // task's time has gone could only be small: under overload its slot is
  // worth more to the larger batches that later arrivals form.
  const bool worth_a_batch = !plan_.open || start == absl::InfinitePast() ||
                             start - now <= (task.deadline - now) / 2;
  if ((end + margin <= task.deadline && worth_a_batch) ||
      alone == absl::ZeroDuration()) {
    PlanTask(task, now, /*commit=*/true);
    return absl::OkStatus();
  }
  if (probe_instead()) return absl::OkStatus();
  absl::Status overloaded = absl::ResourceExhaustedError(absl::StrCat(
      "overloaded: ", interactive_tasks_, " requests (", interactive_rows_,
      " rows) are queued and ", running_ends_.size(),
      " batches are running; the answer would come about ", absl::FormatDuration(end - now),
      " from now, after the deadline (", absl::FormatDuration(task.deadline - now),
      " left); retry later or elsewhere"));
  overloaded.SetPayload(kOverloadPayload, absl::Cord("1"));
  return overloaded;
}

absl::Time DynamicBatcher::LatestStart(const ShapeQueue& queue) const {
  absl::Time latest = absl::InfiniteFuture();
  for (const Queued& queued : queue.by_priority[0]) {
    const absl::Time deadline = queued.task.deadline;
    if (deadline != absl::InfiniteFuture()) latest = std::min(latest, deadline - MarginFor(deadline, queued.enqueued));
  }
  if (latest == absl::InfiniteFuture()) return latest;
  // Early by the executor's wake-up latency (up to about a millisecond on a
  // busy VM), so that the batch is not formed a hair too late for its task.
  constexpr absl::Duration kWakeUpSlack = absl::Milliseconds(1);
  return latest - EstimateCompute(std::min(queue.rows, options_.max_batch_size)) - kWakeUpSlack;
}

absl::Duration DynamicBatcher::MarginFor(absl::Time deadline, absl::Time now) const {
  return std::max(absl::ZeroDuration(), std::min(options_.deadline_margin, (deadline - now) / 4));
}

absl::Time DynamicBatcher::PlanTask(const BatchTask& task, absl::Time now, bool commit,
                                    absl::Time* new_batch_start) {
  if (new_batch_start != nullptr) *new_batch_start = absl::InfinitePast();
  Plan& plan = plan_;
  if (plan.open && plan.shape_key == task.shape_key &&
      plan.rows + task.rows <= options_.max_batch_size) {
    const absl::Time end = plan.start + EstimateCompute(plan.rows + task.rows);
    const absl::Time deadline = std::min(plan.earliest_deadline, task.deadline);
    if (end + MarginFor(deadline, now) <= deadline) {
      if (commit) {
        plan.rows += task.rows;
        plan.earliest_deadline = std::min(plan.earliest_deadline, task.deadline);
      }
      return end;
    }
  }
  // A new batch, after the open one, on the instance that frees up first.
  const absl::Time open_end = plan.open ? plan.start + EstimateCompute(plan.rows) : absl::Time();
  auto free_at = [&](size_t i) {
    return plan.open && i == plan.instance ? open_end : plan.free_at[i];
  };
  size_t instance = 0;
  for (size_t i = 1; i < plan.free_at.size(); ++i) {
    if (free_at(i) < free_at(instance)) instance = i;
  }
  const absl::Time start = std::max(now, free_at(instance));
  const absl::Time end = start + EstimateCompute(task.rows);
  if (new_batch_start != nullptr) *new_batch_start = start;
  if (commit) {
    if (plan.open) plan.free_at[plan.instance] = open_end;
    plan.open = true;
    plan.shape_key = task.shape_key;
    plan.rows = task.rows;
    plan.start = start;
    plan.earliest_deadline = task.deadline;
    plan.instance = instance;
  }
  return end;
}

void DynamicBatcher::Replan(absl::Time now) {
  plan_.free_at.assign(std::max<size_t>(1, instances_.size()), now);
  size_t i = 0;
  for (absl::Time end : running_ends_) {
    if (i < plan_.free_at.size()) plan_.free_at[i++] = std::max(now, end);
  }
  plan_.open = false;
  for (auto& [key, queue] : queues_) {
    for (const Queued& queued : queue.by_priority[0]) PlanTask(queued.task, now, /*commit=*/true);
  }
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
    bool ready = stopping_ || queue.rows >= options_.max_batch_size || now - oldest >= options_.max_queue_delay;
    if (!ready) {
      // Waiting for more rows must not make a queued request miss its
      // deadline: the batch starts when the earliest one leaves no more room.
      const absl::Time latest_start = LatestStart(queue);
      ready = now >= latest_start;
      if (!ready) {
        *wake_at = std::min({*wake_at, oldest + options_.max_queue_delay, latest_start});
        continue;
      }
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
  int64_t interactive_rows = 0;
  bool closed = false;
  for (int priority = 0; priority < 2 && !closed; ++priority) {
    std::deque<Queued>& tasks = best->by_priority[priority];
    while (!tasks.empty()) {
      Queued& head = tasks.front();
      const BatchTask& front = head.task;
      int64_t room = options_.max_batch_size - batch->rows;
      if (priority == 1) room = BulkRoom(interactive_rows, batch->rows, room, now);
      if (room <= 0) break;
      int64_t take = front.rows;
      if (take > room) {
        if (!front.splittable) break;
        take = room;  // the rest stays at the head of the queue
      }
      absl::Status drop;
      if (front.deadline <= now) {
        drop = absl::DeadlineExceededError(
            absl::StrCat("deadline passed after ", absl::FormatDuration(now - head.enqueued),
                         " in the queue; the request was not run"));
      } else if (const absl::Duration alone = EstimateCompute(take), margin = MarginFor(front.deadline, now);
                 !head.probe && now + alone + margin > front.deadline) {
        drop = DeadlineTooShort(front.deadline - now, alone, take, margin);
      } else if (front.is_cancelled && front.is_cancelled()) {
        drop = absl::CancelledError("the caller cancelled; the request was not run");
      } else if (const absl::Time due = std::min(earliest_deadline, front.deadline);
                 !batch->tasks.empty() && now + EstimateCompute(batch->rows + take) + MarginFor(due, now) > due) {
        closed = true;  // more rows would make a task of this batch late
        break;
      }
      Queued queued;
      if (!drop.ok() || take == front.rows) {
        queued = std::move(head);  // the whole (rest of the) task
        tasks.pop_front();
        --queued_tasks_;
        if (priority == 0) {
          --interactive_tasks_;
          interactive_rows_ -= queued.task.rows;
        }
      } else {
        queued = SplitHead(&head, take);
      }
      best->rows -= queued.task.rows;
      queued_rows_ -= queued.task.rows;
      if (!drop.ok()) {
        dead->emplace_back(std::move(queued), std::move(drop));
      } else {
        earliest_deadline = std::min(earliest_deadline, queued.task.deadline);
        batch->rows += queued.task.rows;
        if (priority == 0) interactive_rows += queued.task.rows;
        batch->tasks.push_back(std::move(queued));
      }
    }
    // Bulk rows only top up a batch whose interactive rows all fit.
    if (!tasks.empty()) break;
  }
  if (best->by_priority[0].empty() && best->by_priority[1].empty()) queues_.erase(best_it);
  if (!batch->tasks.empty()) {
    batch->estimated_end = now + EstimateCompute(batch->rows);
    running_ends_.insert(batch->estimated_end);
  }
  Replan(now);
  return true;
}

DynamicBatcher::Queued DynamicBatcher::SplitHead(Queued* head, int64_t rows) {
  Queued part;
  part.enqueued = head->enqueued;
  part.probe = head->probe;
  part.task_row = head->task_row;
  BatchTask& rest = head->task;
  part.task.rows = rows;
  part.task.splittable = true;
  part.task.shape_key = rest.shape_key;
  part.task.priority = rest.priority;
  part.task.deadline = rest.deadline;
  part.task.is_cancelled = rest.is_cancelled;
  part.task.done = rest.done;
  part.task.inputs.reserve(rest.inputs.size());
  for (TensorView& in : rest.inputs) {
    if (IsAbsent(in)) {
      part.task.inputs.push_back(in);
      continue;
    }
    const size_t row_bytes = in.row_bytes();
    TensorView slice = in;
    slice.shape[0] = rows;
    slice.byte_size = static_cast<size_t>(rows) * row_bytes;
    in.data = static_cast<const char*>(in.data) + slice.byte_size;
    in.shape[0] -= rows;
    in.byte_size -= slice.byte_size;
    part.task.inputs.push_back(std::move(slice));
  }
  rest.rows -= rows;
  head->task_row += rows;
  return part;
}

int64_t DynamicBatcher::BulkRoom(int64_t interactive_rows, int64_t batch_rows, int64_t room,
                                 absl::Time now) const {
  if (room <= 0 || options_.bulk_run_budget <= absl::ZeroDuration() || cost_points_.empty() ||
      now - last_interactive_ > options_.bulk_yield_window) {
    return room;
  }
  // Another instance stays idle while this batch runs: interactive tasks go
  // there, so this batch need not be short.
  if (busy_ + 1 < static_cast<int64_t>(instances_.size())) return room;
  // The largest count whose batch stays within budget of its interactive rows.
  const absl::Duration limit = EstimateCompute(interactive_rows) + options_.bulk_run_budget;
  int64_t lo = 0;
  int64_t hi = room;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (EstimateCompute(batch_rows + mid) <= limit) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return batch_rows == 0 ? std::max<int64_t>(lo, 1) : lo;
}

namespace {
int RowsBucket(int64_t rows) {
  int bucket = 0;
  while ((int64_t{1} << bucket) < rows && bucket < 31) ++bucket;
  return bucket;
}
}  // namespace

void DynamicBatcher::CostWindow::Add(double batch_rows, double batch_ns) {
  rows[next] = batch_rows;
  ns[next] = batch_ns;
  next = (next + 1) % kSize;
  count = std::min(count + 1, kSize);
  estimate = Compute();
}

std::pair<double, double> DynamicBatcher::CostWindow::Compute() const {
  auto median = [](std::array<double, kSize> values, int n) {
    // An insertion sort of at most kSize values (std::sort here made GCC 12
    // warn of out-of-bounds subscripts it cannot reach).
    for (int i = 1; i < n; ++i) {
      for (int j = i; j > 0 && values[j - 1] > values[j]; --j) std::swap(values[j - 1], values[j]);
    }
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  };
  double mean_rows = 0;
  for (int i = 0; i < count; ++i) mean_rows += rows[i];
  mean_rows /= count;
  const double mid = median(ns, count);
  std::array<double, kSize> deviations{};
  for (int i = 0; i < count; ++i) deviations[i] = std::abs(ns[i] - mid);
  // 1.4826 * MAD estimates the standard deviation of normal samples.
  return {mean_rows, mid + 2 * 1.4826 * median(deviations, count)};
}

void DynamicBatcher::UpdateEstimates() {
  cost_points_.clear();
  for (const CostWindow& window : cost_) {
    if (window.count > 0) cost_points_.push_back(window.estimate);
  }
}

absl::Duration DynamicBatcher::EstimateCompute(int64_t rows) const {
  // Piecewise linear through the size classes seen (ascending rows);
  // proportional to rows below the first and beyond the last.
  if (cost_points_.empty()) return absl::ZeroDuration();
  const double r = static_cast<double>(rows);
  size_t above = 0;
  while (above < cost_points_.size() && cost_points_[above].first <= r) ++above;
  double ns;
  if (above == 0) {
    ns = cost_points_[0].second * r / cost_points_[0].first;
  } else if (above == cost_points_.size()) {
    ns = cost_points_.back().second * r / cost_points_.back().first;
  } else {
    const auto& [rows_lo, ns_lo] = cost_points_[above - 1];
    const auto& [rows_hi, ns_hi] = cost_points_[above];
    ns = ns_lo + (ns_hi - ns_lo) * (r - rows_lo) / (rows_hi - rows_lo);
  }
  return absl::Nanoseconds(std::max(0.0, ns));
}

bool DynamicBatcher::TryRunInline(BatchTask& task, absl::Time now, bool probe) {
  if (!task.may_run_inline || options_.inline_max_compute <= absl::ZeroDuration() || stopping_ ||
      queued_tasks_ > 0 ||
      options_.max_queue_delay > absl::ZeroDuration() || cost_points_.empty() ||
      EstimateCompute(task.rows) > options_.inline_max_compute) {
    return false;
  }
  int64_t bytes = 0;
  for (const TensorView& input : task.inputs) bytes += static_cast<int64_t>(input.byte_size);
  if (bytes > options_.inline_max_bytes) return false;
  const size_t index = IdleInstance();
  if (index == instances_.size()) return false;
  SetRunning(index, true);
  ++inline_runs_;
  Batch batch;
  batch.formed = now;
  batch.rows = task.rows;
  batch.tasks.push_back(Queued{std::move(task), now, probe, 0});
  batch.estimated_end = now + EstimateCompute(batch.rows);
  running_ends_.insert(batch.estimated_end);
  Replan(now);  // the plan no longer holds the task: it is running
  mu_.Unlock();
  std::vector<AlignedBuffer> buffers;  // one task: its inputs are the batch's
  RunBatch(index, batch, buffers);
  mu_.Lock();
  DrainInline(buffers);
  --inline_runs_;
  if (busy_ == 0 && queued_tasks_ == 0) StartIdleGap(options_.clock->Now());
  // Polling executors see the instance free again (and, when work queued up
  // meanwhile, that work); a sleeping one is woken for that work or Shutdown,
  // or, when none polls, to poll for the request that follows (idle_spin).
  inline_ended_.fetch_add(1, std::memory_order_release);
  if (queued_tasks_ > 0 || stopping_) {
    enqueued_.fetch_add(1, std::memory_order_release);
    work_cv_.NotifyAll();
  } else if (polling_executors_ == 0 && sleeping_executors_ > 0 && InlineKeepAlive(options_.clock->Now())) {
    work_cv_.NotifyOne();
  }
  return true;
}

void DynamicBatcher::DrainInline(std::vector<AlignedBuffer>& buffers) {
  for (int64_t run = 0; run < options_.inline_max_drain_batches; ++run) {
    if (stopping_ || queued_tasks_ == 0) return;
    const size_t index = IdleInstance();
    if (index == instances_.size()) return;
    if (EstimateCompute(std::min(queued_rows_, options_.max_batch_size)) > options_.inline_max_compute) {
      return;  // too long for the caller's thread: the executor takes it
    }
    Batch batch;
    std::vector<std::pair<Queued, absl::Status>> dead;
    absl::Time wake_at;
    if (!TakeBatch(&batch, &dead, &wake_at)) return;
    if (!batch.tasks.empty()) SetRunning(index, true);
    mu_.Unlock();
    AnswerDropped(batch.formed, dead);
    if (!batch.tasks.empty()) RunBatch(index, batch, buffers);
    mu_.Lock();
  }
}

bool DynamicBatcher::InlineKeepAlive(absl::Time now) const {
  return options_.idle_spin > absl::ZeroDuration() && PollingPays(now) &&
         now - queued_behind_inline_ >= 10 * options_.idle_spin;
}

bool DynamicBatcher::PollingPays(absl::Time now) const {
  return idle_gaps_short_ &&
         (!cores_found_busy_ || now - contention_measured_ >= kContendedPollPause * options_.idle_spin);
}

absl::Duration DynamicBatcher::PollSample() const { return kPollSample * options_.idle_spin; }

void DynamicBatcher::RecordPoll(absl::Duration polled, absl::Duration given_away, absl::Time now) {
  polled_ += polled;
  given_away_ += given_away;
  if (polled_ < PollSample()) return;
  cores_found_busy_ = given_away_ * 10 > polled_ * 9;
  contention_measured_ = now;
  polled_ = absl::ZeroDuration();
  given_away_ = absl::ZeroDuration();
}

namespace {
// The median of the first `n` of `values`: the lower middle one of an even count.
template <size_t N>
absl::Duration MedianOf(std::array<absl::Duration, N> values, int n) {
  std::nth_element(values.begin(), values.begin() + (n - 1) / 2, values.begin() + n);
  return values[(n - 1) / 2];
}
}  // namespace

void DynamicBatcher::StartIdleGap(absl::Time now) {
  idle_since_ = now;
  if (busy_since_ == absl::InfinitePast()) return;
  busy_periods_[busy_period_next_] = now - busy_since_;
  busy_since_ = absl::InfinitePast();
  busy_period_next_ = (busy_period_next_ + 1) % kIdleGaps;
  busy_period_count_ = std::min(busy_period_count_ + 1, kIdleGaps);
}

void DynamicBatcher::EndIdleGap(absl::Time now) {
  if (idle_since_ == absl::InfinitePast()) return;
  idle_gaps_[idle_gap_next_] = now - idle_since_;
  idle_since_ = absl::InfinitePast();
  busy_since_ = now;
  idle_gap_next_ = (idle_gap_next_ + 1) % kIdleGaps;
  idle_gap_count_ = std::min(idle_gap_count_ + 1, kIdleGaps);
  const absl::Duration gap = MedianOf(idle_gaps_, idle_gap_count_);
  // Gaps up to a quarter of the busy periods between them are worth polling
  // through too, within 3/4 of idle_spin.
  idle_gaps_short_ = gap <= options_.idle_spin / 4 ||
                     (gap <= options_.idle_spin * 3 / 4 && busy_period_count_ > 0 &&
                      gap * 4 <= MedianOf(busy_periods_, busy_period_count_));
}

size_t DynamicBatcher::IdleInstance() const {
  size_t index = 0;
  while (index < instance_running_.size() && instance_running_[index]) ++index;
  return index;
}

void DynamicBatcher::SetRunning(size_t index, bool running) {
  instance_running_[index] = running ? 1 : 0;
  busy_ += running ? 1 : -1;
}

void DynamicBatcher::AnswerDropped(absl::Time formed, std::vector<std::pair<Queued, absl::Status>>& dead) {
  for (auto& [queued, status] : dead) {
    BatchInfo info;
    info.queue_wait = formed - queued.enqueued;
    queued.task.done(status, TaskOutputs(nullptr, 0, queued.task.rows, queued.task_row), info);
  }
}

void DynamicBatcher::ExecutorLoop(size_t index) {
  std::vector<AlignedBuffer> buffers;
  while (true) {
    Batch batch;
    std::vector<std::pair<Queued, absl::Status>> dead;
    {
      MutexLock lock(&mu_);
      // Polls (BatcherOptions::idle_spin) until spin_until, which traffic
      // (a batch run here, an inline run ended) moves on.
      const bool polls = options_.idle_spin > absl::ZeroDuration();
      absl::Time spin_until = polls ? options_.clock->Now() + options_.idle_spin : absl::InfinitePast();
      while (true) {
        const bool claimed = instance_running_[index] != 0;  // by an inline run
        absl::Time wake_at = absl::InfiniteFuture();
        if (!claimed && TakeBatch(&batch, &dead, &wake_at)) break;
        if (stopping_ && queued_tasks_ == 0) return;
        const absl::Time now = options_.clock->Now();
        // Free to poll, with nothing to run: the gap to the next task starts.
        if (busy_ == 0 && queued_tasks_ == 0 && idle_since_ == absl::InfinitePast()) StartIdleGap(now);
        const bool keep_alive = InlineKeepAlive(now);
        if (now < spin_until && (claimed ? keep_alive : queued_tasks_ == 0 && PollingPays(now))) {
          // Back under mu_ on traffic: a task queued, or (keep_alive) an
          // inline run ended.
          ++polling_executors_;
          const int64_t queued_seen = enqueued_.load(std::memory_order_acquire);
          const int64_t ended_seen = inline_ended_.load(std::memory_order_acquire);
          // The poll ends early, when the sample of polling it completes
          // finds the core busy (RecordPoll).
          const absl::Duration sample_left = PollSample() - polled_;
          mu_.Unlock();
          absl::Duration polled;
          absl::Duration given_away;  // to other threads on this core
          while (enqueued_.load(std::memory_order_acquire) == queued_seen &&
                 (!keep_alive || inline_ended_.load(std::memory_order_acquire) == ended_seen) &&
                 options_.clock->Now() < spin_until && polled < sample_left) {
            const absl::Duration away = options_.clock->Yield();
            polled += away;
            if (away > kYieldGivenAway) given_away += away;
          }
          mu_.Lock();
          --polling_executors_;
          RecordPoll(polled, given_away, options_.clock->Now());
          if (enqueued_.load(std::memory_order_relaxed) != queued_seen ||
              (keep_alive && inline_ended_.load(std::memory_order_relaxed) != ended_seen)) {
            spin_until = options_.clock->Now() + options_.idle_spin;
          }
          continue;
        }
        ++sleeping_executors_;
        if (claimed) {
          work_cv_.Wait(&mu_);
        } else {
          options_.clock->WaitUntil(&work_cv_, &mu_, wake_at);
        }
        --sleeping_executors_;
        // Woken for work, or by an inline run's end to poll for what follows.
        if (polls) spin_until = options_.clock->Now() + options_.idle_spin;
      }
      if (!batch.tasks.empty()) SetRunning(index, true);
      if (queued_tasks_ > 0) NotifyWork();
    }
    AnswerDropped(batch.formed, dead);
    if (batch.tasks.empty()) continue;
    RunBatch(index, batch, buffers);
  }
}

void DynamicBatcher::RunBatch(size_t index, Batch& batch, std::vector<AlignedBuffer>& buffers) {
  ModelInstance* instance = instances_[index].get();
  std::vector<TensorView> inputs;
  if (batch.tasks.size() == 1) {
    inputs = batch.tasks[0].task.inputs;
  } else {
    const std::vector<TensorView>& first = batch.tasks[0].task.inputs;
    if (buffers.size() < first.size()) buffers.resize(first.size());
    inputs.resize(first.size());
    for (size_t i = 0; i < first.size(); ++i) {
      if (IsAbsent(first[i])) {  // absent from every task: they share the shape key
        inputs[i] = first[i];
        continue;
      }
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

  {
    MutexLock lock(&mu_);
    // The instance counts as free (for admission, probes, Stats and inline
    // runs) once the model returned, before its tasks are answered: the
    // outputs belong to the batch, not to the instance.
    SetRunning(index, false);
    running_ends_.erase(running_ends_.find(batch.estimated_end));
    Replan(options_.clock->Now());
    last_batch_end_ = options_.clock->Now();
    if (outputs.ok()) {
      cost_[RowsBucket(batch.rows)].Add(static_cast<double>(batch.rows),
                                        absl::ToDoubleNanoseconds(info.compute));
      UpdateEstimates();
    }
  }
  if (options_.on_batch) options_.on_batch(info, outputs.status());
  int64_t offset = 0;
  for (Queued& queued : batch.tasks) {
    info.queue_wait = batch.formed - queued.enqueued;
    if (outputs.ok()) {
      queued.task.done(absl::OkStatus(),
                       TaskOutputs(&*outputs, offset, queued.task.rows, queued.task_row), info);
    } else {
      queued.task.done(outputs.status(), TaskOutputs(nullptr, 0, queued.task.rows, queued.task_row),
                       info);
    }
    offset += queued.task.rows;
  }
}

void DynamicBatcher::Shutdown() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    enqueued_.fetch_add(1, std::memory_order_release);  // polling executors look now
    work_cv_.NotifyAll();
  }
  MutexLock lock(&join_mu_);
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
  MutexLock inline_lock(&mu_);
  while (inline_runs_ > 0) work_cv_.Wait(&mu_);
}

DynamicBatcher::QueueStats DynamicBatcher::Stats() const {
  MutexLock lock(&mu_);
  return QueueStats{queued_tasks_, queued_rows_, busy_, polling_executors_, sleeping_executors_,
                    cores_found_busy_};
}

}  // namespace microbatch
