#include "client/bench_load.h"

#include <curl/curl.h>
#include <grpc/grpc.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <thread>
#include <unordered_set>

#include "absl/status/status.h"
#include "client/bench_stats.h"
#include "client/open_inference.h"

namespace microbatch {
namespace bench {

double MsBetween(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string CodeName(int code) {
  if (code < 0) return code == -1 ? "BAD_RESPONSE" : "CLIENT_DROPPED";
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

namespace {

constexpr int kBadResponse = -1;

// ---------------------------------------------------------------------------
// gRPC.

class GrpcTarget : public Target {
 public:
  GrpcTarget(const TargetOptions& options, const ChannelFactory& channel_factory, grpc::ByteBuffer payload)
      : method_(options.method), payload_(std::move(payload)), check_(options.check) {
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

  bool WaitForConnected(std::chrono::seconds timeout) override {
    const auto deadline = SystemClock::now() + timeout;
    for (auto& channel : channels_) {
      if (!channel->WaitForConnected(deadline)) return false;
    }
    return true;
  }

  std::unique_ptr<Exchange> NewExchange(size_t index) override;
  size_t connections() const override { return stubs_.size(); }

  void Call(size_t index, grpc::ClientContext* context, grpc::ByteBuffer* response,
            std::function<void(grpc::Status)> done) {
    stubs_[index % stubs_.size()]->UnaryCall(context, method_, grpc::StubOptions(), &payload_, response,
                                             std::move(done));
  }

  bool Valid(grpc::ByteBuffer& response) const {
    if (!check_) return true;
    std::vector<grpc::Slice> slices;
    if (!response.Dump(&slices).ok()) return false;
    std::string bytes;
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    return check_(bytes);
  }

 private:
  const std::string method_;
  const grpc::ByteBuffer payload_;
  const ResponseCheck check_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
};

class GrpcExchange : public Exchange {
 public:
  GrpcExchange(GrpcTarget* target, size_t index) : target_(target), index_(index) {}

  void Start(SystemClock::time_point deadline, bool check, std::function<void(int)> done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      context_ = std::make_unique<grpc::ClientContext>();
      if (deadline != SystemClock::time_point::max()) context_->set_deadline(deadline);
      response_.Clear();
    }
    target_->Call(index_, context_.get(), &response_,
                  [this, check, done = std::move(done)](grpc::Status status) {
                    int code = static_cast<int>(status.error_code());
                    if (status.ok() && check && !target_->Valid(response_)) code = kBadResponse;
                    done(code);
                  });
  }

  void Cancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (context_) context_->TryCancel();
  }

 private:
  GrpcTarget* const target_;
  const size_t index_;
  std::mutex mu_;  // guards `context_` against Cancel
  std::unique_ptr<grpc::ClientContext> context_;
  grpc::ByteBuffer response_;
};

std::unique_ptr<Exchange> GrpcTarget::NewExchange(size_t index) {
  return std::make_unique<GrpcExchange>(this, index);
}

// ---------------------------------------------------------------------------
// REST: one curl multi handle driven by one thread. Exchanges hand their
// easy handles to the thread (Start, Cancel) through queues; the thread adds
// them, runs the transfers and calls `done`.

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

class RestTarget;

class RestExchange : public Exchange {
 public:
  RestExchange(RestTarget* target, CURL* easy) : target_(target), easy_(easy) {}
  ~RestExchange() override { curl_easy_cleanup(easy_); }

  void Start(SystemClock::time_point deadline, bool check, std::function<void(int)> done) override;
  void Cancel() override;

 private:
  friend class RestTarget;

  RestTarget* const target_;
  CURL* const easy_;
  // Set by Start before the hand-off, used by the loop thread after it.
  std::function<void(int)> done_;
  bool check_ = false;
  std::string response_;
  char error_[CURL_ERROR_SIZE] = {};
  bool in_multi_ = false;  // loop thread only
};

class RestTarget : public Target {
 public:
  RestTarget(const HttpEndpoint& endpoint, const std::string& path, std::string body, ResponseCheck check)
      : endpoint_(endpoint), url_(endpoint.Url(path)), body_(std::move(body)), check_(std::move(check)) {
    InitCurlOnce();
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Expect:");  // no 100-continue round trip
    multi_ = curl_multi_init();
    loop_ = std::thread([this] { Loop(); });
  }

  ~RestTarget() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_);
    loop_.join();
    curl_multi_cleanup(multi_);
    curl_slist_free_all(headers_);
  }

  bool WaitForConnected(std::chrono::seconds timeout) override {
    CURL* curl = curl_easy_init();
    if (curl == nullptr) return false;
    endpoint_.Configure(curl, std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
    curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);  // TCP (+ TLS) only
    const CURLcode code = curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    return code == CURLE_OK;
  }

  std::unique_ptr<Exchange> NewExchange(size_t index) override {
    CURL* easy = curl_easy_init();
    auto exchange = std::make_unique<RestExchange>(this, easy);
    endpoint_.Configure(easy);
    curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body_.data());  // shared, not copied
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_.size()));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &AppendBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &exchange->response_);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, exchange->error_);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, static_cast<void*>(exchange.get()));
    return exchange;
  }

  size_t connections() const override { return 0; }

  void Submit(RestExchange* exchange) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      to_start_.push_back(exchange);
    }
    curl_multi_wakeup(multi_);
  }

  void CancelExchange(RestExchange* exchange) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      to_cancel_.push_back(exchange);
    }
    curl_multi_wakeup(multi_);
  }

 private:
  void Loop() {
    std::vector<RestExchange*> starts, cancels;
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) break;
        starts.swap(to_start_);
        cancels.swap(to_cancel_);
      }
      for (RestExchange* exchange : starts) {
        exchange->in_multi_ = true;
        curl_multi_add_handle(multi_, exchange->easy_);
      }
      starts.clear();
      for (RestExchange* exchange : cancels) {
        if (!exchange->in_multi_) continue;  // already finished
        curl_multi_remove_handle(multi_, exchange->easy_);
        Finish(exchange, static_cast<int>(absl::StatusCode::kCancelled));
      }
      cancels.clear();
      int running = 0;
      curl_multi_perform(multi_, &running);
      int queued = 0;
      while (CURLMsg* message = curl_multi_info_read(multi_, &queued)) {
        if (message->msg != CURLMSG_DONE) continue;
        CURL* easy = message->easy_handle;
        const CURLcode result = message->data.result;  // `message` dies with remove_handle
        char* priv = nullptr;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        RestExchange* exchange = reinterpret_cast<RestExchange*>(priv);
        curl_multi_remove_handle(multi_, easy);
        Finish(exchange, Outcome(exchange, result));
      }
      curl_multi_poll(multi_, nullptr, 0, 100, nullptr);
    }
    // Loads stop before their target goes: nothing is in flight here.
  }

  int Outcome(RestExchange* exchange, CURLcode result) const {
    if (result == CURLE_OPERATION_TIMEDOUT) return static_cast<int>(absl::StatusCode::kDeadlineExceeded);
    if (result != CURLE_OK) return static_cast<int>(absl::StatusCode::kUnavailable);
    long status = 0;
    curl_easy_getinfo(exchange->easy_, CURLINFO_RESPONSE_CODE, &status);
    const int code = static_cast<int>(HttpStatusToCode(status));
    if (code == 0 && exchange->check_ && check_ && !check_(exchange->response_)) return kBadResponse;
    return code;
  }

  // Hands the outcome to the load; the exchange's last use on this thread.
  static void Finish(RestExchange* exchange, int code) {
    exchange->in_multi_ = false;
    std::function<void(int)> done = std::move(exchange->done_);
    done(code);
  }

  const HttpEndpoint endpoint_;
  const std::string url_;
  const std::string body_;
  const ResponseCheck check_;
  curl_slist* headers_ = nullptr;
  CURLM* multi_ = nullptr;
  std::mutex mu_;
  std::vector<RestExchange*> to_start_;
  std::vector<RestExchange*> to_cancel_;
  bool stopping_ = false;
  std::thread loop_;
};

void RestExchange::Start(SystemClock::time_point deadline, bool check, std::function<void(int)> done) {
  long timeout_ms = 0;  // none
  if (deadline != SystemClock::time_point::max()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SystemClock::now());
    timeout_ms = std::max<long>(1, static_cast<long>(left.count()));
  }
  curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, timeout_ms);
  done_ = std::move(done);
  check_ = check;
  response_.clear();  // keeps its capacity
  error_[0] = '\0';
  target_->Submit(this);
}

void RestExchange::Cancel() { target_->CancelExchange(this); }

// ---------------------------------------------------------------------------
// Loads.

// Checks the first few OK responses of a level.
class ResponseChecker {
 public:
  bool ShouldCheck() { return checked_.fetch_add(1, std::memory_order_relaxed) < 16; }

 private:
  std::atomic<int> checked_{0};
};

SystemClock::time_point DeadlineFromNow(int64_t deadline_ms) {
  if (deadline_ms <= 0) return SystemClock::time_point::max();
  return SystemClock::now() + std::chrono::milliseconds(deadline_ms);
}

// N calls kept in flight: each completion sends the next call.
class ClosedLoop : public Load {
 public:
  ClosedLoop(Target* target, Recorder* recorder, int64_t concurrency, int64_t deadline_ms)
      : target_(target), recorder_(recorder), deadline_ms_(deadline_ms) {
    for (int64_t i = 0; i < concurrency; ++i) {
      slots_.push_back(std::make_unique<Slot>());
      slots_.back()->exchange = target_->NewExchange(static_cast<size_t>(i));
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
      for (auto& slot : slots_) slot->exchange->Cancel();
      cv_.wait(lock, [this] { return active_ == 0; });
    }
  }

 private:
  struct Slot {
    std::unique_ptr<Exchange> exchange;
    SteadyClock::time_point start;
    SystemClock::time_point deadline;
  };

  void Issue(Slot* slot) {
    slot->deadline = DeadlineFromNow(deadline_ms_);
    slot->start = SteadyClock::now();
    recorder_->Sent(0);
    slot->exchange->Start(slot->deadline, checker_.ShouldCheck(), [this, slot](int code) { Done(slot, code); });
  }

  void Done(Slot* slot, int code) {
    const SteadyClock::time_point end = SteadyClock::now();
    const bool late = code == 0 && deadline_ms_ > 0 && SystemClock::now() > slot->deadline;
    recorder_->Done(std::max(code, 0), MsBetween(slot->start, end), late, code == kBadResponse);
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
// Calls (and their exchanges) are pooled: a new one is made only when every
// existing one is in flight.
class OpenLoop : public Load {
 public:
  OpenLoop(Target* target, Recorder* recorder, double rate, int64_t deadline_ms, int64_t max_inflight,
           uint64_t seed)
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
    if (!cv_.wait_for(lock, grace, [this] { return in_flight_.empty(); })) {
      for (Call* call : in_flight_) call->exchange->Cancel();
      cv_.wait(lock, [this] { return in_flight_.empty(); });
    }
  }

 private:
  struct Call {
    std::unique_ptr<Exchange> exchange;
    SteadyClock::time_point scheduled;
    SystemClock::time_point deadline;
  };

  void Schedule() {
    PoissonArrivals arrivals(rate_, seed_);
    SteadyClock::time_point next = SteadyClock::now();
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      next += std::chrono::duration_cast<SteadyClock::duration>(
          std::chrono::duration<double>(arrivals.NextGapSeconds()));
      if (SteadyClock::now() < next) {
        cv_.wait_until(lock, next, [this] { return stopping_; });
        if (stopping_) break;
      }
      if (static_cast<int64_t>(in_flight_.size()) >= max_inflight_) {
        recorder_->Dropped();
        continue;
      }
      Call* call;
      if (free_.empty()) {
        calls_.push_back(std::make_unique<Call>());
        call = calls_.back().get();
        call->exchange = target_->NewExchange(calls_.size() - 1);
      } else {
        call = free_.back();
        free_.pop_back();
      }
      call->scheduled = next;
      call->deadline = DeadlineFromNow(deadline_ms_);
      in_flight_.insert(call);
      const bool check = checker_.ShouldCheck();
      lock.unlock();
      recorder_->Sent(MsBetween(next, SteadyClock::now()));
      call->exchange->Start(call->deadline, check, [this, call](int code) { Done(call, code); });
      lock.lock();
    }
  }

  void Done(Call* call, int code) {
    const SteadyClock::time_point end = SteadyClock::now();
    const bool late = code == 0 && deadline_ms_ > 0 && SystemClock::now() > call->deadline;
    recorder_->Done(std::max(code, 0), MsBetween(call->scheduled, end), late, code == kBadResponse);
    bool notify = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_.erase(call);
      free_.push_back(call);
      notify = stopping_ && in_flight_.empty();
    }
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
  std::vector<std::unique_ptr<Call>> calls_;  // every call made, in flight or free
  std::vector<Call*> free_;
  std::unordered_set<Call*> in_flight_;
};

}  // namespace

std::unique_ptr<Target> NewGrpcTarget(const TargetOptions& options, const ChannelFactory& channel_factory,
                                      grpc::ByteBuffer payload) {
  return std::make_unique<GrpcTarget>(options, channel_factory, std::move(payload));
}

std::unique_ptr<Target> NewRestTarget(const HttpEndpoint& endpoint, const std::string& path, std::string body,
                                      ResponseCheck check) {
  return std::make_unique<RestTarget>(endpoint, path, std::move(body), std::move(check));
}

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
