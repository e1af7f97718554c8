#include "client/bench_load.h"

#include <grpc/grpc.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <thread>
#include <unordered_set>

#include "absl/status/status.h"
#include "client/bench_stats.h"
#include "microbatch/v1/inference.pb.h"

namespace microbatch {
namespace bench {

double MsBetween(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string CodeName(int code) {
  if (code < 0) return code == -1 ? "BAD_RESPONSE" : "CLIENT_DROPPED";
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

Target::Target(const TargetOptions& options, const ChannelFactory& channel_factory,
               grpc::ByteBuffer payload)
    : method_(options.method), payload_(std::move(payload)), echo_(options.echo) {
  for (int64_t i = 0; i < std::max<int64_t>(1, options.channels); ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    // Distinct args and a local subchannel pool: one TCP connection each.
    args.SetInt("grpc.channel_id", static_cast<int>(i));
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = channel_factory.NewChannel(options.target, args);
    channels_.push_back(channel);
    stubs_.push_back(std::make_unique<grpc::GenericStub>(channel));
  }
}

bool Target::WaitForConnected(std::chrono::seconds timeout) {
  const auto deadline = SystemClock::now() + timeout;
  for (auto& channel : channels_) {
    if (!channel->WaitForConnected(deadline)) return false;
  }
  return true;
}

void Target::Call(size_t channel, grpc::ClientContext* context, grpc::ByteBuffer* response,
                  std::function<void(grpc::Status)> done) {
  stubs_[channel % stubs_.size()]->UnaryCall(context, method_, grpc::StubOptions(), &payload_, response,
                                             std::move(done));
}

bool Target::Valid(grpc::ByteBuffer& response) {
  if (echo_) return response.Length() == payload_.Length();
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  v1::PredictResponse parsed;
  return parsed.ParseFromString(bytes) && parsed.outputs_size() > 0;
}

namespace {

// Checks the first few OK responses of a level.
class ResponseChecker {
 public:
  bool ShouldCheck() { return checked_.fetch_add(1, std::memory_order_relaxed) < 16; }

 private:
  std::atomic<int> checked_{0};
};

// N calls kept in flight: each completion sends the next call.
class ClosedLoop : public Load {
 public:
  ClosedLoop(Target* target, Recorder* recorder, int64_t concurrency, int64_t deadline_ms)
      : target_(target), recorder_(recorder), deadline_ms_(deadline_ms) {
    for (int64_t i = 0; i < concurrency; ++i) {
      slots_.push_back(std::make_unique<Slot>());
      slots_.back()->index = static_cast<size_t>(i);
    }
  }

  void Start() override {
    active_ = static_cast<int64_t>(slots_.size());
    for (auto& slot : slots_) Issue(slot.get());
  }

  void Stop() override {
    stopping_ = true;
    std::unique_lock<std::mutex> lock(mu_);
    const auto grace = std::chrono::milliseconds(10000 + deadline_ms_);
    if (!cv_.wait_for(lock, grace, [this] { return active_ == 0; })) {
      for (auto& slot : slots_) {
        std::lock_guard<std::mutex> slot_lock(slot->mu);
        if (slot->context) slot->context->TryCancel();
      }
      cv_.wait(lock, [this] { return active_ == 0; });
    }
  }

 private:
  struct Slot {
    size_t index = 0;
    std::mutex mu;  // guards `context` against TryCancel in Stop()
    std::unique_ptr<grpc::ClientContext> context;
    grpc::ByteBuffer response;
    SteadyClock::time_point start;
    SystemClock::time_point deadline;
  };

  void Issue(Slot* slot) {
    {
      std::lock_guard<std::mutex> lock(slot->mu);
      slot->context = std::make_unique<grpc::ClientContext>();
      if (deadline_ms_ > 0) {
        slot->deadline = SystemClock::now() + std::chrono::milliseconds(deadline_ms_);
        slot->context->set_deadline(slot->deadline);
      }
      slot->response.Clear();
      slot->start = SteadyClock::now();
    }
    recorder_->Sent(0);
    target_->Call(slot->index, slot->context.get(), &slot->response,
                  [this, slot](grpc::Status status) { Done(slot, status); });
  }

  void Done(Slot* slot, const grpc::Status& status) {
    const SteadyClock::time_point end = SteadyClock::now();
    const bool late = status.ok() && deadline_ms_ > 0 && SystemClock::now() > slot->deadline;
    const bool bad = status.ok() && checker_.ShouldCheck() && !target_->Valid(slot->response);
    recorder_->Done(static_cast<int>(status.error_code()), MsBetween(slot->start, end), late, bad);
    if (stopping_) {
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) cv_.notify_all();
      return;
    }
    Issue(slot);
  }

  Target* target_;
  Recorder* recorder_;
  const int64_t deadline_ms_;
  ResponseChecker checker_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t active_ = 0;
};

// Poisson arrivals at a fixed rate, whatever the responses do. Latency counts
// from the scheduled send time, so a client falling behind shows up in it.
class OpenLoop : public Load {
 public:
  OpenLoop(Target* target, Recorder* recorder, double rate, int64_t deadline_ms,
           int64_t max_inflight, uint64_t seed)
      : target_(target),
        recorder_(recorder),
        rate_(rate),
        deadline_ms_(deadline_ms),
        max_inflight_(max_inflight),
        seed_(seed) {}

  void Start() override {
    scheduler_ = std::thread([this] { Schedule(); });
  }

  void Stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    scheduler_.join();
    std::unique_lock<std::mutex> lock(mu_);
    const auto grace = std::chrono::milliseconds(10000 + deadline_ms_);
    if (!cv_.wait_for(lock, grace, [this] { return calls_.empty(); })) {
      for (Call* call : calls_) call->context.TryCancel();
      cv_.wait(lock, [this] { return calls_.empty(); });
    }
  }

 private:
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer response;
    SteadyClock::time_point scheduled;
    SystemClock::time_point deadline;
  };

  void Schedule() {
    PoissonArrivals arrivals(rate_, seed_);
    SteadyClock::time_point next = SteadyClock::now();
    size_t sent = 0;
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      next += std::chrono::duration_cast<SteadyClock::duration>(
          std::chrono::duration<double>(arrivals.NextGapSeconds()));
      if (SteadyClock::now() < next) {
        cv_.wait_until(lock, next, [this] { return stopping_; });
        if (stopping_) break;
      }
      if (static_cast<int64_t>(calls_.size()) >= max_inflight_) {
        recorder_->Dropped();
        continue;
      }
      auto* call = new Call;
      call->scheduled = next;
      if (deadline_ms_ > 0) {
        call->deadline = SystemClock::now() + std::chrono::milliseconds(deadline_ms_);
        call->context.set_deadline(call->deadline);
      }
      calls_.insert(call);
      lock.unlock();
      recorder_->Sent(MsBetween(next, SteadyClock::now()));
      target_->Call(sent++, &call->context, &call->response,
                    [this, call](grpc::Status status) { Done(call, status); });
      lock.lock();
    }
  }

  void Done(Call* call, const grpc::Status& status) {
    const SteadyClock::time_point end = SteadyClock::now();
    const bool late = status.ok() && deadline_ms_ > 0 && SystemClock::now() > call->deadline;
    const bool bad = status.ok() && checker_.ShouldCheck() && !target_->Valid(call->response);
    recorder_->Done(static_cast<int>(status.error_code()), MsBetween(call->scheduled, end), late, bad);
    bool notify = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.erase(call);
      notify = stopping_ && calls_.empty();
    }
    delete call;
    if (notify) cv_.notify_all();
  }

  Target* target_;
  Recorder* recorder_;
  const double rate_;
  const int64_t deadline_ms_;
  const int64_t max_inflight_;
  const uint64_t seed_;
  ResponseChecker checker_;
  std::thread scheduler_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::unordered_set<Call*> calls_;
};

}  // namespace

std::unique_ptr<Load> NewClosedLoop(Target* target, Recorder* recorder, int64_t concurrency,
                                    int64_t deadline_ms) {
  return std::make_unique<ClosedLoop>(target, recorder, concurrency, deadline_ms);
}

std::unique_ptr<Load> NewOpenLoop(Target* target, Recorder* recorder, double rate, int64_t deadline_ms,
                                  int64_t max_inflight, uint64_t seed) {
  return std::make_unique<OpenLoop>(target, recorder, rate, deadline_ms, max_inflight, seed);
}

}  // namespace bench
}  // namespace microbatch
