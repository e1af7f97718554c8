// Model repositories written for Triton Inference Server's PyTorch backend:
// their config.pbtxt (Triton's ModelConfig in text format, platform
// "pytorch_libtorch" or backend "pytorch") read as microbatch's own
// v1::ModelConfig, so that such a repository is served unchanged.
//
// Honoured: name, platform/backend, max_batch_size (0: no_batch_dimension),
// input/output (name, data_type, dims, reshape; input optional), dynamic_batching.max_queue_delay_microseconds and
// .default_queue_policy (max_queue_size; default_timeout_microseconds,
// allow_timeout_override and timeout_action as request_timeout: DELAY
// refuses nothing for a timeout), instance_group (count, kind, gpus:
// one device per model), version_policy, default_model_filename "model.pt",
// parameters INTRA_OP_THREAD_COUNT, response_cache.enable, model_warmup (as
// v1 `warmup`; an input's data_type, when set, must be the model input's),
// an output's label_filename (the classification extension's labels).
// Tensor binding follows the PyTorch backend: inputs named <name>__<i> are
// forward's argument i, other input names are forward's argument names;
// outputs named <name>__<i> are element i of the tuple or list forward
// returns, otherwise the outputs are its elements in the order listed.
// Refused with INVALID_ARGUMENT naming the field:
// shape-tensor and ragged inputs, TYPE_STRING and unsigned types wider than 8
// bits, sequence batching, ensembles, batch inputs/outputs, decoupled models,
// several GPUs per model, another platform or file name.
// Ignored (they tune Triton itself): everything else, e.g. optimization,
// preferred_batch_size, metric_tags, other parameters.
//
// Thread-safe: pure functions.
#ifndef MICROBATCH_SERVER_SERVICE_TRITON_CONFIG_H_
#define MICROBATCH_SERVER_SERVICE_TRITON_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "microbatch/v1/model_config.pb.h"
#include "triton/model_config.pb.h"

namespace microbatch {

// Bytes of response cache given to a Triton model with response_cache
// { enable: true } (Triton sizes its cache for the whole server).
inline constexpr int64_t kTritonResponseCacheBytes = int64_t{64} << 20;

// `text` as a Triton model configuration, or nullopt when it is not one:
// it must parse as one (fields microbatch does not declare are skipped) and
// name a Triton platform or backend, a tensor data_type, an instance_group
// or a scheduler. A file in microbatch's own format that fails to parse (a
// typo) is not one, so its own parse error is reported.
std::optional<triton::ModelConfig> ParseTritonConfig(const std::string& text);

// Converts a Triton configuration read from `path` (which messages name).
// Errors: INVALID_ARGUMENT for what microbatch cannot serve as Triton would
// (see above).
absl::StatusOr<v1::ModelConfig> ConvertTritonConfig(const triton::ModelConfig& config, const std::string& path);

// A served model's configuration (a planned v1::ModelConfig: defaults
// filled) as Triton reports it: name, platform "pytorch_libtorch", backend
// "pytorch", max_batch_size, inputs and outputs, dynamic_batching,
// instance_group, version_policy, default_model_filename, INTRA_OP_THREAD_COUNT,
// response_cache, model_warmup.
triton::ModelConfig ToTritonConfig(const v1::ModelConfig& config);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_TRITON_CONFIG_H_
