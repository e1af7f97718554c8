// TorchScript models defined in C++ (no Python needed) for the demo, the tests
// and the benchmarks, written as a model repository.
#ifndef MICROBATCH_SERVER_BACKEND_DEMO_MODELS_H_
#define MICROBATCH_SERVER_BACKEND_DEMO_MODELS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace microbatch {

// The models WriteModelRepository can write, by directory name:
//   mlp       x FP32[16] -> (logits FP32[4], probs FP32[4]) as a tuple
//   pair      a FP32[-1], b FP32[-1] -> {"sum", "product"} as a dict
//   identity  x FP32[-1] -> x (a trivial model for transport benchmarks)
//   flaky     x FP32[4] -> y = 2x; raises when any input is negative
//   mlp_bench x FP32[256] -> y FP32[10], an MLP 256-1024-1024-10
std::vector<std::string> DemoModelNames();

struct DemoModelOptions {
  // Which models to write; empty writes "mlp" and "pair".
  std::vector<std::string> models;
  // Versions written for each model (as directories 1..versions).
  int versions = 1;
  // Seed of the random weights; equal seeds give equal models.
  uint64_t seed = 42;
};

// Writes <dir>/<model>/config.pbtxt and <dir>/<model>/<v>/model.pt for each
// requested model. Version v of a model scales its weights by v so versions
// give different answers. Errors: INVALID_ARGUMENT for an unknown model name,
// INTERNAL when a file cannot be written.
absl::Status WriteModelRepository(const std::string& dir, const DemoModelOptions& options);

// Writes a TorchScript model whose methods are `source` (TorchScript, e.g.
// "def forward(self, x: Tensor) -> List[Tensor]:\n    return [x, x]\n") to
// `path`, creating its directory. For tests of what a model may take and
// return. Errors: INVALID_ARGUMENT when `source` does not compile, INTERNAL
// when the file cannot be written.
absl::Status WriteScriptModel(const std::string& path, const std::string& source);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_BACKEND_DEMO_MODELS_H_
