// inference.GRPCInferenceService/ModelStreamInfer (Triton's streaming call,
// used by tritonclient's start_stream/async_stream_infer and perf_analyzer
// --streaming): ModelInferRequests in, one ModelStreamInferResponse out per
// request, in the order the answers are ready, through the same request path
// as ModelInfer.
#ifndef MICROBATCH_SERVER_V2_STREAM_INFER_H_
#define MICROBATCH_SERVER_V2_STREAM_INFER_H_

#include <atomic>
#include <deque>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "inference/grpc_predict_v2.pb.h"
#include "server/core/sync.h"
#include "server/service/drain_gate.h"
#include "server/service/inference.h"

namespace microbatch::v2 {

// One stream. Every request read gets exactly one response: its outputs in
// infer_response, or its error in error_message (with infer_response's id
// and model); a bad request never ends the stream. At most
// kMaxPendingRequests requests of a stream are in the engine at once; beyond
// that the next read waits (flow control back to the client). The stream
// ends OK once the client has half-closed and every response is written;
// CANCELLED when the client cancels or a write fails (its requests still
// finish in the engine first). Deletes itself when done.
//
// Thread-safe: gRPC reactions and engine callbacks run on any thread.
//
// Messages travel as raw bytes (ModelInferRequest in, ModelStreamInferResponse
// out), parsed and serialized here as ModelInfer does; a message that does
// not parse gets an error response.
class StreamInferReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  static constexpr int kMaxPendingRequests = 64;

  // `engine` and `gate` are not owned and must outlive the stream; each
  // request enters `gate` (a closed gate answers it UNAVAILABLE).
  StreamInferReactor(InferenceEngine* engine, DrainGate* gate, grpc::CallbackServerContext* context);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Parses `body` and sends the request to the engine; answers it at once
  // if it cannot be sent.
  void Submit(const grpc::ByteBuffer& body);
  // Queues a response and starts a write when none is in flight; counts
  // the request out.
  void Answer(const inference::ModelStreamInferResponse& response);
  // What to start next; started by Run once mu_ is released (Finish may
  // delete the reactor, and gRPC may react on another thread at once).
  struct Steps {
    const grpc::ByteBuffer* write = nullptr;
    bool read = false;
    bool finish = false;
    grpc::Status status;
  };
  // The next read, write and Finish the state allows, marked as started.
  Steps Plan() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(const Steps& steps);

  // gRPC hands the reactor from the handler's thread to the threads that
  // run its reactions through its completion queue, which ThreadSanitizer
  // cannot see (Debian's gRPC is not instrumented): every reaction first
  // acquires what the constructor released, so TSan sees the construction
  // happen before it. Free at run time (one load).
  void SeeConstruction() const;
  std::atomic<bool> constructed_{false};

  InferenceEngine* const engine_;
  DrainGate* const gate_;
  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer incoming_;  // the read in flight fills it; OnReadDone only

  Mutex mu_;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;      // a read is in flight
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;   // the client half-closed (or the read failed)
  bool broken_ ABSL_GUARDED_BY(mu_) = false;       // cancelled or a write failed: write no more
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;           // requests read and not yet answered
  std::deque<std::unique_ptr<grpc::ByteBuffer>> queue_ ABSL_GUARDED_BY(mu_);  // serialized responses
  std::unique_ptr<grpc::ByteBuffer> writing_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microbatch::v2

#endif  // MICROBATCH_SERVER_V2_STREAM_INFER_H_
