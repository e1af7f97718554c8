// Load generation of `microbatch bench`: the server under test (one payload
// sent through a generic stub over several channels), the closed-loop and
// open-loop load shapes, and the recorder that collects their completions
// into measurement windows.
//
// Every request sends the same pre-serialized payload (a grpc::ByteBuffer
// whose slices are shared, not copied, by each call) through a generic stub on
// the callback API, and responses are kept as raw bytes: the client does no
// per-request protobuf work, so it is not the bottleneck. Several channels,
// each with its own subchannel (TCP connection), spread the calls.
#ifndef MICROBATCH_CLIENT_BENCH_LOAD_H_
#define MICROBATCH_CLIENT_BENCH_LOAD_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/channel.h"

namespace microbatch {
namespace bench {

using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

// Milliseconds from `a` to `b`.
double MsBetween(SteadyClock::time_point a, SteadyClock::time_point b);

// A status code's name for the report; -1: BAD_RESPONSE (OK but
// undecodable), -2: CLIENT_DROPPED (open loop, not sent).
std::string CodeName(int code);

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

struct TargetOptions {
  std::string target;          // host:port or a gRPC target URI
  int64_t channels = 4;        // channels (TCP connections) the calls are spread over; >= 1
  std::string method;          // e.g. "/microbatch.v1.Inference/Predict"
  bool echo = false;           // responses echo the payload (microbatch.v1.Echo)
};

// `channels` channels to one server, all sending the same payload. Call() is
// thread-safe.
class Target {
 public:
  Target(const TargetOptions& options, const ChannelFactory& channel_factory, grpc::ByteBuffer payload);

  // False when a channel did not connect within `timeout`.
  bool WaitForConnected(std::chrono::seconds timeout);

  // Sends the payload on channel `channel` (modulo the channel count); `done`
  // runs on a gRPC thread with the final status, `response` holds the bytes.
  void Call(size_t channel, grpc::ClientContext* context, grpc::ByteBuffer* response,
            std::function<void(grpc::Status)> done);

  size_t channels() const { return stubs_.size(); }

  // Checks that an OK response decodes (Predict) or matches the payload (Echo).
  bool Valid(grpc::ByteBuffer& response);

 private:
  const std::string method_;
  const grpc::ByteBuffer payload_;
  const bool echo_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
};

// ---------------------------------------------------------------------------
// Load shapes.

class Load {
 public:
  virtual ~Load() = default;
  virtual void Start() = 0;
  // Stops sending and waits for every outstanding call (cancelling them after
  // a grace period of 10 s + the deadline).
  virtual void Stop() = 0;
};

// Closed loop: `concurrency` calls kept in flight; each completion sends the
// next call. `deadline_ms` 0: no deadline.
std::unique_ptr<Load> NewClosedLoop(Target* target, Recorder* recorder, int64_t concurrency,
                                    int64_t deadline_ms);

// Open loop: Poisson arrivals at `rate` requests/s from `seed`, whatever the
// responses do; arrivals beyond `max_inflight` calls in flight are dropped
// (CLIENT_DROPPED). Latency counts from the scheduled send time, so a client
// falling behind shows up in it.
std::unique_ptr<Load> NewOpenLoop(Target* target, Recorder* recorder, double rate, int64_t deadline_ms,
                                  int64_t max_inflight, uint64_t seed);

}  // namespace bench
}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_BENCH_LOAD_H_
