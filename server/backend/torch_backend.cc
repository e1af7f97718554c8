#include "server/backend/torch_backend.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace microbatch {
namespace {

std::optional<at::ScalarType> ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return at::kFloat;
    case DType::kFloat64: return at::kDouble;
    case DType::kFloat16: return at::kHalf;
    case DType::kBFloat16: return at::kBFloat16;
    case DType::kInt64: return at::kLong;
    case DType::kInt32: return at::kInt;
    case DType::kInt16: return at::kShort;
    case DType::kInt8: return at::kChar;
    case DType::kUInt8: return at::kByte;
    case DType::kBool: return at::kBool;
    case DType::kInvalid: break;
  }
  return std::nullopt;
}

DType FromScalarType(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    case at::kLong: return DType::kInt64;
    case at::kInt: return DType::kInt32;
    case at::kShort: return DType::kInt16;
    case at::kChar: return DType::kInt8;
    case at::kByte: return DType::kUInt8;
    case at::kBool: return DType::kBool;
    default: return DType::kInvalid;
  }
}

// The row shape `declared` (-1: any size) with its sizes taken from
// `returned` when the two differ only by dimensions of size 1 (a model
// that returns [batch] for dims [1], or [batch, 4] for dims [1, 4]):
// dropping or adding unit dimensions keeps every element where it is, so
// the rows can be viewed in the declared shape. nullopt otherwise.
std::optional<std::vector<int64_t>> UnitDimsApart(c10::IntArrayRef returned,
                                                  const std::vector<int64_t>& declared) {
  std::vector<int64_t> kept_returned;
  for (int64_t d : returned) {
    if (d != 1) kept_returned.push_back(d);
  }
  std::vector<int64_t> resolved = declared;
  size_t next = 0;
  for (int64_t& d : resolved) {
    if (d == 1) continue;
    if (next == kept_returned.size() || (d != -1 && d != kept_returned[next])) return std::nullopt;
    d = kept_returned[next++];
  }
  if (next != kept_returned.size()) return std::nullopt;
  return resolved;
}

// A LibTorch error without its C++ backtrace; for TorchScript interpreter
// errors, only the final line (e.g. "RuntimeError: ...") without the
// script traceback.
std::string Summarize(std::string message) {
  const size_t cut = message.find("\nException raised from");
  if (cut != std::string::npos) message.resize(cut);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  if (message.find("Traceback of TorchScript") != std::string::npos) {
    const size_t last = message.rfind('\n');
    if (last != std::string::npos) message = message.substr(last + 1);
  }
  return message;
}

class TorchInstance : public ModelInstance {
 public:
  // `inputs_as_dict`: forward takes one Dict[str, Tensor], the inputs by name.
  TorchInstance(TorchModelSpec spec, torch::jit::Module module, torch::Device device, bool inputs_as_dict)
      : spec_(std::move(spec)), module_(std::move(module)), device_(device), inputs_as_dict_(inputs_as_dict) {}

  absl::StatusOr<std::vector<TensorView>> Run(absl::Span<const TensorView> inputs) override {
    thread_local int configured_threads = -1;
    if (spec_.intra_op_threads > 0 && configured_threads != spec_.intra_op_threads) {
      at::set_num_threads(spec_.intra_op_threads);
      configured_threads = spec_.intra_op_threads;
    }
    c10::InferenceMode inference_mode;
    try {
      std::vector<c10::IValue> args(inputs_as_dict_ ? 1 : inputs.size());
      c10::Dict<std::string, at::Tensor> by_name;
      int64_t batch_rows = -1;
      for (size_t i = 0; i < inputs.size(); ++i) {
        const TensorView& in = inputs[i];
        if (IsAbsent(in)) continue;  // an optional input left out: None, or not in the dict
        batch_rows = in.rows();
        at::Tensor t = torch::from_blob(const_cast<void*>(in.data), in.shape,
                                        torch::TensorOptions().dtype(*ToScalarType(in.dtype)));
        t = ToModelShape(t, Reshape(spec_.input_reshape, i));
        if (!device_.is_cpu()) t = t.to(device_, /*non_blocking=*/false);
        if (inputs_as_dict_) {
          by_name.insert(spec_.signature.inputs[i].name, std::move(t));
        } else {
          args[spec_.forward_arg[i]] = std::move(t);
        }
      }
      if (inputs_as_dict_) args[0] = std::move(by_name);
      c10::IValue result = module_.forward(std::move(args));
      std::vector<TensorView> outputs;
      outputs.reserve(spec_.outputs.size());
      for (size_t i = 0; i < spec_.outputs.size(); ++i) {
        absl::StatusOr<at::Tensor> tensor = Extract(result, i);
        if (!tensor.ok()) return tensor.status();
        at::Tensor t = tensor->to(at::kCPU).contiguous();
        const TensorSpec& declared = spec_.signature.outputs[i];
        if (FromScalarType(t.scalar_type()) != declared.dtype) {
          return absl::InternalError(absl::StrCat("output '", declared.name, "': the model returned ",
                                                  c10::toString(t.scalar_type()),
                                                  ", the config declares ",
                                                  DTypeName(declared.dtype)));
        }
        // The row shape forward returns: the declared dims, or their reshape.
        const std::optional<std::vector<int64_t>>& reshape = Reshape(spec_.output_reshape, i);
        const std::vector<int64_t>& row = reshape ? *reshape : declared.dims;
        const bool batched = spec_.signature.has_batch_dimension;
        bool shape_ok = t.dim() == static_cast<int64_t>(row.size()) + (batched ? 1 : 0);
        for (size_t d = 0; shape_ok && d < row.size(); ++d) {
          shape_ok = row[d] < 0 || row[d] == t.size(static_cast<int64_t>(d) + (batched ? 1 : 0));
        }
        if (!shape_ok) {
          // Rows that differ from the declared row only by unit dimensions
          // are viewed in the declared shape (as Triton answers them).
          const int64_t rows = batched ? (t.dim() > 0 ? t.size(0) : -1) : 1;
          std::optional<std::vector<int64_t>> as_declared;
          if (rows == batch_rows) {
            as_declared = UnitDimsApart(batched ? t.sizes().slice(1) : t.sizes(), row);
          }
          if (as_declared) {
            std::vector<int64_t> shape = batched ? std::vector<int64_t>{rows} : std::vector<int64_t>{};
            shape.insert(shape.end(), as_declared->begin(), as_declared->end());
            t = t.reshape(shape);
            shape_ok = true;
          }
        }
        if (!shape_ok) {
          std::vector<int64_t> expected = batched ? std::vector<int64_t>{-1} : std::vector<int64_t>{};
          expected.insert(expected.end(), row.begin(), row.end());
          return absl::InternalError(absl::StrCat(
              "output '", declared.name, "': the model returned shape ",
              ShapeToString(t.sizes().vec()), ", the config declares ", ShapeToString(expected),
              reshape ? " (its reshape)" : ""));
        }
        if (!batched) t = t.unsqueeze(0);  // one row
        if (reshape) {
          std::vector<int64_t> shape = {t.size(0)};
          shape.insert(shape.end(), declared.dims.begin(), declared.dims.end());
          t = t.reshape(shape);
        }
        auto owner = std::make_shared<at::Tensor>(std::move(t));
        TensorView view;
        view.dtype = declared.dtype;
        view.shape.assign(owner->sizes().begin(), owner->sizes().end());
        view.data = owner->data_ptr();
        view.byte_size = owner->nbytes();
        view.owner = std::move(owner);
        outputs.push_back(std::move(view));
      }
      return outputs;
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("model error: ", Summarize(e.what_without_backtrace())));
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("model error: ", Summarize(e.what())));
    }
  }

 private:
  static const std::optional<std::vector<int64_t>>& Reshape(
      const std::vector<std::optional<std::vector<int64_t>>>& reshapes, size_t i) {
    static const std::optional<std::vector<int64_t>> kNone;
    return i < reshapes.size() ? reshapes[i] : kNone;
  }

  // A gathered input ([rows, dims...]) as forward takes it: rows of the
  // reshape, and without the row dimension when the model has no batch
  // dimension. Views only: no copy.
  at::Tensor ToModelShape(const at::Tensor& t, const std::optional<std::vector<int64_t>>& reshape) const {
    at::Tensor shaped = t;
    if (reshape) {
      std::vector<int64_t> shape = {t.size(0)};
      shape.insert(shape.end(), reshape->begin(), reshape->end());
      shaped = shaped.view(shape);
    }
    return spec_.signature.has_batch_dimension ? shaped : shaped.squeeze(0);
  }

  absl::StatusOr<at::Tensor> Extract(const c10::IValue& result, size_t i) const {
    const OutputBinding& binding = spec_.outputs[i];
    const std::string& name = spec_.signature.outputs[i].name;
    c10::IValue value;
    switch (binding.kind) {
      case OutputBinding::Kind::kTensor:
        value = result;
        break;
      case OutputBinding::Kind::kTupleIndex: {
        // A Tuple[...] or a List[Tensor] return: both index by position.
        if (!result.isTuple() && !result.isList()) {
          return absl::InternalError(absl::StrCat(
              "output '", name, "' is bound to tuple_index ", binding.tuple_index, " but forward returned ",
              result.tagKind(),
              result.isGenericDict()
                  ? " (bind each output to its key with dict_key, in microbatch's config format; "
                    "Triton's binds outputs by position only)"
                  : ""));
        }
        const c10::ArrayRef<c10::IValue> elements =
            result.isTuple() ? c10::ArrayRef<c10::IValue>(result.toTupleRef().elements())
                             : result.toListRef();
        if (binding.tuple_index < 0 || binding.tuple_index >= static_cast<int>(elements.size())) {
          return absl::InternalError(absl::StrCat("output '", name, "': tuple_index ",
                                                  binding.tuple_index, " but forward returned ",
                                                  elements.size(), " values"));
        }
        value = elements[binding.tuple_index];
        break;
      }
      case OutputBinding::Kind::kDictKey: {
        if (!result.isGenericDict()) {
          return absl::InternalError(absl::StrCat("output '", name, "' is bound to dict_key '",
                                                  binding.dict_key, "' but forward returned ",
                                                  result.tagKind()));
        }
        auto dict = result.toGenericDict();
        auto it = dict.find(binding.dict_key);
        if (it == dict.end()) {
          return absl::InternalError(absl::StrCat("output '", name, "': forward's dict has no key '",
                                                  binding.dict_key, "'"));
        }
        value = it->value();
        break;
      }
    }
    if (!value.isTensor()) {
      return absl::InternalError(absl::StrCat("output '", name, "': expected a tensor, forward gave ",
                                              value.tagKind()));
    }
    return value.toTensor();
  }

  const TorchModelSpec spec_;
  torch::jit::Module module_;
  const torch::Device device_;
  const bool inputs_as_dict_;
};

// The arguments of the module's forward method (self first); nullptr when it
// has none.
const std::vector<c10::Argument>* ForwardArguments(torch::jit::Module& module) {
  auto forward = module.find_method("forward");  // an optional Method
  if (!forward) return nullptr;
  return &forward->function().getSchema().arguments();
}

// The positions among forward's arguments (self excluded) of the arguments
// spec.forward_arg_names name; they must cover every argument without a
// default value.
absl::StatusOr<std::vector<int>> ForwardPositions(torch::jit::Module& module, const TorchModelSpec& spec) {
  const std::vector<c10::Argument>* forward = ForwardArguments(module);
  if (forward == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(spec.path, ": the model has no forward method"));
  }
  const std::vector<c10::Argument>& arguments = *forward;
  std::vector<std::string> names;  // forward's arguments, self excluded
  for (size_t a = 1; a < arguments.size(); ++a) names.push_back(arguments[a].name());
  const std::string listed = absl::StrCat("forward(", absl::StrJoin(names, ", "), ")");
  std::vector<int> positions;
  std::vector<bool> bound(names.size(), false);
  for (size_t i = 0; i < spec.forward_arg_names.size(); ++i) {
    const std::string& name = spec.forward_arg_names[i];
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          spec.path, ": input '", spec.signature.inputs[i].name, "' is passed as argument '", name,
          "' but the model's signature is ", listed));
    }
    positions.push_back(static_cast<int>(it - names.begin()));
    bound[positions.back()] = true;
  }
  for (size_t a = 0; a < names.size(); ++a) {
    if (!bound[a] && !arguments[a + 1].default_value().has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(spec.path, ": no input is passed as argument '",
                                                     names[a], "' of ", listed));
    }
    if (!bound[a] && a < spec.forward_arg_names.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          spec.path, ": the inputs skip argument '", names[a], "' of ", listed,
          "; inputs must be passed as its first arguments"));
    }
  }
  return positions;
}

// Whether forward takes exactly one argument, a Dict[str, Tensor]: then the
// inputs are passed in it by name (Triton's PyTorch backend convention).
bool TakesInputsAsDict(torch::jit::Module& module) {
  const std::vector<c10::Argument>* forward = ForwardArguments(module);
  if (forward == nullptr || forward->size() != 2) return false;  // self and one more
  const c10::TypePtr& type = (*forward)[1].type();
  if (type->kind() != c10::TypeKind::DictType) return false;
  const auto dict = type->expect<c10::DictType>();
  return dict->getKeyType()->kind() == c10::TypeKind::StringType &&
         dict->getValueType()->kind() == c10::TypeKind::TensorType;
}

// Each optional input's argument of forward takes None (is Optional[...]).
absl::Status CheckOptionalArguments(torch::jit::Module& module, const TorchModelSpec& spec) {
  const std::vector<c10::Argument>* forward = ForwardArguments(module);
  if (forward == nullptr) return absl::OkStatus();  // reported when it runs
  const std::vector<c10::Argument>& arguments = *forward;
  for (size_t i = 0; i < spec.signature.inputs.size() && i < spec.forward_arg.size(); ++i) {
    const TensorSpec& input = spec.signature.inputs[i];
    const size_t a = static_cast<size_t>(spec.forward_arg[i]) + 1;  // self first
    if (!input.optional || a >= arguments.size()) continue;
    if (arguments[a].type()->kind() != c10::TypeKind::OptionalType) {
      return absl::InvalidArgumentError(absl::StrCat(
          spec.path, ": input '", input.name, "' is optional, but forward's argument '", arguments[a].name(),
          "' is ", arguments[a].type()->str(),
          "; declare it Optional[Tensor] (forward gets None when a request leaves the input out)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool TorchCudaAvailable() { return torch::cuda::is_available(); }

absl::StatusOr<std::unique_ptr<ModelInstance>> LoadTorchInstance(const TorchModelSpec& spec) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(spec.path, ec)) {
    return absl::NotFoundError(absl::StrCat(spec.path, ": model file not found"));
  }
  std::optional<torch::Device> device;
  try {
    device = torch::Device(spec.device);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", spec.device, "' is not valid; use \"cpu\" or \"cuda:N\""));
  }
  if (device->is_cuda()) {
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device '", spec.device,
          "' requested but this server's LibTorch has no CUDA support or sees no GPU"));
    }
    const int index = device->has_index() ? device->index() : 0;
    if (index >= static_cast<int>(torch::cuda::device_count())) {
      return absl::FailedPreconditionError(absl::StrCat("device '", spec.device, "': only ",
                                                        torch::cuda::device_count(),
                                                        " GPUs are visible"));
    }
  } else if (!device->is_cpu()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", spec.device, "' is not supported; use \"cpu\" or \"cuda:N\""));
  }
  for (const TensorSpec& input : spec.signature.inputs) {
    if (!ToScalarType(input.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("input '", input.name, "': invalid dtype"));
    }
  }
  try {
    torch::jit::Module module = torch::jit::load(spec.path, *device);
    module.eval();
    TorchModelSpec resolved = spec;
    const bool inputs_as_dict = TakesInputsAsDict(module);
    if (!inputs_as_dict) {
      if (!spec.forward_arg_names.empty()) {
        absl::StatusOr<std::vector<int>> positions = ForwardPositions(module, spec);
        if (!positions.ok()) return positions.status();
        resolved.forward_arg = *std::move(positions);
      }
      if (absl::Status s = CheckOptionalArguments(module, resolved); !s.ok()) return s;
    }
    if (spec.optimize_for_inference) module = torch::jit::optimize_for_inference(module);
    return std::unique_ptr<ModelInstance>(
        new TorchInstance(std::move(resolved), std::move(module), *device, inputs_as_dict));
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec.path, ": not a loadable TorchScript model: ", Summarize(e.what_without_backtrace())));
  }
}

}  // namespace microbatch
