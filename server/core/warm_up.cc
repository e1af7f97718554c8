#include "server/core/warm_up.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace microbatch {

namespace {

// Runs `rows` rows of zeros, each variable dim set to `variable`.
absl::StatusOr<std::vector<TensorView>> RunZeros(ModelInstance& instance, const ModelSignature& signature,
                                                 int rows, int64_t variable) {
  std::vector<std::vector<uint8_t>> storage(signature.inputs.size());
  std::vector<TensorView> inputs(signature.inputs.size());
  for (size_t i = 0; i < signature.inputs.size(); ++i) {
    const TensorSpec& spec = signature.inputs[i];
    inputs[i].dtype = spec.dtype;
    inputs[i].shape = {rows};
    for (int64_t d : spec.dims) inputs[i].shape.push_back(d < 0 ? variable : d);
    const size_t bytes = static_cast<size_t>(*ElementCount(inputs[i].shape)) * DTypeSize(spec.dtype);
    storage[i].assign(bytes, 0);
    inputs[i].data = storage[i].data();
    inputs[i].byte_size = bytes;
  }
  return instance.Run(inputs);
}

}  // namespace

absl::Status WarmUp(ModelInstance& instance, const ModelSignature& signature,
                    const std::vector<int>& batch_sizes, std::string* skipped) {
  const bool variable = std::any_of(signature.inputs.begin(), signature.inputs.end(), [](const TensorSpec& spec) {
    return std::find(spec.dims.begin(), spec.dims.end(), int64_t{-1}) != spec.dims.end();
  });
  for (int rows : batch_sizes) {
    absl::StatusOr<std::vector<TensorView>> outputs = RunZeros(instance, signature, rows, 1);
    if (!outputs.ok() && variable) outputs = RunZeros(instance, signature, rows, 64);
    if (!outputs.ok()) {
      const std::string message = absl::StrCat("warm-up with batch size ", rows, " failed: ",
                                               outputs.status().message());
      if (!variable) return absl::Status(outputs.status().code(), message);
      if (skipped != nullptr) {
        *skipped = absl::StrCat(message, " (variable dims tried at 1 and 64)");
      }
      return absl::OkStatus();
    }
    for (size_t i = 0; i < outputs->size(); ++i) {
      if ((*outputs)[i].rows() != rows) {
        return absl::FailedPreconditionError(absl::StrCat(
            "warm-up with batch size ", rows, ": output '", signature.outputs[i].name,
            "' has shape ", ShapeToString((*outputs)[i].shape),
            "; outputs must keep the batch dimension first"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace microbatch
