#include "server/service/unary_infer.h"

#include <algorithm>

#include <chrono>

#include "server/service/convert.h"

namespace microbatch {

grpc::ServerUnaryReactor* RefuseUnaryInfer(InferenceEngine* engine, RpcMethod method,
                                           absl::Time received, grpc::ServerUnaryReactor* reactor,
                                           const absl::Status& status) {
  engine->RecordRefused(method, status, received);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

void SetFromCallContext(grpc::CallbackServerContext* context, const std::string& request_id,
                        InferenceRequest* request) {
  request->may_run_inline = true;
  request->routing_key = RoutingKey(*context, request_id);
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    request->deadline = std::min(request->deadline, absl::FromChrono(context->deadline()));
  }
  request->is_cancelled = [context] { return context->IsCancelled(); };
}

}  // namespace microbatch
