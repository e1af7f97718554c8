#include "server/backend/demo_models.h"

#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "absl/strings/str_cat.h"

namespace microbatch {
namespace {

torch::jit::Module Mlp(const std::vector<int64_t>& widths, bool two_outputs, double scale) {
  torch::jit::Module m("Mlp");
  std::string body;
  std::string h = "x";
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    const double bound = scale / std::sqrt(static_cast<double>(widths[i]));
    m.register_parameter(absl::StrCat("w", i), torch::rand({widths[i], widths[i + 1]}) * 2 * bound - bound,
                         false);
    m.register_parameter(absl::StrCat("b", i), torch::rand({widths[i + 1]}) * 2 * bound - bound, false);
    const std::string next = absl::StrCat("h", i);
    absl::StrAppend(&body, "        ", next, " = torch.addmm(self.b", i, ", ", h, ", self.w", i,
                    ")\n");
    if (i + 2 < widths.size()) absl::StrAppend(&body, "        ", next, " = torch.relu(", next, ")\n");
    h = next;
  }
  const std::string ret = two_outputs ? absl::StrCat("return ", h, ", torch.softmax(", h, ", 1)")
                                      : absl::StrCat("return ", h);
  m.define(absl::StrCat("def forward(self, x):\n", body, "        ", ret, "\n"));
  return m;
}

torch::jit::Module Pair(double scale) {
  torch::jit::Module m("Pair");
  m.register_attribute("scale", c10::FloatType::get(), scale);
  m.define(R"(
def forward(self, a, b):
    return {"sum": (a + b) * self.scale, "product": a * b * self.scale}
)");
  return m;
}

torch::jit::Module Identity() {
  torch::jit::Module m("Identity");
  m.define(R"(
def forward(self, x):
    return x
)");
  return m;
}

torch::jit::Module Flaky(double scale) {
  torch::jit::Module m("Flaky");
  m.register_attribute("scale", c10::FloatType::get(), scale);
  m.define(R"(
def forward(self, x):
    assert not bool((x < 0).any()), "negative input in batch"
    return x * 2.0 * self.scale
)");
  return m;
}

struct DemoModel {
  std::function<torch::jit::Module(double scale)> make;
  std::string config;
};

const std::map<std::string, DemoModel>& Models() {
  static const auto* models = new std::map<std::string, DemoModel>{
      {"mlp",
       {[](double s) { return Mlp({16, 64, 64, 4}, true, s); },
        R"(# A small classifier: 16 features -> 4 classes.
input { name: "x" dtype: FP32 dims: [16] forward_arg: 0 }
output { name: "logits" dtype: FP32 dims: [4] tuple_index: 0 }
output { name: "probs" dtype: FP32 dims: [4] tuple_index: 1 }
max_batch_size: 64
max_queue_delay_microseconds: 0
max_queue_size: 1024
instance_count: 2
intra_op_threads: 1
optimize_for_inference: true
warmup_batch_sizes: [1, 8, 64]
)"}},
      {"pair",
       {Pair,
        R"(# Two inputs of variable length; the outputs come from a dict.
input { name: "a" dtype: FP32 dims: [-1] forward_arg: 0 }
input { name: "b" dtype: FP32 dims: [-1] forward_arg: 1 }
output { name: "sum" dtype: FP32 dims: [-1] dict_key: "sum" }
output { name: "product" dtype: FP32 dims: [-1] dict_key: "product" }
max_batch_size: 32
instance_count: 1
intra_op_threads: 1
warmup_batch_sizes: [1, 32]
)"}},
      {"identity",
       {[](double) { return Identity(); },
        R"(# Returns its input: measures the server without a model's cost.
input { name: "x" dtype: FP32 dims: [-1] forward_arg: 0 }
output { name: "y" dtype: FP32 dims: [-1] }
max_batch_size: 128
instance_count: 1
intra_op_threads: 1
)"}},
      {"flaky",
       {Flaky,
        R"(# Raises on batches that contain a negative value (for error-path tests).
input { name: "x" dtype: FP32 dims: [4] forward_arg: 0 }
output { name: "y" dtype: FP32 dims: [4] }
max_batch_size: 16
instance_count: 1
intra_op_threads: 1
)"}},
      {"mlp_bench",
       {[](double s) { return Mlp({256, 1024, 1024, 10}, false, s); },
        R"(# MLP 256-1024-1024-10 for benchmarks.
input { name: "x" dtype: FP32 dims: [256] forward_arg: 0 }
output { name: "y" dtype: FP32 dims: [10] }
max_batch_size: 128
instance_count: 1
optimize_for_inference: true
warmup_batch_sizes: [1, 32, 128]
)"}},
  };
  return *models;
}

}  // namespace

std::vector<std::string> DemoModelNames() {
  std::vector<std::string> names;
  for (const auto& [name, model] : Models()) names.push_back(name);
  return names;
}

absl::Status WriteModelRepository(const std::string& dir, const DemoModelOptions& options) {
  std::vector<std::string> names = options.models;
  if (names.empty()) names = {"mlp", "pair"};
  for (const std::string& name : names) {
    auto it = Models().find(name);
    if (it == Models().end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown demo model '", name, "'"));
    }
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path model_dir = fs::path(dir) / name;
    for (int v = 1; v <= options.versions; ++v) {
      fs::create_directories(model_dir / std::to_string(v), ec);
      if (ec) return absl::InternalError(absl::StrCat(model_dir.string(), ": ", ec.message()));
      torch::manual_seed(options.seed);
      const std::string path = (model_dir / std::to_string(v) / "model.pt").string();
      try {
        it->second.make(static_cast<double>(v)).save(path);
      } catch (const std::exception& e) {
        return absl::InternalError(absl::StrCat(path, ": ", e.what()));
      }
    }
    std::ofstream config(model_dir / "config.pbtxt");
    config << it->second.config;
    if (!config.good()) return absl::InternalError(absl::StrCat(model_dir.string(), ": cannot write config"));
  }
  return absl::OkStatus();
}

absl::Status WriteScriptModel(const std::string& path, const std::string& source) {
  torch::jit::Module m("ScriptModel");
  try {
    m.define(source);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("TorchScript does not compile: ", e.what()));
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": ", ec.message()));
  try {
    m.save(path);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace microbatch
