// The dynamic batcher of one model version: groups compatible requests into
// batches and runs them on a pool of model instances.
#ifndef MICROBATCH_SERVER_CORE_BATCHER_H_
#define MICROBATCH_SERVER_CORE_BATCHER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/core/clock.h"
#include "server/core/sync.h"
#include "common/tensor/tensor.h"

namespace microbatch {

// One copy of a model that can run a batch. The batcher calls Run() of a given
// instance from one thread at a time; different instances run concurrently.
class ModelInstance {
 public:
  virtual ~ModelInstance() = default;
  // `inputs` are in signature order, all with the same rows(). Returns the
  // outputs in signature order, each with the batch's rows as first dim. The
  // returned views stay valid until they are destroyed (via `owner`) and may
  // alias the input memory, which outlives them until the batch is answered.
  virtual absl::StatusOr<std::vector<TensorView>> Run(absl::Span<const TensorView> inputs) = 0;
};

// Scheduling class of a task. Interactive tasks (Predict) always go before
// bulk tasks (BatchPredict); a batch is topped up with bulk rows of the same
// shape only when no interactive row of that shape is waiting, and while
// interactive tasks keep arriving, batches that carry bulk rows are kept short
// (BatcherOptions::bulk_run_budget).
enum class Priority { kInteractive = 0, kBulk = 1 };

// What became of the batch that carried a task.
struct BatchInfo {
  int64_t batch_rows = 0;       // rows in the whole batch
  int64_t batch_tasks = 0;      // tasks in the whole batch
  absl::Duration queue_wait;    // enqueue until the batch was formed
  absl::Duration compute;       // model run time of the batch
};

// The rows of one task (or of one part of a splittable task) inside the
// outputs of its batch.
class TaskOutputs {
 public:
  TaskOutputs(const std::vector<TensorView>* batch_outputs, int64_t row_offset, int64_t rows,
              int64_t task_row = 0)
      : batch_outputs_(batch_outputs), row_offset_(row_offset), rows_(rows), task_row_(task_row) {}
  // Number of outputs; 0 when the task (part) failed.
  size_t size() const { return batch_outputs_ ? batch_outputs_->size() : 0; }
  // Rows answered by this call: the task's, or the part's when it was split
  // (also set when the part failed).
  int64_t rows() const { return rows_; }
  // Index of the first of these rows within the task: 0 unless the task was
  // split.
  int64_t task_row() const { return task_row_; }
  DType dtype(size_t i) const { return (*batch_outputs_)[i].dtype; }
  // Shape of output i for this task's rows.
  std::vector<int64_t> shape(size_t i) const;
  // Bytes of output i for this task's rows.
  absl::string_view data(size_t i) const;

 private:
  const std::vector<TensorView>* batch_outputs_;
  int64_t row_offset_;
  int64_t rows_;
  int64_t task_row_;
};

// A request's rows waiting for a batch.
struct BatchTask {
  // In signature order, all with `rows` rows; the memory must stay valid until
  // `done` has been called.
  std::vector<TensorView> inputs;
  int64_t rows = 0;
  // Bulk tasks only. A splittable task may hold more than max_batch_size rows
  // and is run in parts, in row order, each part filling the room a batch has
  // left; `done` is then called once per part (TaskOutputs::task_row() and
  // rows() say which rows), so exactly once for every row. Parts of one task
  // may run concurrently on different instances.
  bool splittable = false;
  // Interactive tasks only: the caller accepts `done` being called before
  // Enqueue returns, on its own thread (BatcherOptions::inline_max_compute).
  bool may_run_inline = false;
  // Tasks are batched together only when their shape keys are equal.
  std::string shape_key;
  Priority priority = Priority::kInteractive;
  // When the answer is due. An interactive task whose estimated finish is past
  // it is refused at Enqueue; a task still queued at its deadline, or whose
  // deadline comes before the estimated model time of its rows would end, is
  // answered DEADLINE_EXCEEDED and never run; a batch is closed early rather
  // than include a task it would make late (see DynamicBatcher).
  absl::Time deadline = absl::InfiniteFuture();
  // Optional; a task whose caller has gone is answered CANCELLED and never
  // run. Called from batcher threads.
  std::function<bool()> is_cancelled;
  // Called exactly once (once per part of a split task), from a batcher
  // thread (or, for a task run inline, from the thread that called Enqueue,
  // before Enqueue returns; see BatcherOptions::inline_max_compute), with OK and this task's rows of the outputs (valid only during
  // the call), or with the error that ended the task (then `outputs` has no
  // tensors; its rows() still counts the rows the error answers).
  std::function<void(const absl::Status& status, const TaskOutputs& outputs,
                     const BatchInfo& info)>
      done;
};

struct BatcherOptions {
  // Largest number of rows in one batch. Default 32.
  int64_t max_batch_size = 32;
  // How long a partial batch may wait for more rows while an instance is idle,
  // but never so long that a queued task would miss its deadline; zero
  // (default) dispatches at once whenever an instance is free.
  absl::Duration max_queue_delay = absl::ZeroDuration();
  // Interactive tasks waiting beyond which Enqueue fails. Bulk tasks are not
  // counted: their producers bound them. Default 1024.
  int64_t max_queue_size = 1024;
  // Time kept free between a task's estimated answer and its deadline, for the
  // answer's way back to the caller, but never more than a quarter of the
  // time the task has left: a short deadline is not refused for a margin
  // larger than the deadline itself. Default 1 ms.
  absl::Duration deadline_margin = absl::Milliseconds(1);
  // How long an executor that ran out of work keeps polling for more before it
  // sleeps. Polling spends CPU to skip the wake-up of a sleeping thread, which
  // costs from tens of microseconds to a millisecond on virtual machines, on
  // the next request. Inline runs (inline_max_compute) count as traffic while
  // they come one at a time (no task had to queue behind one within the last
  // 10 idle_spin): while they keep ending within idle_spin of each other an
  // executor polls on (it takes no inline task, but keeps a core awake for the
  // requests that follow), and one that ends while no executor polls wakes
  // one to poll. Executors poll only while it pays: while the median of the
  // last 8 idle gaps (from the last batch answered, with nothing queued or
  // running, to the next task) is at most idle_spin / 4, as when one caller
  // sends its next request as soon as it has the answer, or, where the model
  // works longer between gaps, at most a quarter of the median of the last 8
  // busy periods (from a gap's end to the next gap), up to 3/4 idle_spin:
  // polling then takes a small part of each cycle and saves the wake-up and
  // the cold core of every long run (a 5 ms model at concurrency 1 polls
  // through gaps of 0.3 ms). Sparser or random
  // traffic would keep a core busy polling through most of every gap (a
  // whole core at a few thousand requests/s) and, on a small machine, slow
  // the threads that do the work. Polling only pays while the polling core
  // would otherwise go idle: when other threads keep it busy (they ran
  // through more than 90% of 20 idle_spins of polling, as under heavy
  // concurrent load on a small machine), the poller only takes their time,
  // and executors stop polling for 200 idle_spins, then take a new sample.
  // Default 0 (sleep at once).
  absl::Duration idle_spin = absl::ZeroDuration();
  // How long the estimate of the model's time may go unmeasured before a
  // request it would refuse for its deadline is run anyway, as a probe, when
  // the batcher is idle. Without probes an estimate that is once too high (a
  // slow first run, a pause, a noisy neighbour) would refuse every request
  // with a short deadline forever, since refused requests are never measured.
  // A probe may be answered after its deadline when the model really is that
  // slow: at most one such request per interval. Default 1 s.
  absl::Duration estimate_probe_interval = absl::Seconds(1);
  // While interactive tasks keep arriving (one was enqueued within
  // bulk_yield_window), a batch that carries bulk rows takes only as many as
  // keep its estimated model time within bulk_run_budget beyond that of its
  // interactive rows (at least one bulk row when it has none): an interactive
  // task then waits behind at most one such short run. Otherwise bulk batches
  // fill up to max_batch_size: when no interactive task came within the
  // window, and when another instance stays idle while the batch runs (with
  // two or more instances, one runs full bulk batches while the next keeps
  // interactive tasks' wait to one short run). A zero or negative budget
  // turns the bound off.
  // Defaults 100 us and 100 ms (the budget: the bench's L1-L3 rows compare
  // values; 100 us kept a c=1 Predict p99 within 1.4x of its value without
  // a saturating stream of mlp_bench on 2 cores, 1 ms let it grow 5x).
  absl::Duration bulk_run_budget = absl::Microseconds(100);
  absl::Duration bulk_yield_window = absl::Milliseconds(100);
  // An interactive task that arrives while nothing is queued, an instance is
  // idle and max_queue_delay is zero runs at once on the thread that calls
  // Enqueue (which answers it before returning) when the estimated model time
  // of its rows is at most inline_max_compute: no hand-off to an executor
  // thread and back. It then blocks that thread for the model time, so keep
  // it short. Zero turns it off. Default 0 (off).
  absl::Duration inline_max_compute = absl::ZeroDuration();
  // An inline run also needs the task's input bytes to be at most this: the
  // estimate is per row, learned from past batches, so a much larger row (a
  // variable dimension) could run far longer than estimated on the caller's
  // thread. Default 64 KiB.
  int64_t inline_max_bytes = 64 * 1024;
  // After its inline run, the calling thread also runs up to this many
  // batches that queued up meanwhile, each while its estimated model time is
  // at most inline_max_compute and an instance is idle (their tasks are then
  // answered on that thread, like on an executor's), instead of waking an
  // executor for them. Zero: only its own task. Default 8.
  int64_t inline_max_drain_batches = 8;
  // Not owned; must outlive the batcher. Default: the wall clock.
  Clock* clock = Clock::Real();
  // Optional; called once per executed batch (from its executor thread, after
  // the model ran and before its tasks are answered), with the batch's status.
  std::function<void(const BatchInfo& info, const absl::Status& status)> on_batch;
};

// Thread-safe. Owns one executor thread per instance. Destruction calls
// Shutdown().
//
// Deadlines: the batcher learns the model time of past batches (per
// power-of-two batch size, the median of the last 8 batches plus twice their
// scaled median absolute deviation, interpolated between sizes; one outlier
// moves neither; an estimate left unmeasured for estimate_probe_interval is
// probed with a request it would refuse) and keeps a plan of the batches its queued interactive tasks will
// form (in order, closed at max_batch_size or where more rows would make one
// of their tasks late; each on the instance that frees up first). Enqueue
// refuses an interactive task with a deadline that cannot be met:
// DEADLINE_EXCEEDED when its rows alone would take longer than the deadline
// leaves, RESOURCE_EXHAUSTED (with payload kOverloadPayload) when the plan has
// no place for it that ends before its deadline, or only a new batch behind a
// queued one that would start after half the task's remaining time (such a
// batch could only be small). So the queue only holds work
// that can run in time, under overload the excess is refused at once, and
// what is admitted is answered before its deadline unless the model runs
// slower than it did.
// When it forms a batch it drops tasks that could no longer finish before
// their deadline even alone, and stops adding rows once the estimated time of
// the batch would pass the earliest deadline in it. Before the first batch
// has run nothing is refused for its deadline.
class DynamicBatcher {
 public:
  // Payload type URL set on Enqueue's RESOURCE_EXHAUSTED when the task was
  // refused because it could not be answered before its deadline (as opposed
  // to a full queue).
  static constexpr const char* kOverloadPayload = "type.microbatch.dev/overloaded";

  // Run on an executor thread with its instance (and the instance's index)
  // before the thread takes any batch; see Create.
  using InstanceWarmUp = std::function<absl::Status(size_t index, ModelInstance& instance)>;

  // Starts the executors at once, with no warm-up.
  DynamicBatcher(const BatcherOptions& options,
                 std::vector<std::unique_ptr<ModelInstance>> instances);
  // Starts a batcher whose executors each first run `warm_up` on their own
  // instance, on their own thread, all at the same time, and returns once
  // every one has finished. A model's first runs on a thread are slow (thread
  // pools and per-thread caches are set up by them), so a warm-up run on
  // another thread would leave the threads that serve cold. On the first
  // error (in instance order; an exception becomes INTERNAL) the batcher is
  // shut down and the error returned.
  static absl::StatusOr<std::unique_ptr<DynamicBatcher>> Create(
      const BatcherOptions& options, std::vector<std::unique_ptr<ModelInstance>> instances,
      InstanceWarmUp warm_up);
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `task`. On error the task is not queued and `done` is never
  // called: INVALID_ARGUMENT when rows is outside [1, max_batch_size] (any
  // positive count for a splittable bulk task; an interactive task cannot be
  // splittable),
  // RESOURCE_EXHAUSTED when the interactive queue is full or the work ahead
  // would make the task late, DEADLINE_EXCEEDED when its own model time
  // exceeds what its deadline leaves, UNAVAILABLE after Shutdown() began.
  absl::Status Enqueue(BatchTask task);

  // Stops accepting tasks, runs every queued task (partial batches close at
  // once), then joins the executors. Idempotent.
  void Shutdown();

  // Tasks and rows waiting (not yet running), all priorities.
  struct QueueStats {
    int64_t tasks = 0;
    int64_t rows = 0;
    int64_t busy_instances = 0;
    // Executors polling for work (BatcherOptions::idle_spin), and sleeping.
    int64_t polling_executors = 0;
    int64_t sleeping_executors = 0;
    // The last sample of polling found the polling cores busy with other
    // threads (BatcherOptions::idle_spin).
    bool cores_found_busy = false;
  };
  QueueStats Stats() const;

  const BatcherOptions& options() const { return options_; }

 private:
  struct Queued {
    BatchTask task;
    absl::Time enqueued;
    // Admitted although the estimate said it could not make its deadline,
    // to measure the model again (see BatcherOptions::estimate_probe_interval).
    bool probe = false;
    // Rows of a splittable task already taken into batches.
    int64_t task_row = 0;
  };
  // Tasks of one shape key.
  struct ShapeQueue {
    std::deque<Queued> by_priority[2];
    int64_t rows = 0;
  };
  struct Batch {
    std::vector<Queued> tasks;
    int64_t rows = 0;
    absl::Time formed;
    // When the batch is estimated to finish (formed + estimated model time).
    absl::Time estimated_end;
  };
  // The last model times of the batches of one power-of-two size class.
  struct CostWindow {
    static constexpr int kSize = 8;
    std::array<double, kSize> rows{};
    std::array<double, kSize> ns{};
    int count = 0;  // samples held, at most kSize
    int next = 0;   // where the next sample goes
    // Mean rows, and the median time plus twice the scaled median absolute
    // deviation (about two standard deviations, but a single outlier moves
    // neither the median nor the MAD), of the samples held; computed by Add,
    // once per sample, not on every read.
    std::pair<double, double> estimate{0, 0};
    void Add(double batch_rows, double batch_ns);

   private:
    std::pair<double, double> Compute() const;
  };

  void ExecutorLoop(size_t index);
  // Runs `task` on an idle instance on the calling thread when
  // BatcherOptions::inline_max_compute allows; returns false (task untouched)
  // otherwise. Called with mu_ held; releases it while the model runs.
  bool TryRunInline(BatchTask& task, absl::Time now, bool probe) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After an inline run: runs queued batches on the calling thread within
  // BatcherOptions::inline_max_drain_batches; unlocks mu_ while they run.
  void DrainInline(std::vector<AlignedBuffer>& buffers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether executors poll on account of inline runs (see
  // BatcherOptions::idle_spin): polling pays and no task had to queue behind
  // one lately.
  bool InlineKeepAlive(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the gap since the batcher went idle, if it is idle, when a task
  // arrives at `now`, and whether polling pays (BatcherOptions::idle_spin).
  void EndIdleGap(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The batcher goes idle at `now`: records the busy period that ends.
  void StartIdleGap(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether executors poll at `now` (BatcherOptions::idle_spin): the idle
  // gaps are short, and the cores were not found busy with other threads
  // (or the pause after that verdict is over).
  bool PollingPays(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Polling time per verdict on whether the cores are busy.
  absl::Duration PollSample() const;
  // Records one poll of `polled`, `given_away` of it spent by other threads.
  void RecordPoll(absl::Duration polled, absl::Duration given_away, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The first instance no batch runs on; instances_.size() when all are busy.
  size_t IdleInstance() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks instance `index` running or free (busy_ counts the running ones).
  void SetRunning(size_t index, bool running) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers the tasks TakeBatch dropped from a batch formed at `formed`.
  static void AnswerDropped(absl::Time formed, std::vector<std::pair<Queued, absl::Status>>& dead);
  // Picks the queue to serve next and moves its tasks into `batch` (and the
  // dead ones into `dead`). Returns false when nothing is ready; then
  // `*wake_at` is when the earliest partial batch times out.
  bool TakeBatch(Batch* batch, std::vector<std::pair<Queued, absl::Status>>* dead,
                 absl::Time* wake_at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `batch` on instance `index` (marked running by the caller), frees the
  // instance, then answers the batch's tasks.
  void RunBatch(size_t index, Batch& batch, std::vector<AlignedBuffer>& buffers);
  // Moves the first `rows` rows of a splittable task into a part of their own.
  static Queued SplitHead(Queued* head, int64_t rows);
  // Bulk rows a batch of `batch_rows` rows, `interactive_rows` of them
  // interactive, may still take (BatcherOptions::bulk_run_budget); at most
  // `room`.
  int64_t BulkRoom(int64_t interactive_rows, int64_t batch_rows, int64_t room, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Estimated model time for a batch of `rows`, on the safe side (average
  // plus twice the mean deviation); zero until a batch ran.
  absl::Duration EstimateCompute(int64_t rows) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The margin kept before `deadline` at `now` (BatcherOptions::deadline_margin).
  absl::Duration MarginFor(absl::Time deadline, absl::Time now) const;
  // The last moment a batch of `queue` may start for its interactive tasks
  // to meet their deadlines (each with the margin it had when queued, less
  // 1 ms for the executor's wake-up); InfiniteFuture when none has a deadline.
  absl::Time LatestStart(const ShapeQueue& queue) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Refreshes cost_points_ from cost_.
  void UpdateEstimates() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Places an interactive task in the plan, or returns why it cannot be
  // answered before its deadline (then the plan is unchanged). Sets `*probe`
  // when the task is admitted only as a probe of the model's time.
  absl::Status Admit(const BatchTask& task, absl::Time now, bool* probe)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds a task to the plan: to the open batch if it fits there in time,
  // else as a new batch (then `*new_batch_start`, if given, is when that
  // starts; else InfinitePast()). Returns the planned end of its batch and
  // stores the change only when `commit`.
  absl::Time PlanTask(const BatchTask& task, absl::Time now, bool commit,
                      absl::Time* new_batch_start = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Plans the queued interactive tasks again from the running batches.
  void Replan(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Wake();
  // Wakes an executor for newly queued work.
  void NotifyWork() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  DynamicBatcher(const BatcherOptions& options,
                 std::vector<std::unique_ptr<ModelInstance>> instances, InstanceWarmUp warm_up);
  // Runs warm_up_ for instance `index` (on its executor) and records the result.
  void WarmUpOnThisThread(size_t index);

  const BatcherOptions options_;
  std::vector<std::unique_ptr<ModelInstance>> instances_;
  // Set before the executors start (may be empty); Create clears it once
  // every executor has run it (the executors read it only before that).
  InstanceWarmUp warm_up_;
  int clock_listener_ = 0;

  // Polled without mu_ by polling executors (BatcherOptions::idle_spin):
  // tasks queued (and inline runs that ended with tasks queued) so far, and
  // inline runs ended so far. Both change only under mu_.
  std::atomic<int64_t> enqueued_{0};
  std::atomic<int64_t> inline_ended_{0};
  mutable Mutex mu_;
  CondVar work_cv_;
  std::map<std::string, ShapeQueue> queues_ ABSL_GUARDED_BY(mu_);
  int64_t interactive_tasks_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t interactive_rows_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t queued_tasks_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t queued_rows_ ABSL_GUARDED_BY(mu_) = 0;
  // Per instance: a batch runs on it (started by its executor or inline);
  // busy_ is how many do. Both change only through SetRunning.
  std::vector<char> instance_running_ ABSL_GUARDED_BY(mu_);
  int64_t busy_ ABSL_GUARDED_BY(mu_) = 0;
  // Per instance, the result of its warm-up; warmed_up_ counts those done.
  std::vector<absl::Status> warm_up_status_ ABSL_GUARDED_BY(mu_);
  size_t warmed_up_ ABSL_GUARDED_BY(mu_) = 0;
  CondVar warmed_up_cv_;
  // Executors waiting on work_cv_, and executors polling.
  int64_t sleeping_executors_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t polling_executors_ ABSL_GUARDED_BY(mu_) = 0;
  // Inline runs not yet finished (Shutdown waits for them).
  int64_t inline_runs_ ABSL_GUARDED_BY(mu_) = 0;
  // When a task last queued while an inline run went on.
  absl::Time queued_behind_inline_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // When the batcher last went idle (nothing queued, no instance running,
  // and the last batch answered: an executor or inline caller free to poll);
  // InfinitePast while it is not idle.
  absl::Time idle_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // The last idle gaps (idle_since_ to the next task), a ring, and whether
  // their median is short enough for executors to poll (idle_spin): at most
  // idle_spin / 4, or a quarter of the median busy period, up to 3/4 idle_spin.
  static constexpr int kIdleGaps = 8;
  std::array<absl::Duration, kIdleGaps> idle_gaps_ ABSL_GUARDED_BY(mu_){};
  int idle_gap_count_ ABSL_GUARDED_BY(mu_) = 0;
  int idle_gap_next_ ABSL_GUARDED_BY(mu_) = 0;
  bool idle_gaps_short_ ABSL_GUARDED_BY(mu_) = true;
  // When the current busy period began (the task that ended the last idle
  // gap; InfinitePast while idle), and the last busy periods (to the next
  // idle gap), a ring.
  absl::Time busy_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::array<absl::Duration, kIdleGaps> busy_periods_ ABSL_GUARDED_BY(mu_){};
  int busy_period_count_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_period_next_ ABSL_GUARDED_BY(mu_) = 0;
  // Polling time (the time in Clock::Yield) and the part of it other threads
  // ran on the polling core (yields that took longer than kYieldGivenAway),
  // summed until they make a sample of kPollSample idle_spins; the last
  // sample's verdict (more than 90% given away), and when it was taken.
  static constexpr absl::Duration kYieldGivenAway = absl::Microseconds(5);
  static constexpr int kPollSample = 20;
  // Idle spins after a verdict of busy cores before executors poll again to
  // take the next sample.
  static constexpr int kContendedPollPause = 200;
  absl::Duration polled_ ABSL_GUARDED_BY(mu_);
  absl::Duration given_away_ ABSL_GUARDED_BY(mu_);
  bool cores_found_busy_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time contention_measured_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // When the last interactive task was enqueued.
  absl::Time last_interactive_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Batches of (2^(i-1), 2^i] rows.
  std::vector<CostWindow> cost_ ABSL_GUARDED_BY(mu_) = std::vector<CostWindow>(32);
  // When the model last finished a batch (InfinitePast before the first).
  absl::Time last_batch_end_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // (rows, estimated ns) of the size classes seen, ascending.
  std::vector<std::pair<double, double>> cost_points_ ABSL_GUARDED_BY(mu_);
  // Estimated ends of the batches now running.
  std::multiset<absl::Time> running_ends_ ABSL_GUARDED_BY(mu_);
  // The planned batches of the queued interactive tasks: when each instance
  // frees up after the closed ones, and the last (open) one.
  struct Plan {
    std::vector<absl::Time> free_at;
    bool open = false;
    std::string shape_key;
    int64_t rows = 0;
    absl::Time start;
    absl::Time earliest_deadline;
    size_t instance = 0;
  };
  Plan plan_ ABSL_GUARDED_BY(mu_);

  Mutex join_mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(join_mu_);
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_BATCHER_H_
