// A stand-in for server/backend/torch_backend.cc with the same functions and
// no LibTorch, linked instead of it into the service tests that run under
// ThreadSanitizer (LibTorch and its OpenMP runtime are not instrumented) and
// into the model-config fuzzer.
//
// LoadTorchInstance() needs the model.pt file to exist (its content is not
// read) and returns an instance computing, for every declared output k (in
// signature order) and row element j, `(k + 2) * x[j % row_elements(x)]`
// where x is the first input when it is FP32; other outputs are zeros. A
// model file whose content is "fail" gives instances whose Run() returns
// INTERNAL; one whose content is "sleep:N" gives instances that take N ms
// per Run() (a slow model, e.g. a slow shadow candidate).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/backend/torch_backend.h"

namespace microbatch {
namespace {

class FakeTorchInstance final : public ModelInstance {
 public:
  FakeTorchInstance(ModelSignature signature, bool fail, std::chrono::milliseconds run_time)
      : signature_(std::move(signature)), fail_(fail), run_time_(run_time) {}

  absl::StatusOr<std::vector<TensorView>> Run(absl::Span<const TensorView> inputs) override {
    if (fail_) return absl::InternalError("fake model: asked to fail");
    if (inputs.size() != signature_.inputs.size()) {
      return absl::InternalError("fake model: wrong number of inputs");
    }
    int64_t rows = 0;  // the rows of the inputs given (optional ones may be absent)
    for (const TensorView& in : inputs) rows = std::max(rows, in.rows());
    const float* x = nullptr;
    size_t x_row_elements = 0;
    if (inputs[0].dtype == DType::kFloat32 && rows > 0) {
      x = static_cast<const float*>(inputs[0].data);
      x_row_elements = inputs[0].row_bytes() / sizeof(float);
    }
    std::vector<TensorView> outputs;
    for (size_t k = 0; k < signature_.outputs.size(); ++k) {
      const TensorSpec& spec = signature_.outputs[k];
      TensorView out;
      out.dtype = spec.dtype;
      out.shape = {rows};
      int64_t row_elements = 1;
      for (int64_t d : spec.dims) {
        out.shape.push_back(d < 0 ? 1 : d);
        row_elements *= d < 0 ? 1 : d;
      }
      auto storage =
          std::make_shared<std::vector<char>>(rows * row_elements * DTypeSize(spec.dtype), 0);
      if (spec.dtype == DType::kFloat32 && x != nullptr && x_row_elements > 0) {
        float* y = reinterpret_cast<float*>(storage->data());
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < row_elements; ++j) {
            y[r * row_elements + j] =
                static_cast<float>(k + 2) * x[r * x_row_elements + j % x_row_elements];
          }
        }
      }
      out.data = storage->data();
      out.byte_size = storage->size();
      out.owner = storage;
      outputs.push_back(std::move(out));
    }
    // A little model time, so that batches overlap with the RPC threads.
    std::this_thread::sleep_for(run_time_.count() > 0 ? std::chrono::microseconds(run_time_)
                                                      : std::chrono::microseconds(200));
    return outputs;
  }

 private:
  const ModelSignature signature_;
  const bool fail_;
  const std::chrono::milliseconds run_time_;
};

}  // namespace

bool TorchCudaAvailable() { return false; }

absl::StatusOr<std::unique_ptr<ModelInstance>> LoadTorchInstance(const TorchModelSpec& spec) {
  std::ifstream in(spec.path);
  if (!in) return absl::NotFoundError(absl::StrCat(spec.path, ": no such model file"));
  if (spec.device != "cpu") {
    return absl::FailedPreconditionError(absl::StrCat("device '", spec.device, "': fake backend"));
  }
  std::stringstream content;
  content << in.rdbuf();
  const std::string text = content.str();
  std::chrono::milliseconds run_time(0);
  if (text.rfind("sleep:", 0) == 0) run_time = std::chrono::milliseconds(std::atoi(text.c_str() + 6));
  return std::make_unique<FakeTorchInstance>(spec.signature, text == "fail", run_time);
}

}  // namespace microbatch
