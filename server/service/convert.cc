#include "server/service/convert.h"

#include "server/core/text.h"

#include "absl/strings/str_cat.h"

namespace microbatch {

std::string RoutingKey(const grpc::ServerContextBase& context, const std::string& request_id) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("microbatch-routing-key");
  if (it != metadata.end()) return std::string(it->second.data(), it->second.size());
  return request_id;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

DType FromProtoDType(v1::DataType dtype) {
  const int value = static_cast<int>(dtype);
  if (value < static_cast<int>(DType::kFloat32) || value > static_cast<int>(DType::kBool)) {
    return DType::kInvalid;
  }
  return static_cast<DType>(value);
}

v1::DataType ToProtoDType(DType dtype) { return static_cast<v1::DataType>(static_cast<int>(dtype)); }

absl::StatusOr<std::vector<RequestTensor>> ToRequestTensors(
    const google::protobuf::RepeatedPtrField<v1::Tensor>& tensors) {
  std::vector<RequestTensor> views;
  views.reserve(tensors.size());
  for (const v1::Tensor& tensor : tensors) {
    RequestTensor view;
    view.name = tensor.name();
    view.dtype = FromProtoDType(tensor.dtype());
    if (view.dtype == DType::kInvalid) {
      return absl::InvalidArgumentError(absl::StrCat("input '", ClientText(tensor.name()), "': dtype ",
                                                     static_cast<int>(tensor.dtype()),
                                                     " is not a valid DataType"));
    }
    view.shape = absl::MakeConstSpan(tensor.shape().data(), tensor.shape().size());
    view.data = tensor.data();
    views.push_back(view);
  }
  return views;
}

void AppendOutputs(const ModelSignature& signature, const std::vector<int>& selected,
                   const TaskOutputs& outputs, google::protobuf::RepeatedPtrField<v1::Tensor>* out) {
  for (int index : selected) {
    v1::Tensor* tensor = out->Add();
    tensor->set_name(signature.outputs[index].name);
    tensor->set_dtype(ToProtoDType(outputs.dtype(index)));
    for (int64_t d : signature.ToClientShape(outputs.shape(index))) tensor->add_shape(d);
    const absl::string_view bytes = outputs.data(index);
    tensor->set_data(bytes.data(), bytes.size());
  }
}

}  // namespace microbatch
