// inference.GRPCInferenceService: the Open Inference Protocol (KServe v2)
// over gRPC, on the same port and through the same request path (and
// batches) as microbatch.v1.
#ifndef MICROBATCH_SERVER_V2_GRPC_SERVICE_H_
#define MICROBATCH_SERVER_V2_GRPC_SERVICE_H_

#include <atomic>
#include <functional>

#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/core/lifecycle/thread_pool.h"
#include "server/service/drain_gate.h"
#include "server/service/inference.h"

namespace microbatch::v2 {

// ModelInfer takes raw bytes and decodes them itself (a body that is not the
// message is INVALID_ARGUMENT); the other methods are small typed calls.
using GrpcServiceBase = inference::GRPCInferenceService::WithCallbackMethod_ServerLive<
    inference::GRPCInferenceService::WithCallbackMethod_ServerReady<
        inference::GRPCInferenceService::WithCallbackMethod_ModelReady<
            inference::GRPCInferenceService::WithCallbackMethod_ServerMetadata<
                inference::GRPCInferenceService::WithCallbackMethod_ModelMetadata<
                    inference::GRPCInferenceService::WithRawCallbackMethod_ModelInfer<
                        inference::GRPCInferenceService::WithCallbackMethod_RepositoryIndex<
                            inference::GRPCInferenceService::WithCallbackMethod_RepositoryModelLoad<
                                inference::GRPCInferenceService::WithCallbackMethod_RepositoryModelUnload<
                                    inference::GRPCInferenceService::WithCallbackMethod_ModelConfig<
                                        inference::GRPCInferenceService::WithCallbackMethod_ModelStatistics<
                                            inference::GRPCInferenceService::WithRawCallbackMethod_ModelStreamInfer<
                                                inference::GRPCInferenceService::Service>>>>>>>>>>>>;

// Thread-safe. Every ModelInfer call is answered exactly once; errors carry
// the same codes and messages as microbatch.v1 Predict.
//
// Inputs come either as raw_input_contents (one little-endian row-major
// buffer per input, in order) or as typed contents (the field the datatype
// names); outputs go back as raw_output_contents, in the order asked for
// (every output of the model when none is named).
class GrpcService final : public GrpcServiceBase {
 public:
  // `engine` is not owned and must outlive the service. `ready` says whether
  // the server is ready (models loaded, not draining).
  // `admin_pool` (not owned, must outlive the service's calls) runs the
  // repository calls, which wait for loads.
  GrpcService(InferenceEngine* engine, std::function<bool()> ready,
              lifecycle::ThreadPool* admin_pool)
      : engine_(engine), ready_(std::move(ready)), admin_pool_(admin_pool) {}

  // From now on ModelInfer is answered UNAVAILABLE at once; accepted calls
  // still finish.
  void StopAccepting() { gate_.Close(); }
  // ModelInfer calls accepted and not yet answered.
  int64_t in_flight() const { return gate_.in_flight(); }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  // The model-repository extension (Triton's), on the ModelManager.
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;
  // Triton's ModelConfig: the served version's configuration (ToTritonConfig).
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  // Triton's streaming inference (StreamInferReactor).
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext* context) override;
  // Triton's statistics extension (CollectStatistics).
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* context,
                                            const inference::ModelStatisticsRequest* request,
                                            inference::ModelStatisticsResponse* response) override;

 private:
  InferenceEngine* const engine_;
  const std::function<bool()> ready_;
  lifecycle::ThreadPool* const admin_pool_;
  DrainGate gate_;  // ModelInfer calls
};

// Triton's state names for the repository index: FAILED is UNAVAILABLE
// (with the failure as reason).
std::string TritonState(const std::string& state);

// The name and version the server reports in ServerMetadata (and GET /v2).
inline constexpr char kServerName[] = "microbatch";
const char* ServerVersion();

}  // namespace microbatch::v2

#endif  // MICROBATCH_SERVER_V2_GRPC_SERVICE_H_
