// microbatch-rawbench: the raw limit of one model version, in process and
// without gRPC or the batcher. Loads the model through the server's own code
// (ParseModelConfig, PlanModel, LoadTorchInstance, WarmUp), then runs batches
// of each size back to back for a time budget and reports rows/s and latency
// per batch size.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/bench_stats.h"
#include "nlohmann/json.hpp"
#include "server/backend/torch_backend.h"
#include "server/service/model_repository.h"

ABSL_FLAG(std::string, model_repository, "", "Model repository directory (required)");
ABSL_FLAG(std::string, model, "", "Model name (required)");
ABSL_FLAG(int64_t, version, 0, "Model version (0: the highest version directory)");
ABSL_FLAG(std::string, batch_sizes, "",
          "Comma-separated batch sizes (default: 1, 2, 4, ... up to max_batch_size, and "
          "max_batch_size itself)");
ABSL_FLAG(double, seconds_per_size, 2.0, "Time budget per batch size");
ABSL_FLAG(int, min_iterations, 3, "Batches run per size at least, whatever the budget");
ABSL_FLAG(int, default_intra_op_threads, 0,
          "As the server's flag: intra-op threads when the config sets none (0: LibTorch's "
          "default)");
ABSL_FLAG(int, threads, 0,
          "LibTorch intra-op threads, overriding the config (0: the config's intra_op_threads, else "
          "--default_intra_op_threads)");
ABSL_FLAG(std::vector<std::string>, shape, {},
          "name=d1:d2 (colon-separated dims after the batch dim) for inputs with -1 dims; default "
          "1 per -1 dim");
ABSL_FLAG(std::string, format, "table", "table, csv or json");
ABSL_FLAG(bool, executor_thread, true,
          "Run the batches on a new thread, as the server's batcher executor does (LibTorch and "
          "OpenMP thread settings are per thread); false: on the main thread, which loaded the model");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the random inputs");
ABSL_FLAG(int, idle_us, 0,
          "Sleep this long between batches (not counted), as a served model idles between "
          "requests; shows the cost of running from cold caches");

namespace microbatch {
namespace {

namespace fs = std::filesystem;
using bench::Fixed;

int Fail(const std::string& message) {
  std::cerr << "microbatch-rawbench: " << message << "\n";
  return 1;
}

struct SizeResult {
  int64_t batch = 0;
  int64_t iterations = 0;
  double first_ms = 0;  // the first run of this batch size (shape-specialization cost)
  double seconds = 0;
  double rows_per_s = 0;
  double batches_per_s = 0;
  bench::LatencySummary latency;  // ms per batch
};

// The model version to run, as the server would load it.
struct RawModel {
  std::string name;
  int64_t version = 0;
  int64_t max_batch_size = 0;
  TorchModelSpec spec;
  std::vector<int> warmup_batch_sizes;
};

// --version, or the highest numeric version directory under `dir`.
absl::StatusOr<int64_t> ResolveVersion(const fs::path& dir) {
  int64_t version = absl::GetFlag(FLAGS_version);
  if (version != 0) return version;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    int64_t v;
    if (entry.is_directory() && absl::SimpleAtoi(entry.path().filename().string(), &v) && v > version) {
      version = v;
    }
  }
  if (version == 0) return absl::NotFoundError(absl::StrCat(dir.string(), ": no version directories"));
  return version;
}

// The config, plan and model file of --model in --model_repository.
absl::StatusOr<RawModel> PlanRawModel(const std::string& root, const std::string& name) {
  const fs::path dir = fs::path(root) / name;
  const std::string config_path = (dir / "config.pbtxt").string();
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(config_path);
  if (!config.ok()) return config.status();
  absl::StatusOr<ModelPlan> plan =
      PlanModel(*config, name, config_path, absl::GetFlag(FLAGS_default_intra_op_threads));
  if (!plan.ok()) return plan.status();
  absl::StatusOr<int64_t> version = ResolveVersion(dir);
  if (!version.ok()) return version.status();
  RawModel model;
  model.name = name;
  model.version = *version;
  model.max_batch_size = plan->config.max_batch_size();
  model.spec = plan->spec;
  model.spec.path = (dir / std::to_string(*version) / "model.pt").string();
  if (absl::GetFlag(FLAGS_threads) > 0) model.spec.intra_op_threads = absl::GetFlag(FLAGS_threads);
  model.warmup_batch_sizes = plan->warmup_batch_sizes;
  return model;
}

// --batch_sizes, or 1, 2, 4, ... below max_batch_size, and max_batch_size.
absl::StatusOr<std::vector<int64_t>> BatchSizes(int64_t max_batch) {
  if (!absl::GetFlag(FLAGS_batch_sizes).empty()) {
    return bench::ParseIntList(absl::GetFlag(FLAGS_batch_sizes), "batch_sizes", 1);
  }
  std::vector<int64_t> sizes;
  for (int64_t b = 1; b < max_batch; b *= 2) sizes.push_back(b);
  sizes.push_back(max_batch);
  return sizes;
}

// --shape name=d1:d2 per input.
absl::StatusOr<std::map<std::string, std::vector<int64_t>>> ShapeOverrides() {
  std::map<std::string, std::vector<int64_t>> overrides;
  for (const std::string& s : absl::GetFlag(FLAGS_shape)) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("--shape '", s, "': expected name=d1:d2"));
    std::vector<int64_t> dims;
    for (absl::string_view d : absl::StrSplit(s.substr(eq + 1), ':')) {
      int64_t v;
      if (!absl::SimpleAtoi(d, &v) || v < 0) return absl::InvalidArgumentError(absl::StrCat("--shape '", s, "': bad dim"));
      dims.push_back(v);
    }
    overrides[s.substr(0, eq)] = dims;
  }
  return overrides;
}

// Random rows for every input: `largest` rows each, sliced per batch size.
struct RawInputs {
  std::vector<std::vector<int64_t>> row_dims;  // per input: the dims after the batch dim
  std::vector<std::string> data;               // per input: `largest` rows
  int64_t largest = 0;

  // The first `batch` rows of every input.
  std::vector<TensorView> Views(const ModelSignature& signature, int64_t batch) const {
    std::vector<TensorView> inputs;
    for (size_t i = 0; i < signature.inputs.size(); ++i) {
      TensorView view;
      view.dtype = signature.inputs[i].dtype;
      view.shape = {batch};
      view.shape.insert(view.shape.end(), row_dims[i].begin(), row_dims[i].end());
      view.byte_size = data[i].size() / static_cast<size_t>(largest) * static_cast<size_t>(batch);
      view.data = data[i].data();
      inputs.push_back(std::move(view));
    }
    return inputs;
  }
};

// The config's row dims, with --shape overrides and -1 replaced by 1.
absl::StatusOr<RawInputs> MakeInputs(const ModelSignature& signature, int64_t largest) {
  absl::StatusOr<std::map<std::string, std::vector<int64_t>>> overrides = ShapeOverrides();
  if (!overrides.ok()) return overrides.status();
  RawInputs inputs;
  inputs.largest = largest;
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  for (const TensorSpec& input : signature.inputs) {
    std::vector<int64_t> dims = input.dims;
    if (auto it = overrides->find(input.name); it != overrides->end()) {
      if (it->second.size() != dims.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--shape ", input.name, ": expected ", dims.size(), " dims"));
      }
      dims = it->second;
    }
    for (int64_t& d : dims) {
      if (d < 0) d = 1;
    }
    int64_t elements = largest;
    for (int64_t d : dims) elements *= d;
    inputs.row_dims.push_back(dims);
    inputs.data.push_back(bench::RandomTensorBytes(input.dtype, elements, seed++));
  }
  return inputs;
}

absl::StatusOr<std::unique_ptr<ModelInstance>> LoadAndWarm(const RawModel& model) {
  const auto load_start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<ModelInstance>> instance = LoadTorchInstance(model.spec);
  if (!instance.ok()) return instance.status();
  const auto warm_start = std::chrono::steady_clock::now();
  if (absl::Status s = WarmUp(**instance, model.spec.signature, model.warmup_batch_sizes); !s.ok()) return s;
  const auto warm_end = std::chrono::steady_clock::now();
  std::cerr << "rawbench: " << model.name << " v" << model.version << " loaded in "
            << Fixed(std::chrono::duration<double>(warm_start - load_start).count(), 2) << " s, warmed in "
            << Fixed(std::chrono::duration<double>(warm_end - warm_start).count(), 2) << " s (threads "
            << model.spec.intra_op_threads << ", optimize_for_inference "
            << (model.spec.optimize_for_inference ? "true" : "false") << ")\n";
  return instance;
}

// Runs batches of `batch` rows back to back for --seconds_per_size (at least
// --min_iterations), after three uncounted runs (allocation, JIT profiling
// and specialization; the first is reported as first_ms).
absl::StatusOr<SizeResult> MeasureBatchSize(ModelInstance& instance, const std::vector<TensorView>& inputs,
                                            int64_t batch) {
  const double budget = absl::GetFlag(FLAGS_seconds_per_size);
  const int min_iterations = std::max(1, absl::GetFlag(FLAGS_min_iterations));
  const int idle_us = absl::GetFlag(FLAGS_idle_us);
  SizeResult r;
  r.batch = batch;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<std::vector<TensorView>> out = instance.Run(inputs);
    if (i == 0) r.first_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!out.ok()) return absl::InternalError(absl::StrCat("batch ", batch, ": ", out.status().message()));
  }
  std::vector<double> latencies;
  const auto start = std::chrono::steady_clock::now();
  auto now = start;
  double idle_seconds = 0;
  while (static_cast<int>(latencies.size()) < min_iterations ||
         std::chrono::duration<double>(now - start).count() - idle_seconds < budget) {
    if (idle_us > 0) {
      const auto sleep_start = std::chrono::steady_clock::now();
      std::this_thread::sleep_for(std::chrono::microseconds(idle_us));
      idle_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - sleep_start).count();
    }
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<std::vector<TensorView>> out = instance.Run(inputs);
    now = std::chrono::steady_clock::now();
    if (!out.ok()) return absl::InternalError(absl::StrCat("batch ", batch, ": ", out.status().message()));
    latencies.push_back(std::chrono::duration<double, std::milli>(now - t0).count());
  }
  r.iterations = static_cast<int64_t>(latencies.size());
  r.seconds = std::chrono::duration<double>(now - start).count() - idle_seconds;
  r.batches_per_s = r.iterations / r.seconds;
  r.rows_per_s = r.batches_per_s * batch;
  r.latency = bench::Summarize(latencies);
  return r;
}

// Every batch size in order, on a new thread unless --executor_thread=false.
absl::StatusOr<std::vector<SizeResult>> MeasureAll(const RawModel& model, ModelInstance& instance,
                                                   const RawInputs& inputs, const std::vector<int64_t>& sizes) {
  std::vector<SizeResult> results;
  absl::Status status;
  auto measure = [&] {
    for (int64_t batch : sizes) {
      absl::StatusOr<SizeResult> r = MeasureBatchSize(instance, inputs.Views(model.spec.signature, batch), batch);
      if (!r.ok()) {
        status = r.status();
        return;
      }
      std::cerr << "rawbench: " << model.name << " batch " << batch << ": " << Fixed(r->rows_per_s, 1)
                << " rows/s, p50 " << Fixed(r->latency.p50, 3) << " ms\n";
      results.push_back(*r);
    }
  };
  if (absl::GetFlag(FLAGS_executor_thread)) {
    std::thread executor(measure);
    executor.join();
  } else {
    measure();
  }
  if (!status.ok()) return status;
  return results;
}

// The batch-1 and the best rows/s, and the batch size of the best.
struct Summary {
  double batch1_rows_per_s = 0;
  double best_rows_per_s = 0;
  int64_t best_batch = 0;
};

Summary Summarize(const std::vector<SizeResult>& results) {
  Summary s;
  for (const SizeResult& r : results) {
    if (r.batch == 1) s.batch1_rows_per_s = r.rows_per_s;
    if (r.rows_per_s > s.best_rows_per_s) {
      s.best_rows_per_s = r.rows_per_s;
      s.best_batch = r.batch;
    }
  }
  return s;
}

std::string FormatJson(const RawModel& model, const std::vector<SizeResult>& results, const Summary& summary) {
  nlohmann::json out;
  out["model"] = model.name;
  out["version"] = model.version;
  out["intra_op_threads"] = model.spec.intra_op_threads;
  out["optimize_for_inference"] = model.spec.optimize_for_inference;
  out["max_batch_size"] = model.max_batch_size;
  out["best_batch"] = summary.best_batch;
  out["best_rows_per_s"] = summary.best_rows_per_s;
  if (summary.batch1_rows_per_s > 0) out["batch1_rows_per_s"] = summary.batch1_rows_per_s;
  out["sizes"] = nlohmann::json::array();
  for (const SizeResult& r : results) {
    out["sizes"].push_back({{"batch", r.batch},
                            {"iterations", r.iterations},
                            {"first_ms", r.first_ms},
                            {"seconds", r.seconds},
                            {"rows_per_s", r.rows_per_s},
                            {"batches_per_s", r.batches_per_s},
                            {"latency_ms",
                             {{"mean", r.latency.mean},
                              {"p50", r.latency.p50},
                              {"p90", r.latency.p90},
                              {"p99", r.latency.p99},
                              {"max", r.latency.max}}}});
  }
  return out.dump(2) + "\n";
}

// "csv" or "table".
std::string FormatText(const std::string& format, const RawModel& model, const std::vector<SizeResult>& results,
                       const Summary& summary) {
  const std::vector<std::string> header = {"batch", "iters", "rows/s", "batches/s", "mean_ms",
                                           "p50_ms", "p99_ms", "max_ms", "first_ms", "vs_b1"};
  std::vector<std::vector<std::string>> rows;
  for (const SizeResult& r : results) {
    rows.push_back({absl::StrCat(r.batch), absl::StrCat(r.iterations), Fixed(r.rows_per_s, 1),
                    Fixed(r.batches_per_s, 1), Fixed(r.latency.mean, 3), Fixed(r.latency.p50, 3),
                    Fixed(r.latency.p99, 3), Fixed(r.latency.max, 3), Fixed(r.first_ms, 3),
                    summary.batch1_rows_per_s > 0 ? Fixed(r.rows_per_s / summary.batch1_rows_per_s, 2) + "x" : "-"});
  }
  if (format == "csv") {
    std::string out;
    for (size_t i = 0; i < header.size(); ++i) out += (i ? "," : "") + header[i];
    out += "\n";
    for (const auto& row : rows) {
      for (size_t i = 0; i < row.size(); ++i) out += (i ? "," : "") + row[i];
      out += "\n";
    }
    return out;
  }
  return absl::StrCat("raw ", model.name, " v", model.version, " (in process, threads ",
                      model.spec.intra_op_threads > 0 ? std::to_string(model.spec.intra_op_threads) : "default",
                      "): best ", Fixed(summary.best_rows_per_s, 1), " rows/s at batch ", summary.best_batch, "\n",
                      bench::FormatTable(header, rows));
}

int Main() {
  const std::string root = absl::GetFlag(FLAGS_model_repository);
  const std::string name = absl::GetFlag(FLAGS_model);
  if (root.empty() || name.empty()) return Fail("--model_repository and --model are required");
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "table" && format != "csv" && format != "json") {
    return Fail("--format must be table, csv or json");
  }
  absl::StatusOr<RawModel> model = PlanRawModel(root, name);
  if (!model.ok()) return Fail(std::string(model.status().message()));
  absl::StatusOr<std::vector<int64_t>> sizes = BatchSizes(model->max_batch_size);
  if (!sizes.ok()) return Fail(std::string(sizes.status().message()));
  const int64_t largest = *std::max_element(sizes->begin(), sizes->end());
  absl::StatusOr<RawInputs> inputs = MakeInputs(model->spec.signature, largest);
  if (!inputs.ok()) return Fail(std::string(inputs.status().message()));
  absl::StatusOr<std::unique_ptr<ModelInstance>> instance = LoadAndWarm(*model);
  if (!instance.ok()) return Fail(std::string(instance.status().message()));
  absl::StatusOr<std::vector<SizeResult>> results = MeasureAll(*model, **instance, *inputs, *sizes);
  if (!results.ok()) return Fail(std::string(results.status().message()));
  const Summary summary = Summarize(*results);
  std::cout << (format == "json" ? FormatJson(*model, *results, summary)
                                 : FormatText(format, *model, *results, summary));
  return 0;
}

}  // namespace
}  // namespace microbatch

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Raw in-process throughput of one model version per batch size (no gRPC, no batcher).\n"
      "usage: microbatch-rawbench --model_repository DIR --model NAME [--batch_sizes 1,2,4]");
  absl::ParseCommandLine(argc, argv);
  return microbatch::Main();
}
