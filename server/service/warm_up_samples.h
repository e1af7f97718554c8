// Warm-up samples given by a model's configuration (v1 `warmup`, Triton's
// model_warmup): checked when the configuration is planned, turned into the
// core's WarmUpSample (files read) when a version loads.
//
// Thread-safe: pure functions (ReadWarmUpSamples reads files).
#ifndef MICROBATCH_SERVER_SERVICE_WARM_UP_SAMPLES_H_
#define MICROBATCH_SERVER_SERVICE_WARM_UP_SAMPLES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "microbatch/v1/model_config.pb.h"
#include "server/core/signature.h"
#include "server/core/warm_up.h"

namespace microbatch {

// Largest warm-up batch, in bytes per input, that a configuration may ask for.
inline constexpr int64_t kMaxWarmUpInputBytes = int64_t{1} << 30;

// Checks `config`'s warm-up samples against its inputs and fills their
// defaults (name "sample_<i>", batch_size 1, count 1, dims the input's).
// `config` has max_batch_size planned (1 without a batch dimension).
// Errors are INVALID_ARGUMENT, start with `source` and name the sample.
absl::Status CheckWarmUpSamples(v1::ModelConfig* config, const std::string& source);

// The checked samples of `config` in the order of `signature`'s inputs,
// with each input_data_file read from `model_dir`/warmup/. Errors:
// NOT_FOUND for a file that cannot be read, INVALID_ARGUMENT for one whose
// size is not one row's; both name the sample, the input and the file.
absl::StatusOr<std::vector<WarmUpSample>> ReadWarmUpSamples(const v1::ModelConfig& config,
                                                            const ModelSignature& signature,
                                                            const std::string& model_dir);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_WARM_UP_SAMPLES_H_
