// The classification extension on a served answer, for every v2 front end
// (REST, unary and streaming gRPC).
#ifndef MICROBATCH_SERVER_V2_CLASSIFY_OUTPUT_H_
#define MICROBATCH_SERVER_V2_CLASSIFY_OUTPUT_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "server/core/classification.h"
#include "server/service/inference.h"

namespace microbatch::v2 {

// Output `index` (into the model's signature outputs) of `result` as its
// `count` highest classes, labelled with the output's label_filename.
// Errors as Classify's.
absl::StatusOr<Classification> ClassifyOutput(const InferenceResult& result, size_t index, int64_t count);

}  // namespace microbatch::v2

#endif  // MICROBATCH_SERVER_V2_CLASSIFY_OUTPUT_H_
