// Warm-up of a model instance before it takes traffic; backend-independent.
#ifndef MICROBATCH_SERVER_CORE_WARM_UP_H_
#define MICROBATCH_SERVER_CORE_WARM_UP_H_

#include <cstdint>
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

// One warm-up request that the model's configuration gives (Triton's
// model_warmup): what shapes and values the model is warmed up with, instead
// of guessed ones.
struct WarmUpSample {
  enum class Fill {
    kZero,    // all bytes 0
    kRandom,  // floating types uniform in [0, 1), integers in [0, 127], bool 0 or 1
    kData,    // `data`: one row's bytes (row-major, little-endian)
    kAbsent,  // left out (an optional input): no dims, no data
  };
  struct Input {
    // One row's shape (no batch dimension), every dim >= 0.
    std::vector<int64_t> dims;
    Fill fill = Fill::kZero;
    // kData only: exactly one row's bytes, the same in every row.
    std::string data;
  };
  // Names the sample in errors.
  std::string name;
  // Rows of the batch (>= 1); each row gets the same values.
  int rows = 1;
  // Runs of the sample (>= 1).
  int count = 1;
  // One per signature input, in the signature's order.
  std::vector<Input> inputs;
};

// Runs `instance` with each sample, `count` times, in order. The caller has
// checked the samples against `signature` (one input each, dtypes from the
// signature, `data` sized to one row). Errors keep the model's code and name
// the sample; an output that does not keep the batch dimension first is
// FAILED_PRECONDITION, as in WarmUp.
absl::Status RunWarmUpSamples(ModelInstance& instance, const ModelSignature& signature,
                              const std::vector<WarmUpSample>& samples);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_WARM_UP_H_
