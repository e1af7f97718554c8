// Load generation of `microbatch bench`: the server under test (one payload
// sent through a generic stub over several channels), the closed-loop and
// open-loop load shapes, and the recorder that collects their completions
// into measurement windows.
//
// Every request sends the same pre-serialized payload and responses are kept
// as raw bytes: the client does no per-request protobuf or JSON work (but for
// a sample it checks), so it is not the bottleneck. gRPC (microbatch.v1 and
// v2 ModelInfer): a grpc::ByteBuffer whose slices are shared by every call,
// through a generic stub on the callback API, over several channels each
// with its own subchannel (TCP connection). REST: one JSON body, POSTed
// through a libcurl multi handle with reused easy handles (keep-alive).
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
#include "client/http_client.h"

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

// One reusable call slot of a Target: sends the target's payload, one call at
// a time. Exchanges are created once per closed-loop slot or open-loop pool
// entry and reused, so the hot path creates no gRPC stub or curl handle.
class Exchange {
 public:
  virtual ~Exchange() = default;

  // Sends the payload. `done` runs exactly once, on a transport thread, with
  // the outcome: 0 (OK), a gRPC status code 1..16 (REST: HTTP statuses as
  // HttpStatusToCode maps them, a timeout DEADLINE_EXCEEDED, other transport
  // failures UNAVAILABLE), or -1 (BAD_RESPONSE: OK, but with `check` the
  // response did not decode). `deadline` SystemClock::time_point::max(): none.
  // At most one call per exchange at a time; `done` may Start it again. The
  // exchange may be destroyed once `done` has been entered, as long as no
  // call is in flight.
  virtual void Start(SystemClock::time_point deadline, bool check, std::function<void(int code)> done) = 0;

  // Cancels the call in flight, if any (its `done` still runs, typically
  // with CANCELLED). Thread-safe.
  virtual void Cancel() = 0;
};

// A front end of one server, all exchanges sending the same payload.
// Thread-safe.
class Target {
 public:
  virtual ~Target() = default;
  // False when the server is not reachable within `timeout`.
  virtual bool WaitForConnected(std::chrono::seconds timeout) = 0;
  // A new exchange; `index` spreads exchanges over the gRPC channels.
  virtual std::unique_ptr<Exchange> NewExchange(size_t index) = 0;
  // gRPC channels (TCP connections) used; 0 for REST (HTTP/1.1 keep-alive:
  // one connection per request in flight, reused).
  virtual size_t connections() const = 0;
};

// Whether an OK response's bytes (gRPC message or HTTP body) decode as
// expected, for the first few responses of each level.
using ResponseCheck = std::function<bool(const std::string& response)>;

struct TargetOptions {
  std::string target;          // host:port or a gRPC target URI
  int64_t channels = 4;        // channels (TCP connections) the calls are spread over; >= 1
  std::string method;          // e.g. "/microbatch.v1.Inference/Predict"
  ResponseCheck check;         // null: every OK response is good
};

// gRPC: `channels` channels through a generic stub on the callback API; the
// payload (a pre-serialized message) is shared, not copied, by each call.
std::unique_ptr<Target> NewGrpcTarget(const TargetOptions& options, const ChannelFactory& channel_factory,
                                      grpc::ByteBuffer payload);

// REST: POST `body` (JSON) to endpoint.Url(path) through one curl multi
// handle driven by one thread; each exchange keeps its easy handle and
// response buffer, and connections are kept alive and reused. `check` sees
// the body of 2xx answers.
std::unique_ptr<Target> NewRestTarget(const HttpEndpoint& endpoint, const std::string& path, std::string body,
                                      ResponseCheck check);

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
