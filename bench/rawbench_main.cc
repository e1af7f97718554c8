// microbatch-rawbench: the raw limit of one model version, in process and
// without gRPC or the batcher. Loads the model through the server's own code
// (ParseModelConfig, PlanModel, LoadTorchInstance, WarmUp), then runs batches
// of each size back to back for a time budget and reports rows/s and latency
// per batch size.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
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

int Main() {
  const std::string root = absl::GetFlag(FLAGS_model_repository);
  const std::string name = absl::GetFlag(FLAGS_model);
  if (root.empty() || name.empty()) return Fail("--model_repository and --model are required");
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "table" && format != "csv" && format != "json") {
    return Fail("--format must be table, csv or json");
  }
  const fs::path dir = fs::path(root) / name;
  const std::string config_path = (dir / "config.pbtxt").string();
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(config_path);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  absl::StatusOr<ModelPlan> plan =
      PlanModel(*config, name, config_path, absl::GetFlag(FLAGS_default_intra_op_threads));
  if (!plan.ok()) return Fail(std::string(plan.status().message()));

  int64_t version = absl::GetFlag(FLAGS_version);
  if (version == 0) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      int64_t v;
      if (entry.is_directory() && absl::SimpleAtoi(entry.path().filename().string(), &v) && v > version) {
        version = v;
      }
    }
    if (version == 0) return Fail(absl::StrCat(dir.string(), ": no version directories"));
  }
  TorchModelSpec spec = plan->spec;
  spec.path = (dir / std::to_string(version) / "model.pt").string();
  if (absl::GetFlag(FLAGS_threads) > 0) spec.intra_op_threads = absl::GetFlag(FLAGS_threads);

  std::vector<int64_t> sizes;
  const int64_t max_batch = plan->config.max_batch_size();
  if (absl::GetFlag(FLAGS_batch_sizes).empty()) {
    for (int64_t b = 1; b < max_batch; b *= 2) sizes.push_back(b);
    sizes.push_back(max_batch);
  } else {
    absl::StatusOr<std::vector<int64_t>> parsed =
        bench::ParseIntList(absl::GetFlag(FLAGS_batch_sizes), "batch_sizes", 1);
    if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
    sizes = *parsed;
  }
  const int64_t largest = *std::max_element(sizes.begin(), sizes.end());

  // Row dims per input: the config's, with -1 replaced.
  std::map<std::string, std::vector<int64_t>> overrides;
  for (const std::string& s : absl::GetFlag(FLAGS_shape)) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos) return Fail(absl::StrCat("--shape '", s, "': expected name=d1:d2"));
    std::vector<int64_t> dims;
    for (absl::string_view d : absl::StrSplit(s.substr(eq + 1), ':')) {
      int64_t v;
      if (!absl::SimpleAtoi(d, &v) || v < 0) return Fail(absl::StrCat("--shape '", s, "': bad dim"));
      dims.push_back(v);
    }
    overrides[s.substr(0, eq)] = dims;
  }
  const ModelSignature& signature = spec.signature;
  std::vector<std::vector<int64_t>> row_dims;
  std::vector<std::string> data;  // `largest` rows per input
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  for (const TensorSpec& input : signature.inputs) {
    std::vector<int64_t> dims = input.dims;
    if (auto it = overrides.find(input.name); it != overrides.end()) {
      if (it->second.size() != dims.size()) {
        return Fail(absl::StrCat("--shape ", input.name, ": expected ", dims.size(), " dims"));
      }
      dims = it->second;
    }
    for (int64_t& d : dims) {
      if (d < 0) d = 1;
    }
    int64_t elements = largest;
    for (int64_t d : dims) elements *= d;
    row_dims.push_back(dims);
    data.push_back(bench::RandomTensorBytes(input.dtype, elements, seed++));
  }

  const auto load_start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<ModelInstance>> instance = LoadTorchInstance(spec);
  if (!instance.ok()) return Fail(std::string(instance.status().message()));
  const auto warm_start = std::chrono::steady_clock::now();
  if (absl::Status s = WarmUp(**instance, signature, plan->warmup_batch_sizes); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  const auto warm_end = std::chrono::steady_clock::now();
  std::cerr << "rawbench: " << name << " v" << version << " loaded in "
            << Fixed(std::chrono::duration<double>(warm_start - load_start).count(), 2) << " s, warmed in "
            << Fixed(std::chrono::duration<double>(warm_end - warm_start).count(), 2) << " s (threads "
            << spec.intra_op_threads << ", optimize_for_inference "
            << (spec.optimize_for_inference ? "true" : "false") << ")\n";

  const double budget = absl::GetFlag(FLAGS_seconds_per_size);
  const int min_iterations = std::max(1, absl::GetFlag(FLAGS_min_iterations));
  std::vector<SizeResult> results;
  std::string error;
  auto measure = [&] {
    for (int64_t batch : sizes) {
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
      // Not counted: the first runs of a shape (allocation, JIT profiling and
      // specialization); the first one is reported as first_ms.
      double first_ms = 0;
      for (int i = 0; i < 3; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        absl::StatusOr<std::vector<TensorView>> out = (*instance)->Run(inputs);
        if (i == 0) {
          first_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        }
        if (!out.ok()) {
          error = absl::StrCat("batch ", batch, ": ", out.status().message());
          return;
        }
      }
      std::vector<double> latencies;
      const auto start = std::chrono::steady_clock::now();
      auto now = start;
      const int idle_us = absl::GetFlag(FLAGS_idle_us);
      double idle_seconds = 0;
      while (static_cast<int>(latencies.size()) < min_iterations ||
             std::chrono::duration<double>(now - start).count() - idle_seconds < budget) {
        if (idle_us > 0) {
          const auto sleep_start = std::chrono::steady_clock::now();
          std::this_thread::sleep_for(std::chrono::microseconds(idle_us));
          idle_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - sleep_start).count();
        }
        const auto t0 = std::chrono::steady_clock::now();
        absl::StatusOr<std::vector<TensorView>> out = (*instance)->Run(inputs);
        now = std::chrono::steady_clock::now();
        if (!out.ok()) {
          error = absl::StrCat("batch ", batch, ": ", out.status().message());
          return;
        }
        latencies.push_back(std::chrono::duration<double, std::milli>(now - t0).count());
      }
      SizeResult r;
      r.batch = batch;
      r.iterations = static_cast<int64_t>(latencies.size());
      r.first_ms = first_ms;
      r.seconds = std::chrono::duration<double>(now - start).count() - idle_seconds;
      r.batches_per_s = r.iterations / r.seconds;
      r.rows_per_s = r.batches_per_s * batch;
      r.latency = bench::Summarize(latencies);
      std::cerr << "rawbench: " << name << " batch " << batch << ": " << Fixed(r.rows_per_s, 1)
                << " rows/s, p50 " << Fixed(r.latency.p50, 3) << " ms\n";
      results.push_back(r);
    }
  };
  if (absl::GetFlag(FLAGS_executor_thread)) {
    std::thread executor(measure);
    executor.join();
  } else {
    measure();
  }
  if (!error.empty()) return Fail(error);

  double base = 0, best = 0;
  int64_t best_batch = 0;
  for (const SizeResult& r : results) {
    if (r.batch == 1) base = r.rows_per_s;
    if (r.rows_per_s > best) {
      best = r.rows_per_s;
      best_batch = r.batch;
    }
  }
  if (format == "json") {
    nlohmann::json out;
    out["model"] = name;
    out["version"] = version;
    out["intra_op_threads"] = spec.intra_op_threads;
    out["optimize_for_inference"] = spec.optimize_for_inference;
    out["max_batch_size"] = max_batch;
    out["best_batch"] = best_batch;
    out["best_rows_per_s"] = best;
    if (base > 0) out["batch1_rows_per_s"] = base;
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
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  const std::vector<std::string> header = {"batch", "iters", "rows/s", "batches/s", "mean_ms",
                                           "p50_ms", "p99_ms", "max_ms", "first_ms", "vs_b1"};
  std::vector<std::vector<std::string>> rows;
  for (const SizeResult& r : results) {
    rows.push_back({absl::StrCat(r.batch), absl::StrCat(r.iterations), Fixed(r.rows_per_s, 1),
                    Fixed(r.batches_per_s, 1), Fixed(r.latency.mean, 3), Fixed(r.latency.p50, 3),
                    Fixed(r.latency.p99, 3), Fixed(r.latency.max, 3), Fixed(r.first_ms, 3),
                    base > 0 ? Fixed(r.rows_per_s / base, 2) + "x" : "-"});
  }
  if (format == "csv") {
    std::string out;
    for (size_t i = 0; i < header.size(); ++i) out += (i ? "," : "") + header[i];
    out += "\n";
    for (const auto& row : rows) {
      for (size_t i = 0; i < row.size(); ++i) out += (i ? "," : "") + row[i];
      out += "\n";
    }
    std::cout << out;
    return 0;
  }
  std::cout << "raw " << name << " v" << version << " (in process, threads "
            << (spec.intra_op_threads > 0 ? std::to_string(spec.intra_op_threads) : "default")
            << "): best " << Fixed(best, 1) << " rows/s at batch " << best_batch << "\n"
            << bench::FormatTable(header, rows);
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
