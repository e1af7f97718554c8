// microbatch.v1.ModelControl: the admin API of the live model repository
// (server/service/model_manager.h), over gRPC.
#ifndef MICROBATCH_SERVER_SERVICE_MODEL_CONTROL_SERVICE_H_
#define MICROBATCH_SERVER_SERVICE_MODEL_CONTROL_SERVICE_H_

#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "microbatch/v1/model_control.grpc.pb.h"
#include "server/core/lifecycle/thread_pool.h"
#include "server/service/inference.h"

namespace microbatch {

// How long an admin call waits when its caller set no deadline.
inline constexpr absl::Duration kDefaultAdminDeadline = absl::Seconds(60);

// The deadline of an admin call: the caller's, else now + 60 s.
absl::Time AdminDeadline(const grpc::CallbackServerContext& context);

// Runs `work` (which may block: loads wait for models) on `pool` and
// finishes `reactor` with its status. Never blocks the calling gRPC thread.
void FinishOnPool(lifecycle::ThreadPool* pool, grpc::ServerUnaryReactor* reactor,
                  std::function<absl::Status()> work);

// The index rows of `model` (every model when empty), as the v1 API has them.
void FillIndex(const ModelManager& models, const std::string& model,
               google::protobuf::RepeatedPtrField<v1::ModelVersionStatus>* out);

// Thread-safe. Calls that wait (LoadModel, UnloadModel) run on `pool`;
// RepositoryIndex (a directory scan, no waiting) on a thread of the
// service's own, so that it answers while loads keep `pool` busy; routing
// calls return at once.
class ModelControlService final : public v1::ModelControl::CallbackService {
 public:
  // Neither is owned; both must outlive the service's calls.
  ModelControlService(InferenceEngine* engine, lifecycle::ThreadPool* pool)
      : engine_(engine), pool_(pool) {}

  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const v1::RepositoryIndexRequest* request,
                                            v1::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context,
                                      const v1::LoadModelRequest* request,
                                      v1::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context,
                                        const v1::UnloadModelRequest* request,
                                        v1::UnloadModelResponse* response) override;
  grpc::ServerUnaryReactor* SetLabel(grpc::CallbackServerContext* context,
                                     const v1::SetLabelRequest* request,
                                     v1::SetLabelResponse* response) override;
  grpc::ServerUnaryReactor* SetCanary(grpc::CallbackServerContext* context,
                                      const v1::SetCanaryRequest* request,
                                      v1::SetCanaryResponse* response) override;
  grpc::ServerUnaryReactor* SetShadow(grpc::CallbackServerContext* context,
                                      const v1::SetShadowRequest* request,
                                      v1::SetShadowResponse* response) override;

 private:
  InferenceEngine* const engine_;
  lifecycle::ThreadPool* const pool_;
  lifecycle::ThreadPool index_pool_{1};
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_MODEL_CONTROL_SERVICE_H_
