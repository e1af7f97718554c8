// `microbatch bench`: see client/bench.h.
//
// Every request sends the same pre-serialized payload (a grpc::ByteBuffer
// whose slices are shared, not copied, by each call) through a generic stub on
// the callback API, and responses are kept as raw bytes: the client does no
// per-request protobuf work, so it is not the bottleneck. Several channels,
// each with its own subchannel (TCP connection), spread the calls.
#include "client/bench.h"

#include <grpc/grpc.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/plot_svg.h"
#include "microbatch/v1/inference.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace microbatch {
namespace bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

double MsBetween(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// User + system CPU seconds of this process so far.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::string CodeName(int code) {
  if (code < 0) return code == -1 ? "BAD_RESPONSE" : "CLIENT_DROPPED";
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// ---------------------------------------------------------------------------
// Measurement windows.

struct Window {
  std::vector<double> latency_ms;  // OK responses
  std::array<int64_t, 17> codes{};  // non-OK final status codes
  int64_t bad_responses = 0;        // OK but undecodable (checked on a sample)
  int64_t client_dropped = 0;       // open loop: not sent, too many in flight
  int64_t late = 0;
  int64_t sent = 0;
  double max_send_lag_ms = 0;
  double seconds = 0;
};

// Collects completions into the current window; thread-safe.
class Recorder {
 public:
  Recorder() : window_start_(SteadyClock::now()) {}

  void Sent(double lag_ms) {
    std::lock_guard<std::mutex> lock(mu_);
    ++current_.sent;
    current_.max_send_lag_ms = std::max(current_.max_send_lag_ms, lag_ms);
  }
  void Dropped() {
    std::lock_guard<std::mutex> lock(mu_);
    ++current_.client_dropped;
  }
  void Done(int code, double latency_ms, bool late, bool bad) {
    std::lock_guard<std::mutex> lock(mu_);
    if (bad) {
      ++current_.bad_responses;
    } else if (code == 0) {
      current_.latency_ms.push_back(latency_ms);
      if (late) ++current_.late;
    } else if (code > 0 && code < 17) {
      ++current_.codes[code];
    }
  }
  // Ends the current window and starts the next.
  Window Take() {
    Window next;
    next.latency_ms.reserve(4096);
    std::lock_guard<std::mutex> lock(mu_);
    const SteadyClock::time_point now = SteadyClock::now();
    std::swap(next, current_);
    next.seconds = std::chrono::duration<double>(now - window_start_).count();
    window_start_ = now;
    return next;
  }

 private:
  std::mutex mu_;
  Window current_;
  SteadyClock::time_point window_start_;
};

// ---------------------------------------------------------------------------
// The server under test.

class Target {
 public:
  Target(const BenchOptions& options, std::string method, grpc::ByteBuffer payload)
      : method_(std::move(method)), payload_(std::move(payload)), echo_(options.echo) {
    for (int64_t i = 0; i < std::max<int64_t>(1, options.channels); ++i) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(-1);
      args.SetMaxSendMessageSize(-1);
      // Distinct args and a local subchannel pool: one TCP connection each.
      args.SetInt("grpc.channel_id", static_cast<int>(i));
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      auto channel = grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
      channels_.push_back(channel);
      stubs_.push_back(std::make_unique<grpc::GenericStub>(channel));
    }
  }

  bool WaitForConnected(std::chrono::seconds timeout) {
    const auto deadline = SystemClock::now() + timeout;
    for (auto& channel : channels_) {
      if (!channel->WaitForConnected(deadline)) return false;
    }
    return true;
  }

  void Call(size_t channel, grpc::ClientContext* context, grpc::ByteBuffer* response,
            std::function<void(grpc::Status)> done) {
    stubs_[channel % stubs_.size()]->UnaryCall(context, method_, grpc::StubOptions(), &payload_,
                                               response, std::move(done));
  }

  size_t channels() const { return stubs_.size(); }

  // Checks that an OK response decodes (Predict) or matches the payload (Echo).
  bool Valid(grpc::ByteBuffer& response) {
    if (echo_) return response.Length() == payload_.Length();
    std::vector<grpc::Slice> slices;
    if (!response.Dump(&slices).ok()) return false;
    std::string bytes;
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    v1::PredictResponse parsed;
    return parsed.ParseFromString(bytes) && parsed.outputs_size() > 0;
  }

 private:
  const std::string method_;
  const grpc::ByteBuffer payload_;
  const bool echo_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
};

// Checks the first few OK responses of a level.
class ResponseChecker {
 public:
  bool ShouldCheck() { return checked_.fetch_add(1, std::memory_order_relaxed) < 16; }

 private:
  std::atomic<int> checked_{0};
};

class Load {
 public:
  virtual ~Load() = default;
  virtual void Start() = 0;
  // Stops sending and waits for every outstanding call (cancelling them after
  // a grace period).
  virtual void Stop() = 0;
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

// ---------------------------------------------------------------------------
// Prometheus scraping.

struct MetricsEndpoint {
  std::string host;
  std::string port;
  std::string path = "/metrics";
};

absl::StatusOr<MetricsEndpoint> ParseMetricsUrl(std::string url) {
  if (absl::StartsWith(url, "http://")) url = url.substr(7);
  MetricsEndpoint endpoint;
  if (size_t slash = url.find('/'); slash != std::string::npos) {
    endpoint.path = url.substr(slash);
    url = url.substr(0, slash);
  }
  const size_t colon = url.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == url.size()) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics-url: expected host:port, got '", url, "'"));
  }
  endpoint.host = url.substr(0, colon);
  endpoint.port = url.substr(colon + 1);
  if (endpoint.host.size() > 2 && endpoint.host.front() == '[') {
    endpoint.host = endpoint.host.substr(1, endpoint.host.size() - 2);
  }
  return endpoint;
}

// Decodes a chunked HTTP/1.1 body.
std::string Dechunk(const std::string& body) {
  std::string out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t size = 0;
    try {
      size = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
    } catch (...) {
      break;
    }
    if (size == 0) break;
    out.append(body, eol + 2, size);
    pos = eol + 2 + size + 2;
  }
  return out;
}

absl::StatusOr<std::string> HttpGet(const MetricsEndpoint& endpoint) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  if (int rc = getaddrinfo(endpoint.host.c_str(), endpoint.port.c_str(), &hints, &addresses); rc != 0) {
    return absl::UnavailableError(absl::StrCat("metrics: ", endpoint.host, ": ", gai_strerror(rc)));
  }
  int fd = -1;
  for (addrinfo* a = addresses; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    timeval timeout{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(addresses);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot connect to ", endpoint.host, ":", endpoint.port));
  }
  const std::string request = absl::StrCat("GET ", endpoint.path, " HTTP/1.0\r\nHost: ", endpoint.host,
                                           "\r\nConnection: close\r\n\r\n");
  size_t written = 0;
  while (written < request.size()) {
    const ssize_t n = write(fd, request.data() + written, request.size() - written);
    if (n <= 0) {
      close(fd);
      return absl::UnavailableError("metrics: write failed");
    }
    written += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[16384];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      close(fd);
      return absl::UnavailableError("metrics: read failed or timed out");
    }
    if (n == 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos || !absl::StartsWith(response, "HTTP/")) {
    return absl::UnavailableError("metrics: malformed HTTP response");
  }
  const std::string headers = response.substr(0, header_end);
  const size_t space = headers.find(' ');
  if (space == std::string::npos || headers.compare(space + 1, 3, "200") != 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics: ", headers.substr(0, headers.find("\r\n"))));
  }
  std::string body = response.substr(header_end + 4);
  std::string lower_headers = headers;
  for (char& c : lower_headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower_headers.find("transfer-encoding: chunked") != std::string::npos) body = Dechunk(body);
  return body;
}

// ---------------------------------------------------------------------------
// Running one level.

struct LevelSpec {
  std::string mode;
  double level;
};

class Runner {
 public:
  Runner(const BenchOptions& options, Target* target, std::optional<MetricsEndpoint> metrics,
         std::string model, std::string version)
      : options_(options),
        target_(target),
        metrics_(std::move(metrics)),
        model_(std::move(model)),
        version_(std::move(version)) {}

  LevelResult Run(const LevelSpec& spec) {
    Recorder recorder;
    std::unique_ptr<Load> load;
    if (spec.mode == "concurrency") {
      load = std::make_unique<ClosedLoop>(target_, &recorder, static_cast<int64_t>(spec.level),
                                          options_.deadline_ms);
    } else {
      load = std::make_unique<OpenLoop>(target_, &recorder, spec.level, options_.deadline_ms,
                                        options_.max_inflight, options_.seed);
    }
    load->Start();
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.warmup_ms));
    recorder.Take();
    std::vector<double> cpu = {ProcessCpuSeconds()};
    std::vector<std::vector<PromSample>> scrapes;
    scrapes.push_back(Scrape());

    std::vector<Window> windows;
    std::vector<double> throughputs, p99s;
    bool stable = false;
    const int64_t need = std::max<int64_t>(1, options_.stable_windows);
    for (int64_t w = 0; w < std::max<int64_t>(1, options_.max_windows); ++w) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.window_ms));
      windows.push_back(recorder.Take());
      cpu.push_back(ProcessCpuSeconds());
      scrapes.push_back(Scrape());
      Window copy = windows.back();
      const LatencySummary latency = Summarize(copy.latency_ms);
      throughputs.push_back(copy.seconds > 0 ? latency.count / copy.seconds : 0);
      p99s.push_back(latency.p99);
      if (options_.verbose) {
        std::cerr << "bench: " << spec.mode << " " << spec.level << " window " << w + 1 << ": "
                  << Fixed(throughputs.back(), 1) << " req/s, p99 " << Fixed(latency.p99, 2) << " ms\n";
      }
      if (static_cast<int64_t>(windows.size()) >= need &&
          IsStable(throughputs, static_cast<int>(need), options_.stability) &&
          IsStable(p99s, static_cast<int>(need), options_.stability)) {
        stable = true;
        break;
      }
    }
    load->Stop();

    // Report the last `need` windows.
    const size_t first = windows.size() > static_cast<size_t>(need) ? windows.size() - need : 0;
    LevelResult result;
    result.mode = spec.mode;
    result.level = spec.level;
    result.windows = static_cast<int>(windows.size());
    result.stable = stable;
    std::vector<double> latencies;
    std::array<int64_t, 17> codes{};
    int64_t bad = 0, dropped = 0;
    for (size_t i = first; i < windows.size(); ++i) {
      const Window& w = windows[i];
      result.seconds += w.seconds;
      result.sent += w.sent;
      result.late += w.late;
      result.max_send_lag_ms = std::max(result.max_send_lag_ms, w.max_send_lag_ms);
      latencies.insert(latencies.end(), w.latency_ms.begin(), w.latency_ms.end());
      for (int c = 0; c < 17; ++c) codes[c] += w.codes[c];
      bad += w.bad_responses;
      dropped += w.client_dropped;
    }
    result.latency = Summarize(latencies);
    result.ok = result.latency.count;
    for (int c = 1; c < 17; ++c) {
      if (codes[c] > 0) result.errors_by_code[CodeName(c)] = codes[c];
    }
    if (bad > 0) result.errors_by_code[CodeName(-1)] = bad;
    if (dropped > 0) result.errors_by_code[CodeName(-2)] = dropped;
    for (const auto& [code, n] : result.errors_by_code) result.errors += n;
    if (result.seconds > 0) {
      result.throughput = result.ok / result.seconds;
      result.rows_per_s = result.throughput * options_.rows;
      result.goodput = (result.ok - result.late) / result.seconds;
      result.goodput_rows_per_s = result.goodput * options_.rows;
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    result.client_cpu_cores = result.seconds > 0 ? (cpu.back() - cpu[first]) / result.seconds : nan;
    result.server_cpu_cores = nan;
    if (metrics_ && !scrapes[first].empty() && !scrapes.back().empty()) {
      result.server = ComputeServerSplit(scrapes[first], scrapes.back(), model_, version_);
      std::optional<double> server_cpu =
          SampleDelta(scrapes[first], scrapes.back(), "process_cpu_seconds_total", {});
      if (server_cpu && result.seconds > 0) result.server_cpu_cores = *server_cpu / result.seconds;
    }
    return result;
  }

 private:
  std::vector<PromSample> Scrape() {
    if (!metrics_) return {};
    absl::StatusOr<std::string> text = HttpGet(*metrics_);
    if (!text.ok()) {
      if (!warned_) std::cerr << "bench: " << text.status().message() << "\n";
      warned_ = true;
      return {};
    }
    return ParsePrometheusText(*text);
  }

  const BenchOptions& options_;
  Target* target_;
  std::optional<MetricsEndpoint> metrics_;
  std::string model_;
  std::string version_;
  bool warned_ = false;
};

// ---------------------------------------------------------------------------
// Flags and the payload.

int Fail(const std::string& message) {
  std::cerr << "microbatch bench: " << message << "\n";
  return 1;
}

absl::StatusOr<v1::PredictRequest> BuildRequest(const BenchOptions& options,
                                                const v1::ModelMetadata& metadata) {
  v1::PredictRequest request;
  request.set_model(options.model);
  request.set_version(options.version);
  uint64_t seed = options.seed;
  std::set<std::string> used;
  for (const v1::TensorMetadata& input : metadata.inputs()) {
    v1::Tensor* tensor = request.add_inputs();
    tensor->set_name(input.name());
    tensor->set_dtype(input.dtype());
    tensor->add_shape(options.rows);
    auto override_it = options.shapes.find(input.name());
    if (override_it != options.shapes.end()) {
      used.insert(input.name());
      const std::vector<int64_t>& dims = override_it->second;
      if (static_cast<int>(dims.size()) != input.shape_size() - 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--shape ", input.name(), ": the model's input has ", input.shape_size() - 1,
            " dims after the batch dim, got ", dims.size()));
      }
      for (size_t d = 0; d < dims.size(); ++d) {
        if (input.shape(d + 1) != -1 && input.shape(d + 1) != dims[d]) {
          return absl::InvalidArgumentError(absl::StrCat("--shape ", input.name(), ": dim ", d + 1,
                                                         " is fixed at ", input.shape(d + 1)));
        }
        tensor->add_shape(dims[d]);
      }
    } else {
      for (int d = 1; d < input.shape_size(); ++d) tensor->add_shape(input.shape(d) < 0 ? 1 : input.shape(d));
    }
    std::optional<int64_t> elements = ElementCount(absl::MakeConstSpan(tensor->shape().data(), tensor->shape().size()));
    const DType dtype = static_cast<DType>(input.dtype());
    if (!elements || DTypeSize(dtype) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "': unsupported shape or dtype"));
    }
    *tensor->mutable_data() = RandomTensorBytes(dtype, *elements, seed++);
  }
  for (const auto& [name, dims] : options.shapes) {
    if (!used.count(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shape ", name, ": model '", metadata.name(), "' has no such input"));
    }
  }
  return request;
}

absl::Status ParseOptions(const Args& args, BenchOptions* o, std::string* format, std::string* plot) {
  o->target = args.Get("target");
  o->model = args.Get("model");
  if (o->model.empty()) return absl::InvalidArgumentError("--model is required (with --echo: the model whose inputs form the payload)");
  if (absl::Status s = args.GetInt("version", &o->version); !s.ok()) return s;
  if (absl::Status s = args.GetInt("rows", &o->rows); !s.ok()) return s;
  if (o->rows < 1) return absl::InvalidArgumentError("--rows must be >= 1");
  absl::StatusOr<std::vector<int64_t>> concurrency = ParseIntList(args.Get("concurrency"), "concurrency", 1);
  if (!concurrency.ok()) return concurrency.status();
  o->concurrency = *concurrency;
  absl::StatusOr<std::vector<double>> rates = ParseDoubleList(args.Get("request-rate"), "request-rate", 1e-3);
  if (!rates.ok()) return rates.status();
  o->request_rates = *rates;
  if (o->concurrency.empty() && o->request_rates.empty()) o->concurrency = {1};
  struct IntFlag {
    const char* name;
    int64_t* value;
    int64_t min;
  };
  for (const IntFlag& f : {IntFlag{"deadline-ms", &o->deadline_ms, 0}, IntFlag{"window-ms", &o->window_ms, 10},
                           IntFlag{"warmup-ms", &o->warmup_ms, 0}, IntFlag{"max-windows", &o->max_windows, 1},
                           IntFlag{"stable-windows", &o->stable_windows, 1},
                           IntFlag{"channels", &o->channels, 1}, IntFlag{"max-inflight", &o->max_inflight, 1}}) {
    if (absl::Status s = args.GetInt(f.name, f.value); !s.ok()) return s;
    if (*f.value < f.min) return absl::InvalidArgumentError(absl::StrCat("--", f.name, " must be >= ", f.min));
  }
  if (absl::Status s = args.GetDouble("stability", &o->stability); !s.ok()) return s;
  int64_t seed = 1;
  if (absl::Status s = args.GetInt("seed", &seed); !s.ok()) return s;
  o->seed = static_cast<uint64_t>(seed);
  o->echo = args.GetBool("echo");
  o->verbose = args.GetBool("verbose");
  o->metrics_url = args.Get("metrics-url");
  for (const std::string& shape : args.GetAll("shape")) {
    const size_t eq = shape.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--shape '", shape, "': expected name=d1,d2,..."));
    }
    absl::StatusOr<std::vector<int64_t>> dims = ParseIntList(shape.substr(eq + 1), "shape", 0);
    if (!dims.ok()) return dims.status();
    o->shapes[shape.substr(0, eq)] = *dims;
  }
  *format = args.Get("format");
  if (*format != "table" && *format != "csv" && *format != "json") {
    return absl::InvalidArgumentError(absl::StrCat("--format must be table, csv or json, got '", *format, "'"));
  }
  *plot = args.Get("plot");
  return absl::OkStatus();
}

std::string LevelName(const LevelResult& r) {
  return r.mode == "concurrency" ? absl::StrCat("c=", static_cast<int64_t>(r.level))
                                 : absl::StrCat("r=", Fixed(r.level, r.level < 10 ? 2 : 0));
}

std::string ErrorsText(const LevelResult& r) {
  std::vector<std::string> parts;
  for (const auto& [code, n] : r.errors_by_code) parts.push_back(absl::StrCat(code, ":", n));
  return parts.empty() ? "0" : absl::StrJoin(parts, ",");
}

}  // namespace

std::string FormatReport(const BenchReport& report, const std::string& format) {
  const bool any_server = std::any_of(report.levels.begin(), report.levels.end(),
                                      [](const LevelResult& r) { return r.server.valid; });
  const bool any_rate = std::any_of(report.levels.begin(), report.levels.end(),
                                    [](const LevelResult& r) { return r.mode == "rate"; });
  if (format == "json") {
    nlohmann::json out;
    out["target"] = report.target;
    out["method"] = report.method;
    out["model"] = report.model;
    out["version"] = report.version;
    out["rows"] = report.rows;
    out["payload_bytes"] = report.payload_bytes;
    out["deadline_ms"] = report.deadline_ms;
    out["channels"] = report.channels;
    out["levels"] = nlohmann::json::array();
    for (const LevelResult& r : report.levels) {
      nlohmann::json l;
      l["mode"] = r.mode;
      l["level"] = r.level;
      l["windows"] = r.windows;
      l["stable"] = r.stable;
      l["seconds"] = r.seconds;
      l["sent"] = r.sent;
      l["ok"] = r.ok;
      l["late"] = r.late;
      l["errors"] = r.errors;
      l["errors_by_code"] = r.errors_by_code;
      l["throughput"] = r.throughput;
      l["rows_per_s"] = r.rows_per_s;
      l["goodput"] = r.goodput;
      l["goodput_rows_per_s"] = r.goodput_rows_per_s;
      l["max_send_lag_ms"] = r.max_send_lag_ms;
      l["client_cpu_cores"] = std::isnan(r.client_cpu_cores) ? nlohmann::json() : nlohmann::json(r.client_cpu_cores);
      l["server_cpu_cores"] = std::isnan(r.server_cpu_cores) ? nlohmann::json() : nlohmann::json(r.server_cpu_cores);
      l["latency_ms"] = {{"mean", r.latency.mean}, {"p50", r.latency.p50}, {"p90", r.latency.p90},
                         {"p99", r.latency.p99},   {"p99.9", r.latency.p999}, {"max", r.latency.max}};
      if (r.server.valid) {
        l["server"] = {{"queue_wait_ms", r.server.queue_wait_ms}, {"compute_ms", r.server.compute_ms},
                       {"batch_rows", r.server.batch_rows}, {"batches", r.server.batches},
                       {"requests", r.server.requests}};
        if (!std::isnan(r.server.request_ms)) l["server"]["request_ms"] = r.server.request_ms;
      }
      out["levels"].push_back(l);
    }
    return out.dump(2) + "\n";
  }
  std::vector<std::string> header = {"level", "win", "req/s", "rows/s", "p50_ms", "p90_ms",
                                     "p99_ms", "p99.9_ms", "max_ms"};
  if (any_rate || report.deadline_ms > 0) {
    header.push_back("goodput/s");
    header.push_back("late");
  }
  if (any_server) {
    for (const char* h : {"srv_ms", "srv_queue_ms", "srv_compute_ms", "srv_batch"}) header.push_back(h);
  }
  header.push_back("cli_cpu");
  header.push_back("srv_cpu");
  header.push_back("errors");
  std::vector<std::vector<std::string>> rows;
  for (const LevelResult& r : report.levels) {
    std::vector<std::string> row = {
        LevelName(r), absl::StrCat(r.windows, r.stable ? "" : "*"), Fixed(r.throughput, 1),
        Fixed(r.rows_per_s, 1), Fixed(r.latency.p50, 2), Fixed(r.latency.p90, 2),
        Fixed(r.latency.p99, 2), Fixed(r.latency.p999, 2), Fixed(r.latency.max, 2)};
    if (any_rate || report.deadline_ms > 0) {
      row.push_back(Fixed(r.goodput, 1));
      row.push_back(absl::StrCat(r.late));
    }
    if (any_server) {
      if (r.server.valid) {
        row.push_back(Fixed(r.server.request_ms, 3));
        row.push_back(Fixed(r.server.queue_wait_ms, 3));
        row.push_back(Fixed(r.server.compute_ms, 3));
        row.push_back(Fixed(r.server.batch_rows, 2));
      } else {
        row.insert(row.end(), {"-", "-", "-", "-"});
      }
    }
    row.push_back(Fixed(r.client_cpu_cores, 2));
    row.push_back(Fixed(r.server_cpu_cores, 2));
    row.push_back(ErrorsText(r));
    rows.push_back(std::move(row));
  }
  if (format == "csv") {
    std::string out;
    for (size_t i = 0; i < header.size(); ++i) out += (i ? "," : "") + CsvField(header[i]);
    out += "\n";
    for (const auto& row : rows) {
      for (size_t i = 0; i < row.size(); ++i) out += (i ? "," : "") + CsvField(row[i]);
      out += "\n";
    }
    return out;
  }
  std::string out = absl::StrCat(report.method, " ", report.model,
                                 report.version ? absl::StrCat(" v", report.version) : "", " at ",
                                 report.target, ": ", report.rows, " row(s)/request, ",
                                 report.payload_bytes, " B payload, ", report.channels, " channel(s)",
                                 report.deadline_ms > 0 ? absl::StrCat(", deadline ", report.deadline_ms, " ms") : "",
                                 "\n");
  out += FormatTable(header, rows);
  if (std::any_of(report.levels.begin(), report.levels.end(), [](const LevelResult& r) { return !r.stable; })) {
    out += "(* not stable within the window limit)\n";
  }
  return out;
}

std::string PlotReport(const BenchReport& report) {
  std::vector<PlotSeries> series;
  for (const char* mode : {"concurrency", "rate"}) {
    PlotSeries p50{absl::StrCat("p50 (", mode, ")"), std::string(mode) == "rate" ? "#2ca02c" : "#1f77b4", false, {}};
    PlotSeries p99{absl::StrCat("p99 (", mode, ")"), std::string(mode) == "rate" ? "#d62728" : "#ff7f0e", true, {}};
    for (const LevelResult& r : report.levels) {
      if (r.mode != mode || r.ok == 0) continue;
      p50.points.push_back({r.throughput, r.latency.p50, LevelName(r)});
      p99.points.push_back({r.throughput, r.latency.p99, ""});
    }
    if (!p50.points.empty()) {
      series.push_back(std::move(p50));
      series.push_back(std::move(p99));
    }
  }
  return LineChartSvg(absl::StrCat(report.method, " ", report.model, ": latency vs throughput (",
                                   report.rows, " row(s)/request)"),
                      "throughput (requests/s)", "latency (ms)", series);
}

}  // namespace bench

int BenchCommand(int argc, char** argv) {
  using bench::Fail;
  Args args("bench",
            "Measures throughput and latency of Predict (or Echo) under closed-loop concurrency or "
            "open-loop Poisson load.");
  args.Flag("target", "localhost:8500", "Server address (host:port or a gRPC target URI)");
  args.Flag("model", "", "Model name (required; with --echo it only defines the payload)");
  args.Flag("version", "0", "Model version (0: latest)");
  args.Flag("rows", "1", "Rows per request");
  args.Flag("concurrency", "", "Closed loop: comma-separated requests kept in flight, e.g. 1,2,4,8 (default 1)");
  args.Flag("request-rate", "", "Open loop: comma-separated Poisson arrival rates in requests/s");
  args.Flag("deadline-ms", "0", "gRPC deadline per request in ms (0: none)");
  args.Flag("window-ms", "5000", "Measurement window");
  args.Flag("warmup-ms", "2000", "Load before the first window, not counted");
  args.Flag("stability", "0.10", "Stop once throughput and p99 of the last windows are within this fraction of their mean");
  args.Flag("stable-windows", "3", "Windows the stability criterion looks at (and that are reported)");
  args.Flag("max-windows", "10", "Most windows per level");
  args.Flag("channels", "4", "gRPC channels (TCP connections) the calls are spread over");
  args.Flag("max-inflight", "20000", "Open loop: arrivals beyond this many in flight are dropped by the client");
  args.Flag("shape", "", "name=d1,d2: dims after the batch dim for an input (default: metadata, -1 -> 1)", true);
  args.Flag("echo", "false", "Send to microbatch.v1.Echo (server --enable_echo) instead of Predict");
  args.Flag("metrics-url", "", "host:port of the server's Prometheus /metrics, for the server-side split");
  args.Flag("format", "table", "table, csv or json");
  args.Flag("plot", "", "Write the latency-throughput curve to this SVG file");
  args.Flag("seed", "1", "Seed of the random inputs and of the Poisson arrivals");
  args.Flag("verbose", "false", "Print every window to stderr");
  if (absl::Status s = args.Parse(argc, argv); !s.ok()) return Fail(std::string(s.message()));
  if (args.help()) {
    std::cout << args.Usage();
    return 0;
  }
  bench::BenchOptions options;
  std::string format, plot;
  if (absl::Status s = bench::ParseOptions(args, &options, &format, &plot); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  std::optional<bench::MetricsEndpoint> metrics;
  if (!options.metrics_url.empty()) {
    absl::StatusOr<bench::MetricsEndpoint> endpoint = bench::ParseMetricsUrl(options.metrics_url);
    if (!endpoint.ok()) return Fail(std::string(endpoint.status().message()));
    metrics = *endpoint;
  }

  // The model's metadata shapes the payload.
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(-1);
  auto stub = v1::Inference::NewStub(
      grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), channel_args));
  v1::ModelMetadata metadata;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetModelMetadataRequest request;
    request.set_model(options.model);
    request.set_version(options.version);
    grpc::Status status = stub->GetModelMetadata(&context, request, &metadata);
    if (!status.ok()) {
      return Fail(absl::StrCat("GetModelMetadata: ",
                               absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                               ": ", status.error_message()));
    }
  }
  if (!options.echo && metadata.batching().max_batch_size() > 0 &&
      options.rows > metadata.batching().max_batch_size()) {
    return Fail(absl::StrCat("--rows ", options.rows, " exceeds the model's max_batch_size ",
                             metadata.batching().max_batch_size()));
  }
  absl::StatusOr<v1::PredictRequest> request = bench::BuildRequest(options, metadata);
  if (!request.ok()) return Fail(std::string(request.status().message()));
  const std::string bytes = request->SerializeAsString();
  grpc::Slice slice(bytes);
  grpc::ByteBuffer payload(&slice, 1);

  const std::string method = options.echo ? "/microbatch.v1.Echo/Echo" : "/microbatch.v1.Inference/Predict";
  bench::Target target(options, method, payload);
  if (!target.WaitForConnected(std::chrono::seconds(10))) {
    return Fail(absl::StrCat("cannot connect to ", options.target));
  }
  bench::Runner runner(options, &target, metrics, metadata.name(), absl::StrCat(metadata.version()));

  bench::BenchReport report;
  report.target = options.target;
  report.method = options.echo ? "Echo" : "Predict";
  report.model = metadata.name();
  report.version = metadata.version();
  report.rows = options.rows;
  report.payload_bytes = static_cast<int64_t>(bytes.size());
  report.deadline_ms = options.deadline_ms;
  report.channels = static_cast<int64_t>(target.channels());
  std::vector<bench::LevelSpec> levels;
  for (int64_t c : options.concurrency) levels.push_back({"concurrency", static_cast<double>(c)});
  for (double r : options.request_rates) levels.push_back({"rate", r});
  for (const bench::LevelSpec& level : levels) {
    bench::LevelResult result = runner.Run(level);
    std::cerr << "bench: " << report.method << " " << report.model << " " << bench::LevelName(result)
              << ": " << bench::Fixed(result.throughput, 1) << " req/s, p50 "
              << bench::Fixed(result.latency.p50, 2) << " ms, p99 " << bench::Fixed(result.latency.p99, 2)
              << " ms, errors " << bench::ErrorsText(result) << " (" << result.windows << " windows"
              << (result.stable ? "" : ", not stable") << ")\n";
    report.levels.push_back(std::move(result));
  }
  std::cout << bench::FormatReport(report, format);
  if (!plot.empty()) {
    std::ofstream out(plot);
    out << bench::PlotReport(report);
    if (!out) return Fail(absl::StrCat("cannot write ", plot));
  }
  return 0;
}

}  // namespace microbatch
