// Conversions between the wire types (protobuf, gRPC) and the core's types.
#ifndef MICROBATCH_SERVER_SERVICE_CONVERT_H_
#define MICROBATCH_SERVER_SERVICE_CONVERT_H_

#include <vector>

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "microbatch/v1/tensor.pb.h"
#include "server/core/batcher.h"
#include "server/core/signature.h"

namespace microbatch {

// The routing key of a gRPC call (sticky canary and shadow choice): its
// `microbatch-routing-key` metadata when set, else `request_id`.
std::string RoutingKey(const grpc::ServerContextBase& context, const std::string& request_id);

// Same code (the numeric values of both follow google.rpc.Code), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

DType FromProtoDType(v1::DataType dtype);
v1::DataType ToProtoDType(DType dtype);

// Views of `tensors` (which must outlive them). A dtype outside the enum is
// INVALID_ARGUMENT naming the tensor.
absl::StatusOr<std::vector<RequestTensor>> ToRequestTensors(
    const google::protobuf::RepeatedPtrField<v1::Tensor>& tensors);

// Appends the selected outputs of one task to `out`: one copy of the bytes.
void AppendOutputs(const ModelSignature& signature, const std::vector<int>& selected,
                   const TaskOutputs& outputs, google::protobuf::RepeatedPtrField<v1::Tensor>* out);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_CONVERT_H_
