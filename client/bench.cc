// `microbatch bench`: see client/bench.h. This file runs the levels; load
// generation is in bench_load.cc, the /metrics scrape in metrics_scraper.cc
// and the report in bench_report.cc.
#include "client/bench.h"

#include <sys/resource.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "client/bench_load.h"
#include "client/bench_stats.h"
#include "client/metrics_scraper.h"
#include "microbatch/v1/inference.grpc.pb.h"

namespace microbatch {
namespace bench {
namespace {

// User + system CPU seconds of this process so far.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

int Fail(const std::string& message) {
  std::cerr << "microbatch bench: " << message << "\n";
  return 1;
}

struct LevelSpec {
  std::string mode;  // "concurrency" or "rate"
  double level;
};

// What was measured at one level: the windows in order, and the client CPU
// time and /metrics scrape at the start of each (plus one after the last).
struct LevelMeasurement {
  std::vector<Window> windows;
  std::vector<double> cpu_seconds;
  std::vector<std::vector<PromSample>> scrapes;
  bool stable = false;
};

// Runs one level after another against one target: load, warm-up, windows
// until stable (or the window limit), then the summary of the last windows.
class Runner {
 public:
  // `scraper` may be null (no server-side split).
  Runner(const BenchOptions& options, Target* target, MetricsScraper* scraper, std::string model,
         std::string version)
      : options_(options),
        target_(target),
        scraper_(scraper),
        model_(std::move(model)),
        version_(std::move(version)) {}

  LevelResult Run(const LevelSpec& spec) {
    Recorder recorder;
    std::unique_ptr<Load> load = NewLoad(spec, &recorder);
    load->Start();
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.warmup_ms));
    recorder.Take();
    LevelMeasurement measurement = MeasureWindows(spec, &recorder);
    load->Stop();
    return ToResult(spec, measurement);
  }

 private:
  std::unique_ptr<Load> NewLoad(const LevelSpec& spec, Recorder* recorder) {
    if (spec.mode == "concurrency") {
      return NewClosedLoop(target_, recorder, static_cast<int64_t>(spec.level), options_.deadline_ms);
    }
    return NewOpenLoop(target_, recorder, spec.level, options_.deadline_ms, options_.max_inflight,
                       options_.seed);
  }

  // Windows until the last `stable_windows` agree within `stability` on
  // throughput and p99, or `max_windows` ran.
  LevelMeasurement MeasureWindows(const LevelSpec& spec, Recorder* recorder) {
    LevelMeasurement m;
    m.cpu_seconds.push_back(ProcessCpuSeconds());
    m.scrapes.push_back(Scrape());
    std::vector<double> throughputs, p99s;
    const int64_t need = std::max<int64_t>(1, options_.stable_windows);
    for (int64_t w = 0; w < std::max<int64_t>(1, options_.max_windows); ++w) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.window_ms));
      m.windows.push_back(recorder->Take());
      m.cpu_seconds.push_back(ProcessCpuSeconds());
      m.scrapes.push_back(Scrape());
      std::vector<double> latencies = m.windows.back().latency_ms;
      const LatencySummary latency = Summarize(latencies);
      const double seconds = m.windows.back().seconds;
      throughputs.push_back(seconds > 0 ? latency.count / seconds : 0);
      p99s.push_back(latency.p99);
      if (options_.verbose) {
        std::cerr << "bench: " << spec.mode << " " << spec.level << " window " << w + 1 << ": "
                  << Fixed(throughputs.back(), 1) << " req/s, p99 " << Fixed(latency.p99, 2) << " ms\n";
      }
      if (static_cast<int64_t>(m.windows.size()) >= need &&
          IsStable(throughputs, static_cast<int>(need), options_.stability) &&
          IsStable(p99s, static_cast<int>(need), options_.stability)) {
        m.stable = true;
        break;
      }
    }
    return m;
  }

  // The result over the last `stable_windows` windows (all when fewer ran).
  LevelResult ToResult(const LevelSpec& spec, const LevelMeasurement& m) const {
    const size_t need = static_cast<size_t>(std::max<int64_t>(1, options_.stable_windows));
    const size_t first = m.windows.size() > need ? m.windows.size() - need : 0;
    LevelResult result;
    result.mode = spec.mode;
    result.level = spec.level;
    result.windows = static_cast<int>(m.windows.size());
    result.stable = m.stable;
    AddWindows(m.windows, first, &result);
    if (result.seconds > 0) {
      result.throughput = result.ok / result.seconds;
      result.rows_per_s = result.throughput * options_.rows;
      result.goodput = (result.ok - result.late) / result.seconds;
      result.goodput_rows_per_s = result.goodput * options_.rows;
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    result.client_cpu_cores =
        result.seconds > 0 ? (m.cpu_seconds.back() - m.cpu_seconds[first]) / result.seconds : nan;
    result.server_cpu_cores = nan;
    const std::vector<PromSample>& before = m.scrapes[first];
    const std::vector<PromSample>& after = m.scrapes.back();
    if (scraper_ != nullptr && !before.empty() && !after.empty()) {
      result.server = ComputeServerSplit(before, after, model_, version_);
      std::optional<double> server_cpu = SampleDelta(before, after, "process_cpu_seconds_total", {});
      if (server_cpu && result.seconds > 0) result.server_cpu_cores = *server_cpu / result.seconds;
    }
    return result;
  }

  // Adds windows [first, end) to the counts, latencies and errors of `result`.
  static void AddWindows(const std::vector<Window>& windows, size_t first, LevelResult* result) {
    std::vector<double> latencies;
    std::array<int64_t, 17> codes{};
    int64_t bad = 0, dropped = 0;
    for (size_t i = first; i < windows.size(); ++i) {
      const Window& w = windows[i];
      result->seconds += w.seconds;
      result->sent += w.sent;
      result->late += w.late;
      result->max_send_lag_ms = std::max(result->max_send_lag_ms, w.max_send_lag_ms);
      latencies.insert(latencies.end(), w.latency_ms.begin(), w.latency_ms.end());
      for (int c = 0; c < 17; ++c) codes[c] += w.codes[c];
      bad += w.bad_responses;
      dropped += w.client_dropped;
    }
    result->latency = bench::Summarize(latencies);
    result->ok = result->latency.count;
    for (int c = 1; c < 17; ++c) {
      if (codes[c] > 0) result->errors_by_code[CodeName(c)] = codes[c];
    }
    if (bad > 0) result->errors_by_code[CodeName(-1)] = bad;
    if (dropped > 0) result->errors_by_code[CodeName(-2)] = dropped;
    for (const auto& [code, n] : result->errors_by_code) result->errors += n;
  }

  // The samples of one scrape; empty without a scraper or when it failed
  // (warned about once).
  std::vector<PromSample> Scrape() {
    if (scraper_ == nullptr) return {};
    absl::StatusOr<std::string> text = scraper_->Fetch();
    if (!text.ok()) {
      if (!warned_) std::cerr << "bench: " << text.status().message() << "\n";
      warned_ = true;
      return {};
    }
    return ParsePrometheusText(*text);
  }

  const BenchOptions& options_;
  Target* target_;
  MetricsScraper* scraper_;
  std::string model_;
  std::string version_;
  bool warned_ = false;
};

// The dims after the batch dim of `input` in the payload: --shape's, else the
// metadata's with -1 read as 1.
absl::StatusOr<std::vector<int64_t>> PayloadRowDims(const BenchOptions& options,
                                                    const v1::TensorMetadata& input) {
  auto shape = options.shapes.find(input.name());
  if (shape == options.shapes.end()) {
    std::vector<int64_t> dims;
    for (int d = 1; d < input.shape_size(); ++d) dims.push_back(input.shape(d) < 0 ? 1 : input.shape(d));
    return dims;
  }
  const std::vector<int64_t>& dims = shape->second;
  if (static_cast<int>(dims.size()) != input.shape_size() - 1) {
    return absl::InvalidArgumentError(absl::StrCat("--shape ", input.name(), ": the model's input has ",
                                                   input.shape_size() - 1, " dims after the batch dim, got ",
                                                   dims.size()));
  }
  for (size_t d = 0; d < dims.size(); ++d) {
    if (input.shape(d + 1) != -1 && input.shape(d + 1) != dims[d]) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shape ", input.name(), ": dim ", d + 1, " is fixed at ", input.shape(d + 1)));
    }
  }
  return dims;
}

// The request every call sends: `rows` rows of random inputs shaped by the
// metadata and --shape.
absl::StatusOr<v1::PredictRequest> BuildRequest(const BenchOptions& options,
                                                const v1::ModelMetadata& metadata) {
  for (const auto& [name, dims] : options.shapes) {
    const bool known = std::any_of(metadata.inputs().begin(), metadata.inputs().end(),
                                   [&](const v1::TensorMetadata& in) { return in.name() == name; });
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shape ", name, ": model '", metadata.name(), "' has no such input"));
    }
  }
  v1::PredictRequest request;
  request.set_model(options.model);
  request.set_version(options.version);
  uint64_t seed = options.seed;
  for (const v1::TensorMetadata& input : metadata.inputs()) {
    absl::StatusOr<std::vector<int64_t>> dims = PayloadRowDims(options, input);
    if (!dims.ok()) return dims.status();
    v1::Tensor* tensor = request.add_inputs();
    tensor->set_name(input.name());
    tensor->set_dtype(input.dtype());
    tensor->add_shape(options.rows);
    for (int64_t d : *dims) tensor->add_shape(d);
    std::optional<int64_t> elements =
        ElementCount(absl::MakeConstSpan(tensor->shape().data(), tensor->shape().size()));
    const DType dtype = static_cast<DType>(input.dtype());
    if (!elements || DTypeSize(dtype) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "': unsupported shape or dtype"));
    }
    *tensor->mutable_data() = RandomTensorBytes(dtype, *elements, seed++);
  }
  return request;
}

absl::StatusOr<v1::ModelMetadata> FetchMetadata(const BenchOptions& options, const ChannelFactory& channels) {
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(-1);
  auto stub = v1::Inference::NewStub(channels.NewChannel(options.target, channel_args));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetModelMetadataRequest request;
  request.set_model(options.model);
  request.set_version(options.version);
  v1::ModelMetadata metadata;
  grpc::Status status = stub->GetModelMetadata(&context, request, &metadata);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("GetModelMetadata: ",
                                     absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                                     ": ", status.error_message()));
  }
  return metadata;
}

// Null without --metrics-url.
absl::StatusOr<std::unique_ptr<MetricsScraper>> NewScraper(const BenchOptions& options) {
  if (options.metrics_url.empty()) return std::unique_ptr<MetricsScraper>();
  ScraperOptions scraper;
  scraper.url = options.metrics_url;
  scraper.ca_file = options.tls.ca_file;
  return MetricsScraper::Create(scraper);
}

// Every concurrency level, then every request rate.
std::vector<LevelSpec> Levels(const BenchOptions& options) {
  std::vector<LevelSpec> levels;
  for (int64_t c : options.concurrency) levels.push_back({"concurrency", static_cast<double>(c)});
  for (double r : options.request_rates) levels.push_back({"rate", r});
  if (levels.empty()) levels.push_back({"concurrency", 1});
  return levels;
}

void PrintLevelLine(const BenchReport& report, const LevelResult& result) {
  std::cerr << "bench: " << report.method << " " << report.model << " " << LevelName(result) << ": "
            << Fixed(result.throughput, 1) << " req/s, p50 " << Fixed(result.latency.p50, 2) << " ms, p99 "
            << Fixed(result.latency.p99, 2) << " ms, errors " << ErrorsText(result) << " ("
            << result.windows << " windows" << (result.stable ? "" : ", not stable") << ")\n";
}

}  // namespace

int RunBench(const BenchOptions& options) {
  absl::StatusOr<ChannelFactory> channels = ChannelFactory::Create(options.tls);
  if (!channels.ok()) return Fail(std::string(channels.status().message()));
  absl::StatusOr<std::unique_ptr<MetricsScraper>> scraper = NewScraper(options);
  if (!scraper.ok()) return Fail(std::string(scraper.status().message()));

  // The model's metadata shapes the payload.
  absl::StatusOr<v1::ModelMetadata> metadata = FetchMetadata(options, *channels);
  if (!metadata.ok()) return Fail(std::string(metadata.status().message()));
  const int64_t max_batch_size = metadata->batching().max_batch_size();
  if (!options.echo && max_batch_size > 0 && options.rows > max_batch_size) {
    return Fail(absl::StrCat("--rows ", options.rows, " exceeds the model's max_batch_size ", max_batch_size));
  }
  absl::StatusOr<v1::PredictRequest> request = BuildRequest(options, *metadata);
  if (!request.ok()) return Fail(std::string(request.status().message()));
  const std::string bytes = request->SerializeAsString();
  grpc::Slice slice(bytes);

  TargetOptions target_options;
  target_options.target = options.target;
  target_options.channels = options.channels;
  target_options.method = options.echo ? "/microbatch.v1.Echo/Echo" : "/microbatch.v1.Inference/Predict";
  target_options.echo = options.echo;
  Target target(target_options, *channels, grpc::ByteBuffer(&slice, 1));
  if (!target.WaitForConnected(std::chrono::seconds(10))) {
    return Fail(absl::StrCat("cannot connect to ", options.target));
  }

  BenchReport report;
  report.target = options.target;
  report.method = options.echo ? "Echo" : "Predict";
  report.model = metadata->name();
  report.version = metadata->version();
  report.rows = options.rows;
  report.payload_bytes = static_cast<int64_t>(bytes.size());
  report.deadline_ms = options.deadline_ms;
  report.channels = static_cast<int64_t>(target.channels());
  Runner runner(options, &target, scraper->get(), metadata->name(), absl::StrCat(metadata->version()));
  for (const LevelSpec& level : Levels(options)) {
    report.levels.push_back(runner.Run(level));
    PrintLevelLine(report, report.levels.back());
  }

  std::cout << FormatReport(report, options.format);
  if (!options.plot.empty()) {
    std::ofstream out(options.plot);
    out << PlotReport(report);
    if (!out) return Fail(absl::StrCat("cannot write ", options.plot));
  }
  return 0;
}

}  // namespace bench
}  // namespace microbatch
