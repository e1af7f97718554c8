// What the unary gRPC inference methods (v1 Predict, v2 ModelInfer) share
// around the engine's one request path.
#ifndef MICROBATCH_SERVER_SERVICE_UNARY_INFER_H_
#define MICROBATCH_SERVER_SERVICE_UNARY_INFER_H_

#include <string>

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/service/inference.h"

namespace microbatch {

// Answers a call refused before it reached the engine (draining, a body that
// does not decode, a bad model name or version): counts it in the metrics as
// `method` received at `received`, finishes `reactor` with `status`, and
// returns `reactor`.
grpc::ServerUnaryReactor* RefuseUnaryInfer(InferenceEngine* engine, RpcMethod method,
                                           absl::Time received, grpc::ServerUnaryReactor* reactor,
                                           const absl::Status& status);

// Sets in `request` what the call's context says: the routing key (the
// `microbatch-routing-key` metadata, else `request_id`), the deadline, the
// caller's cancellation, and that it may run inline (a callback reactor may
// finish before its handler returns). `context` must outlive the request.
void SetFromCallContext(grpc::CallbackServerContext* context, const std::string& request_id,
                        InferenceRequest* request);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_UNARY_INFER_H_
