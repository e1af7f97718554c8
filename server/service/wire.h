// Request and response bodies on the wire. The services take raw bytes
// (gRPC "raw" callback methods) and decode them here, so that a body that is
// not the request message is answered INVALID_ARGUMENT naming the message
// type, instead of gRPC's own UNIMPLEMENTED with no message.
#ifndef MICROBATCH_SERVER_SERVICE_WIRE_H_
#define MICROBATCH_SERVER_SERVICE_WIRE_H_

#include <grpcpp/support/byte_buffer.h>

#include <google/protobuf/message.h>

#include "absl/status/status.h"

namespace microbatch {

// Decodes `body` into `message`. INVALID_ARGUMENT when the bytes are not a
// valid encoding of the message type ("the request body (12 bytes) is not a
// valid microbatch.v1.PredictRequest").
absl::Status ParseBody(const grpc::ByteBuffer& body, google::protobuf::Message* message);

// Encodes `message` into `body`; INTERNAL on failure (a message too large).
absl::Status SerializeBody(const google::protobuf::Message& message, grpc::ByteBuffer* body);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_WIRE_H_
