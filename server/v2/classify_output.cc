#include "server/v2/classify_output.h"

#include <string>
#include <vector>

#include "server/service/model_repository.h"

namespace microbatch::v2 {

absl::StatusOr<Classification> ClassifyOutput(const InferenceResult& result, size_t index, int64_t count) {
  const ModelSignature& signature = result.model.signature;
  const TensorSpec& spec = signature.outputs[index];
  const std::vector<std::vector<std::string>>& labels = result.model.output_labels;
  return Classify(spec.name, result.outputs.dtype(index), result.outputs.shape(index),
                  signature.has_batch_dimension, result.outputs.data(index), count,
                  index < labels.size() ? absl::MakeConstSpan(labels[index])
                                        : absl::Span<const std::string>());
}

}  // namespace microbatch::v2
