// The gRPC services: microbatch.v1.Inference (Predict, metadata) and the
// optional transport-only microbatch.v1.Echo.
#ifndef MICROBATCH_SERVER_SERVICE_INFERENCE_SERVICE_H_
#define MICROBATCH_SERVER_SERVICE_INFERENCE_SERVICE_H_

#include <atomic>

#include "microbatch/v1/inference.grpc.pb.h"
#include "server/core/memory_budget.h"
#include "server/service/batch_stream.h"
#include "server/service/drain_gate.h"
#include "server/service/inference.h"
#include "server/service/model_manager.h"

namespace microbatch {

// The methods take raw bytes and decode them (server/service/wire.h): a body
// that is not the request message is answered INVALID_ARGUMENT.
using InferenceServiceBase = v1::Inference::WithRawCallbackMethod_Predict<
    v1::Inference::WithRawCallbackMethod_BatchPredict<
        v1::Inference::WithRawCallbackMethod_GetModelMetadata<
            v1::Inference::WithRawCallbackMethod_ListModels<v1::Inference::Service>>>>;

// Thread-safe. Until the engine has a repository every RPC fails with
// UNAVAILABLE. Requests are validated before they are queued; each gets its
// own status and nothing it does affects other requests.
class InferenceService final : public InferenceServiceBase {
 public:
  // `metrics` is not owned and must outlive the service. `batch_window` is
  // the number of chunks each BatchPredict stream may have in flight.
  // `budget` (not owned, must outlive the service) bounds the bytes that
  // requests and chunks hold while they are decoded, queued, run and
  // answered.
  // `engine` (not owned, must outlive the service) runs Predict calls.
  InferenceService(InferenceEngine* engine, ServerMetrics* metrics, MemoryBudget* budget,
                   int batch_window)
      : engine_(engine), metrics_(metrics), budget_(budget), batch_window_(batch_window) {}
  // BatchPredict streams stop reading and end with UNAVAILABLE once their
  // in-flight chunks are answered; new streams are refused.
  void BeginDrain() { streams_.BeginDrain(); }
  // From now on new Predict calls are answered UNAVAILABLE at once (the
  // caller retries another replica); accepted ones still finish.
  void StopAccepting() { gate_.Close(); }
  // Predict calls and BatchPredict streams accepted and not yet finished.
  int64_t in_flight() { return gate_.in_flight() + streams_.size(); }
  // BatchPredict streams not yet done (gRPC has not called OnDone); a done
  // stream enqueues no more work, though chunks it queued may still wait.
  int64_t batch_streams() { return streams_.size(); }

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BatchPredict(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetModelMetadata(grpc::CallbackServerContext* context,
                                             const grpc::ByteBuffer* request,
                                             grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

 private:
  InferenceEngine* const engine_;
  ServerMetrics* const metrics_;
  MemoryBudget* const budget_;
  const int batch_window_;
  BatchStreamRegistry streams_;
  DrainGate gate_;  // Predict calls
};

// Returns the request as the response; measures the transport alone.
class EchoService final : public v1::Echo::CallbackService {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::PredictRequest* request,
                                 v1::PredictRequest* response) override;
};

// Describes one served model version.
void FillMetadata(const ModelManager& repository, const ServedModel& model,
                  v1::ModelMetadata* metadata);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_INFERENCE_SERVICE_H_
