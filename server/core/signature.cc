#include "server/core/signature.h"

#include <algorithm>
#include <limits>

#include "server/core/text.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace microbatch {

std::vector<int64_t> TensorSpec::BatchedShape() const {
  std::vector<int64_t> shape = {-1};
  shape.insert(shape.end(), dims.begin(), dims.end());
  return shape;
}

std::vector<int64_t> ModelSignature::ClientShape(const TensorSpec& spec) const {
  return has_batch_dimension ? spec.BatchedShape() : spec.dims;
}

std::vector<int64_t> ModelSignature::ToClientShape(std::vector<int64_t> server_shape) const {
  if (!has_batch_dimension && !server_shape.empty()) server_shape.erase(server_shape.begin());
  return server_shape;
}

namespace {

std::string InputNames(const ModelSignature& signature) {
  std::vector<std::string> names;
  for (const auto& spec : signature.inputs) names.push_back("'" + spec.name + "'");
  return absl::StrJoin(names, ", ");
}

// `batched`: the request's shape has a leading batch dimension.
absl::Status CheckShape(const TensorSpec& spec, const RequestTensor& tensor, bool batched) {
  const std::vector<int64_t> expected = batched ? spec.BatchedShape() : spec.dims;
  auto mismatch = [&] {
    return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "': expected shape ",
                                                   ShapeToString(expected), ", got ",
                                                   ShapeToString(tensor.shape)));
  };
  for (int64_t d : tensor.shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "': shape ",
                                                     ShapeToString(tensor.shape),
                                                     " has a negative dimension"));
    }
  }
  if (tensor.shape.size() != expected.size()) return mismatch();
  for (size_t i = batched ? 1 : 0; i < expected.size(); ++i) {
    if (expected[i] != -1 && expected[i] != tensor.shape[i]) return mismatch();
  }
  return absl::OkStatus();
}

absl::StatusOr<ValidatedInputs> Validate(const ModelSignature& signature,
                                         absl::Span<const RequestTensor> request, int64_t max_rows,
                                         bool batched) {
  ValidatedInputs result;
  result.inputs.resize(signature.inputs.size());
  std::vector<const RequestTensor*> by_spec(signature.inputs.size(), nullptr);
  for (const RequestTensor& tensor : request) {
    size_t index = 0;
    while (index < signature.inputs.size() && signature.inputs[index].name != tensor.name) ++index;
    if (index == signature.inputs.size()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown input '", ClientText(tensor.name),
                                                     "'; the model's inputs are ",
                                                     InputNames(signature)));
    }
    if (by_spec[index] != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", ClientText(tensor.name), "' is given more than once"));
    }
    by_spec[index] = &tensor;
  }

  int64_t rows = -1;
  std::string rows_from;
  for (size_t i = 0; i < signature.inputs.size(); ++i) {
    const TensorSpec& spec = signature.inputs[i];
    const RequestTensor* tensor = by_spec[i];
    if (tensor == nullptr && spec.optional) {
      TensorView& absent = result.inputs[i];
      absent.dtype = spec.dtype;  // no shape: IsAbsent
      absl::StrAppend(&result.shape_key, "absent;");
      continue;
    }
    if (tensor == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("missing input '", spec.name,
                                                     "'; the model's inputs are ",
                                                     InputNames(signature)));
    }
    if (tensor->dtype != spec.dtype) {
      return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "': expected dtype ",
                                                     DTypeName(spec.dtype), ", got ",
                                                     DTypeName(tensor->dtype)));
    }
    if (absl::Status s = CheckShape(spec, *tensor, batched); !s.ok()) return s;
    std::optional<int64_t> elements = ElementCount(tensor->shape);
    const size_t element_size = DTypeSize(spec.dtype);
    if (!elements || *elements > static_cast<int64_t>(INT64_MAX / element_size)) {
      return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "': shape ",
                                                     ShapeToString(tensor->shape),
                                                     " has too many elements"));
    }
    const uint64_t expected_bytes = static_cast<uint64_t>(*elements) * element_size;
    if (tensor->data.size() != expected_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", spec.name, "': shape ", ShapeToString(tensor->shape), " of ",
          DTypeName(spec.dtype), " needs ", expected_bytes, " bytes, got ", tensor->data.size()));
    }
    const int64_t tensor_rows = batched ? tensor->shape[0] : 1;
    if (tensor_rows == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", spec.name, "': zero rows; send at least one row"));
    }
    if (rows == -1) {
      rows = tensor_rows;
      rows_from = spec.name;
    } else if (rows != tensor_rows) {
      return absl::InvalidArgumentError(absl::StrCat("input '", spec.name, "' has ", tensor_rows,
                                                     " rows but input '", rows_from, "' has ",
                                                     rows));
    }
    TensorView& view = result.inputs[i];
    view.dtype = spec.dtype;
    view.shape.clear();
    if (!batched) view.shape.push_back(1);  // one row
    view.shape.insert(view.shape.end(), tensor->shape.begin(), tensor->shape.end());
    view.data = tensor->data.data();
    view.byte_size = tensor->data.size();
    absl::StrAppend(&result.shape_key, ShapeToString(absl::MakeSpan(view.shape).subspan(1)), ";");
  }
  if (rows == -1) {
    return absl::InvalidArgumentError(signature.inputs.empty()
                                          ? std::string("the model declares no inputs")
                                          : absl::StrCat("the request gives none of the model's inputs ",
                                                         InputNames(signature), "; send at least one"));
  }
  if (max_rows > 0 && rows > max_rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request has ", rows, " rows, more than the model's max_batch_size of ", max_rows,
        "; split it or stream it with BatchPredict"));
  }
  result.rows = rows;
  return result;
}

}  // namespace

absl::StatusOr<ValidatedInputs> ValidateInputs(const ModelSignature& signature,
                                               absl::Span<const RequestTensor> request,
                                               int64_t max_rows) {
  return Validate(signature, request, max_rows, /*batched=*/true);
}

absl::StatusOr<ValidatedInputs> ValidateCall(const ModelSignature& signature,
                                             absl::Span<const RequestTensor> request,
                                             int64_t max_rows) {
  return Validate(signature, request, max_rows, signature.has_batch_dimension);
}

absl::StatusOr<std::vector<int>> ResolveOutputs(const ModelSignature& signature,
                                                absl::Span<const std::string> requested) {
  std::vector<int> indices;
  if (requested.empty()) {
    for (size_t i = 0; i < signature.outputs.size(); ++i) indices.push_back(static_cast<int>(i));
    return indices;
  }
  for (const std::string& name : requested) {
    int found = -1;
    for (size_t i = 0; i < signature.outputs.size(); ++i) {
      if (signature.outputs[i].name == name) found = static_cast<int>(i);
    }
    if (found < 0) {
      std::vector<std::string> names;
      for (const auto& spec : signature.outputs) names.push_back("'" + spec.name + "'");
      return absl::InvalidArgumentError(absl::StrCat("unknown output '", ClientText(name),
                                                     "'; the model's outputs are ",
                                                     absl::StrJoin(names, ", ")));
    }
    for (int index : indices) {
      if (index == found) {
        return absl::InvalidArgumentError(absl::StrCat("output '", ClientText(name), "' is requested twice"));
      }
    }
    indices.push_back(found);
  }
  return indices;
}

int64_t EstimateOutputBytes(const ModelSignature& signature, const std::vector<int>& selected,
                            int64_t rows, int64_t input_bytes) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t total = 0;
  for (int index : selected) {
    const TensorSpec& spec = signature.outputs[index];
    int64_t bytes = static_cast<int64_t>(DTypeSize(spec.dtype));
    bool fixed = true;
    for (int64_t d : spec.dims) {
      if (d < 0) {
        fixed = false;
        break;
      }
      bytes = d != 0 && bytes > kMax / d ? kMax : bytes * d;
    }
    bytes = !fixed ? std::max<int64_t>(input_bytes, 0)
            : rows != 0 && bytes > kMax / rows ? kMax
                                               : bytes * rows;
    total = total > kMax - bytes ? kMax : total + bytes;
  }
  return total;
}

}  // namespace microbatch
