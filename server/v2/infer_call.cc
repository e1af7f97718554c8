#include "server/v2/infer_call.h"

#include "absl/strings/str_cat.h"
#include "server/core/text.h"
#include "server/v2/classify_output.h"
#include "server/v2/datatype.h"
#include "server/v2/typed_contents.h"

namespace microbatch::v2 {

absl::Status ToRequestTensors(InferCall* call, std::vector<RequestTensor>* tensors) {
  const inference::ModelInferRequest& request = call->request;
  const int raw = request.raw_input_contents_size();
  if (raw > 0 && raw != request.inputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw_input_contents has ", raw, " buffers for ", request.inputs_size(),
        " inputs; send one buffer per input, in the order of `inputs`"));
  }
  call->typed.resize(static_cast<size_t>(request.inputs_size()));
  tensors->reserve(static_cast<size_t>(request.inputs_size()));
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& input = request.inputs(i);
    absl::StatusOr<DType> dtype = ParseDatatype(input.datatype(), input.name());
    if (!dtype.ok()) return dtype.status();
    RequestTensor tensor;
    tensor.name = input.name();
    tensor.dtype = *dtype;
    tensor.shape = absl::MakeConstSpan(input.shape().data(), static_cast<size_t>(input.shape_size()));
    if (input.parameters().count("shared_memory_region") > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", ClientText(input.name()),
          "': shared memory (parameter shared_memory_region) is not supported; send the data in "
          "raw_input_contents or contents"));
    }
    const bool has_typed = input.has_contents() && ContentsCount(input.contents()) > 0;
    if (raw > 0) {
      if (has_typed) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", ClientText(input.name()),
            "': both raw_input_contents and contents are set; send the data in one of them"));
      }
      tensor.data = request.raw_input_contents(i);
    } else {
      std::string& bytes = call->typed[static_cast<size_t>(i)];
      if (absl::Status s = DecodeContents(input.contents(), *dtype, input.name(), &bytes); !s.ok()) {
        return s;
      }
      tensor.data = bytes;
    }
    tensors->push_back(tensor);
  }
  return absl::OkStatus();
}

absl::StatusOr<InferenceRequest> ToInferenceRequest(InferCall* call, absl::Time received) {
  const inference::ModelInferRequest& request = call->request;
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(request.model_name(), request.model_version());
  if (!spec.ok()) return spec.status();
  InferenceRequest inference;
  inference.method = RpcMethod::kModelInfer;
  inference.model = *std::move(spec);
  inference.id = request.id();
  inference.received = received;
  // Triton's request parameter: the request's own timeout in microseconds
  // (0: none), on top of the gRPC deadline as the model's policy says.
  if (auto timeout = request.parameters().find("timeout"); timeout != request.parameters().end()) {
    const auto& value = timeout->second;
    if (value.parameter_choice_case() != inference::InferParameter::kInt64Param || value.int64_param() < 0) {
      inference.input_error =
          absl::InvalidArgumentError("parameter 'timeout' must be an int64_param of microseconds >= 0");
    } else if (value.int64_param() > 0) {
      inference.timeout = absl::Microseconds(value.int64_param());
    }
  }
  call->classification.assign(static_cast<size_t>(request.outputs_size()), 0);
  for (int k = 0; k < request.outputs_size(); ++k) {
    const auto& output = request.outputs(k);
    if (auto it = output.parameters().find("classification"); it != output.parameters().end()) {
      // Triton's clients send an int64_param.
      if (it->second.parameter_choice_case() != inference::InferParameter::kInt64Param ||
          it->second.int64_param() < 1) {
        inference.input_error = absl::InvalidArgumentError(absl::StrCat(
            "output '", ClientText(output.name()),
            "': parameter 'classification' must be an int64_param >= 1 (the number of classes)"));
      } else {
        call->classification[static_cast<size_t>(k)] = it->second.int64_param();
      }
    }
    if (output.parameters().count("shared_memory_region") > 0) {
      inference.input_error = absl::InvalidArgumentError(absl::StrCat(
          "output '", ClientText(output.name()),
          "': shared memory (parameter shared_memory_region) is not supported; the output comes in "
          "raw_output_contents"));
    }
    inference.outputs.push_back(output.name());
  }
  if (inference.input_error.ok()) inference.input_error = ToRequestTensors(call, &inference.inputs);
  return inference;
}

absl::Status FillInferResponse(const InferenceResult& result, const InferCall& call,
                               inference::ModelInferResponse* response) {
  response->set_model_name(result.model.name);
  response->set_model_version(absl::StrCat(result.model.version));
  response->set_id(call.request.id());
  for (size_t k = 0; k < result.selected.size(); ++k) {
    const int index = result.selected[k];
    auto* out = response->add_outputs();
    out->set_name(result.model.signature.outputs[static_cast<size_t>(index)].name);
    const int64_t class_count = k < call.classification.size() ? call.classification[k] : 0;
    if (class_count > 0) {
      absl::StatusOr<Classification> classes =
          ClassifyOutput(result, static_cast<size_t>(index), class_count);
      if (!classes.ok()) return classes.status();
      out->set_datatype("BYTES");
      for (int64_t d : classes->shape) out->add_shape(d);
      *response->add_raw_output_contents() = SerializeBytesTensor(classes->classes);
      continue;
    }
    out->set_datatype(DatatypeName(result.outputs.dtype(static_cast<size_t>(index))));
    for (int64_t d : result.model.signature.ToClientShape(result.outputs.shape(static_cast<size_t>(index)))) {
      out->add_shape(d);
    }
    const absl::string_view data = result.outputs.data(static_cast<size_t>(index));
    response->add_raw_output_contents()->assign(data.data(), data.size());
  }
  return absl::OkStatus();
}

}  // namespace microbatch::v2
