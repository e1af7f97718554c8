// Warm-up of a model instance before it takes traffic; backend-independent.
#ifndef MICROBATCH_SERVER_CORE_WARM_UP_H_
#define MICROBATCH_SERVER_CORE_WARM_UP_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/core/batcher.h"
#include "server/core/signature.h"

namespace microbatch {

// Runs `instance` once for each batch size with all-zero inputs, so that
// first-call compilation and allocation happen before real traffic.
//
// Fixed dims are taken as declared; variable dims (-1) have no true size, so
// they are tried at 1 and then at 64 (the smallest size a convolution or
// pooling stack takes need not be 1). When every guess fails for a model with
// variable dims, the warm-up is skipped, not failed: `skipped` (when not
// null) gets the last error and OK is returned, since a request's own shapes
// decide whether it runs. Otherwise a failed run fails (naming the batch
// size), and an output that does not keep the batch dimension first is
// FAILED_PRECONDITION.
absl::Status WarmUp(ModelInstance& instance, const ModelSignature& signature,
                    const std::vector<int>& batch_sizes, std::string* skipped = nullptr);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_WARM_UP_H_
