#include "server/service/wire.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include "absl/strings/str_cat.h"

namespace microbatch {

absl::Status ParseBody(const grpc::ByteBuffer& body, google::protobuf::Message* message) {
  grpc::ByteBuffer copy(body);  // the reader needs a mutable buffer; this copies no bytes
  grpc::ProtoBufferReader reader(&copy);
  if (!reader.status().ok() || !message->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat("the request body (", body.Length(),
                                                   " bytes) is not a valid ",
                                                   message->GetDescriptor()->full_name()));
  }
  return absl::OkStatus();
}

absl::Status SerializeBody(const google::protobuf::Message& message, grpc::ByteBuffer* body) {
  bool own_buffer = false;
  grpc::Status status =
      grpc::GenericSerialize<grpc::ProtoBufferWriter, google::protobuf::Message>(message, body,
                                                                       &own_buffer);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot encode the response: ", status.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace microbatch
