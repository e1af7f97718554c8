// TorchScript model instances run by LibTorch. This header is torch-free; only
// torch_backend.cc includes LibTorch.
#ifndef MICROBATCH_SERVER_BACKEND_TORCH_BACKEND_H_
#define MICROBATCH_SERVER_BACKEND_TORCH_BACKEND_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/batcher.h"
#include "server/core/warm_up.h"  // WarmUp, used with the instances made here
#include "server/core/signature.h"

namespace microbatch {

// Where one declared output is found in the value `forward` returns.
struct OutputBinding {
  enum class Kind { kTensor, kTupleIndex, kDictKey };
  Kind kind = Kind::kTensor;
  int tuple_index = 0;
  std::string dict_key;
};

struct TorchModelSpec {
  // The model.pt file.
  std::string path;
  ModelSignature signature;
  // forward_arg[i]: position of signature.inputs[i] among forward's arguments
  // (empty when forward_arg_names is not).
  std::vector<int> forward_arg;
  // When not empty: forward_arg_names[i] is the name of the argument of
  // forward that signature.inputs[i] is passed as; the positions are taken
  // from the model's signature at load.
  std::vector<std::string> forward_arg_names;
  // One per signature.outputs entry.
  std::vector<OutputBinding> outputs;
  // One per signature.inputs / signature.outputs entry, or empty for none:
  // the shape of one row as forward takes or returns it, when it differs
  // from the declared dims (same elements; at most one -1). An output row
  // forward returns that differs from its (reshaped) row only by dimensions
  // of size 1 is viewed in the declared shape; another shape is INTERNAL.
  std::vector<std::optional<std::vector<int64_t>>> input_reshape;
  std::vector<std::optional<std::vector<int64_t>>> output_reshape;
  // "cpu" or "cuda:N".
  std::string device = "cpu";
  // Intra-op threads for the thread running this instance; 0 leaves LibTorch's
  // default.
  int intra_op_threads = 0;
  // Freeze and apply optimize_for_inference at load.
  bool optimize_for_inference = false;
};

// Loads one instance of a TorchScript model. A model whose forward takes
// exactly one argument of type Dict[str, Tensor] gets every input in it,
// keyed by the input's name (an optional input left out is not in it), and
// forward_arg / forward_arg_names are not used. Errors: NOT_FOUND for a missing
// file, INVALID_ARGUMENT when LibTorch cannot load it or forward_arg_names
// do not match forward's arguments, FAILED_PRECONDITION for
// a CUDA device on a build or machine without CUDA. The instance's Run()
// converts LibTorch errors into INTERNAL with the model's message; it must be
// called from one thread at a time.
absl::StatusOr<std::unique_ptr<ModelInstance>> LoadTorchInstance(const TorchModelSpec& spec);

// True when LibTorch was built with CUDA and sees at least one GPU.
bool TorchCudaAvailable();


}  // namespace microbatch

#endif  // MICROBATCH_SERVER_BACKEND_TORCH_BACKEND_H_
