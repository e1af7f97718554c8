#include "server/core/warm_up.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>

#include "common/tensor/float16.h"

#include "absl/strings/str_cat.h"

namespace microbatch {

namespace {

// Runs `rows` rows of zeros, each variable dim set to `variable`.
absl::StatusOr<std::vector<TensorView>> RunZeros(ModelInstance& instance, const ModelSignature& signature,
                                                 int rows, int64_t variable) {
  std::vector<std::vector<uint8_t>> storage(signature.inputs.size());
  std::vector<TensorView> inputs(signature.inputs.size());
  for (size_t i = 0; i < signature.inputs.size(); ++i) {
    const TensorSpec& spec = signature.inputs[i];
    inputs[i].dtype = spec.dtype;
    inputs[i].shape = {rows};
    for (int64_t d : spec.dims) inputs[i].shape.push_back(d < 0 ? variable : d);
    const size_t bytes = static_cast<size_t>(*ElementCount(inputs[i].shape)) * DTypeSize(spec.dtype);
    storage[i].assign(bytes, 0);
    inputs[i].data = storage[i].data();
    inputs[i].byte_size = bytes;
  }
  return instance.Run(inputs);
}

// Every output keeps `rows` rows first; FAILED_PRECONDITION naming `what`
// otherwise.
absl::Status CheckOutputRows(const std::vector<TensorView>& outputs, const ModelSignature& signature,
                             int64_t rows, const std::string& what) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].rows() != rows) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, ": output '", i < signature.outputs.size() ? signature.outputs[i].name : "?",
          "' has shape ", ShapeToString(outputs[i].shape), "; outputs must keep the batch dimension first"));
    }
  }
  return absl::OkStatus();
}

// `elements` random values of `dtype` (see WarmUpSample::Fill::kRandom).
std::string RandomRow(DType dtype, int64_t elements, std::mt19937& random) {
  const size_t size = DTypeSize(dtype);
  std::string row(static_cast<size_t>(elements) * size, '\0');
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(0, 127);
  for (int64_t i = 0; i < elements; ++i) {
    char* at = row.data() + static_cast<size_t>(i) * size;
    auto put = [at](auto value) { std::memcpy(at, &value, sizeof(value)); };
    switch (dtype) {
      case DType::kFloat32: put(unit(random)); break;
      case DType::kFloat64: put(static_cast<double>(unit(random))); break;
      case DType::kFloat16: put(FloatToHalf(unit(random))); break;
      case DType::kBFloat16: put(FloatToBFloat16(unit(random))); break;
      case DType::kInt64: put(static_cast<int64_t>(small(random))); break;
      case DType::kInt32: put(static_cast<int32_t>(small(random))); break;
      case DType::kInt16: put(static_cast<int16_t>(small(random))); break;
      case DType::kInt8: put(static_cast<int8_t>(small(random))); break;
      case DType::kUInt8: put(static_cast<uint8_t>(small(random))); break;
      case DType::kBool: put(static_cast<uint8_t>(small(random) & 1)); break;
      case DType::kInvalid: break;
    }
  }
  return row;
}

}  // namespace

absl::Status RunWarmUpSamples(ModelInstance& instance, const ModelSignature& signature,
                              const std::vector<WarmUpSample>& samples) {
  std::mt19937 random(20221);  // fixed: a warm-up that fails, fails again the same way
  for (const WarmUpSample& sample : samples) {
    const std::string what = absl::StrCat("warm-up sample '", sample.name, "'");
    if (sample.inputs.size() != signature.inputs.size()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " gives ", sample.inputs.size(), " inputs, the model takes ",
                                                     signature.inputs.size()));
    }
    std::vector<std::string> storage(sample.inputs.size());
    std::vector<TensorView> inputs(sample.inputs.size());
    for (size_t i = 0; i < sample.inputs.size(); ++i) {
      const WarmUpSample::Input& in = sample.inputs[i];
      const DType dtype = signature.inputs[i].dtype;
      inputs[i].dtype = dtype;
      if (in.fill == WarmUpSample::Fill::kAbsent) continue;  // no shape: IsAbsent
      const std::optional<int64_t> elements = ElementCount(in.dims);
      if (!elements) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": input '", signature.inputs[i].name,
                                                       "' has shape ", ShapeToString(in.dims)));
      }
      const size_t row_bytes = static_cast<size_t>(*elements) * DTypeSize(dtype);
      std::string row;
      switch (in.fill) {
        case WarmUpSample::Fill::kZero: row.assign(row_bytes, '\0'); break;
        case WarmUpSample::Fill::kRandom: row = RandomRow(dtype, *elements, random); break;
        case WarmUpSample::Fill::kData: row = in.data; break;
        case WarmUpSample::Fill::kAbsent: break;
      }
      if (row.size() != row_bytes) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": input '", signature.inputs[i].name, "' needs ",
                                                       row_bytes, " bytes per row, the data has ", row.size()));
      }
      storage[i].reserve(row_bytes * static_cast<size_t>(sample.rows));
      for (int r = 0; r < sample.rows; ++r) storage[i] += row;
      inputs[i].shape = {sample.rows};
      inputs[i].shape.insert(inputs[i].shape.end(), in.dims.begin(), in.dims.end());
      inputs[i].data = storage[i].data();
      inputs[i].byte_size = storage[i].size();
    }
    for (int run = 0; run < sample.count; ++run) {
      absl::StatusOr<std::vector<TensorView>> outputs = instance.Run(inputs);
      if (!outputs.ok()) {
        return absl::Status(outputs.status().code(),
                            absl::StrCat(what, " (batch size ", sample.rows, ") failed: ", outputs.status().message()));
      }
      if (absl::Status s = CheckOutputRows(*outputs, signature, sample.rows, what); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status WarmUp(ModelInstance& instance, const ModelSignature& signature,
                    const std::vector<int>& batch_sizes, std::string* skipped) {
  const bool variable = std::any_of(signature.inputs.begin(), signature.inputs.end(), [](const TensorSpec& spec) {
    return std::find(spec.dims.begin(), spec.dims.end(), int64_t{-1}) != spec.dims.end();
  });
  for (int rows : batch_sizes) {
    absl::StatusOr<std::vector<TensorView>> outputs = RunZeros(instance, signature, rows, 1);
    if (!outputs.ok() && variable) outputs = RunZeros(instance, signature, rows, 64);
    if (!outputs.ok()) {
      const std::string message = absl::StrCat("warm-up with batch size ", rows, " failed: ",
                                               outputs.status().message());
      if (!variable) return absl::Status(outputs.status().code(), message);
      if (skipped != nullptr) {
        *skipped = absl::StrCat(message, " (variable dims tried at 1 and 64)");
      }
      return absl::OkStatus();
    }
    if (absl::Status s = CheckOutputRows(*outputs, signature, rows, absl::StrCat("warm-up with batch size ", rows));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace microbatch
