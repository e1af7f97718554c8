#include "server/core/warm_up.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace microbatch {

absl::Status WarmUp(ModelInstance& instance, const ModelSignature& signature,
                    const std::vector<int>& batch_sizes) {
  for (int rows : batch_sizes) {
    std::vector<std::vector<uint8_t>> storage(signature.inputs.size());
    std::vector<TensorView> inputs(signature.inputs.size());
    for (size_t i = 0; i < signature.inputs.size(); ++i) {
      const TensorSpec& spec = signature.inputs[i];
      inputs[i].dtype = spec.dtype;
      inputs[i].shape = {rows};
      for (int64_t d : spec.dims) inputs[i].shape.push_back(d < 0 ? 1 : d);
      const size_t bytes = static_cast<size_t>(*ElementCount(inputs[i].shape)) * DTypeSize(spec.dtype);
      storage[i].assign(bytes, 0);
      inputs[i].data = storage[i].data();
      inputs[i].byte_size = bytes;
    }
    absl::StatusOr<std::vector<TensorView>> outputs = instance.Run(inputs);
    if (!outputs.ok()) {
      return absl::Status(outputs.status().code(),
                          absl::StrCat("warm-up with batch size ", rows, " failed: ",
                                       outputs.status().message()));
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
