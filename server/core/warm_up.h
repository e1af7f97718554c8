// Warm-up of a model instance before it takes traffic; backend-independent.
#ifndef MICROBATCH_SERVER_CORE_WARM_UP_H_
#define MICROBATCH_SERVER_CORE_WARM_UP_H_

#include <vector>

#include "absl/status/status.h"
#include "server/core/batcher.h"
#include "server/core/signature.h"

namespace microbatch {

// Runs `instance` once for each batch size with all-zero inputs (variable
// dimensions set to 1), so that first-call compilation and allocation happen
// before real traffic. Fails (naming the batch size) when a run fails, or
// FAILED_PRECONDITION when an output does not keep the batch dimension first.
absl::Status WarmUp(ModelInstance& instance, const ModelSignature& signature,
                    const std::vector<int>& batch_sizes);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_WARM_UP_H_
