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
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "client/bench_load.h"
#include "client/bench_stats.h"
#include "client/metrics_scraper.h"
#include "client/http_client.h"
#include "client/open_inference.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
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

// Runs one level after another: load on a target, warm-up, windows until
// stable (or the window limit), then the summary of the last windows.
class Runner {
 public:
  // `scraper` may be null (no server-side split).
  Runner(const BenchOptions& options, MetricsScraper* scraper, std::string model, std::string version)
      : options_(options), scraper_(scraper), model_(std::move(model)), version_(std::move(version)) {}

  // `method`: the server's metrics label of the requests (e.g. "ModelInfer").
  LevelResult Run(const LevelSpec& spec, Target* target, const std::string& protocol, const std::string& method) {
    Recorder recorder;
    std::unique_ptr<Load> load = NewLoad(spec, target, &recorder);
    load->Start();
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.warmup_ms));
    recorder.Take();
    LevelMeasurement measurement = MeasureWindows(spec, protocol, &recorder);
    load->Stop();
    LevelResult result = ToResult(spec, measurement, method);
    result.protocol = protocol;
    return result;
  }

 private:
  std::unique_ptr<Load> NewLoad(const LevelSpec& spec, Target* target, Recorder* recorder) {
    if (spec.mode == "concurrency") {
      return NewClosedLoop(target, recorder, static_cast<int64_t>(spec.level), options_.deadline_ms);
    }
    return NewOpenLoop(target, recorder, spec.level, options_.deadline_ms, options_.max_inflight,
                       options_.seed);
  }

  // Windows until the last `stable_windows` agree within `stability` on
  // throughput and p99, or `max_windows` ran.
  LevelMeasurement MeasureWindows(const LevelSpec& spec, const std::string& protocol, Recorder* recorder) {
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
        std::cerr << "bench: " << protocol << " " << spec.mode << " " << spec.level << " window " << w + 1 << ": "
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
  LevelResult ToResult(const LevelSpec& spec, const LevelMeasurement& m, const std::string& method) const {
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
      result.server = ComputeServerSplit(before, after, model_, version_, method);
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
  MetricsScraper* scraper_;
  std::string model_;
  std::string version_;
  bool warned_ = false;
};

// The dims after the batch dim of `input` in the payload (all of them for a
// model without a batch dimension): --shape's, else the metadata's with -1
// read as 1.
absl::StatusOr<std::vector<int64_t>> PayloadRowDims(const BenchOptions& options, const DeclaredTensor& input,
                                                    bool batched) {
  const int rank = static_cast<int>(input.shape.size());
  const int first = batched ? 1 : 0;
  auto shape = options.shapes.find(input.name);
  if (shape == options.shapes.end()) {
    std::vector<int64_t> dims;
    for (int d = first; d < rank; ++d) dims.push_back(input.shape[d] < 0 ? 1 : input.shape[d]);
    return dims;
  }
  const std::vector<int64_t>& dims = shape->second;
  if (static_cast<int>(dims.size()) != rank - first) {
    return absl::InvalidArgumentError(absl::StrCat("--shape ", input.name, ": the model's input has ", rank - first,
                                                   batched ? " dims after the batch dim" : " dims", ", got ",
                                                   dims.size()));
  }
  for (size_t d = 0; d < dims.size(); ++d) {
    if (input.shape[d + first] != -1 && input.shape[d + first] != dims[d]) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shape ", input.name, ": dim ", d + first, " is fixed at ", input.shape[d + first]));
    }
  }
  return dims;
}

// The inputs every call sends: `rows` rows of random values shaped by the
// metadata and --shape (one call's tensors, without a batch dimension).
absl::StatusOr<std::vector<v1::Tensor>> BuildInputs(const BenchOptions& options, const ModelInfo& signature,
                                                    bool batched) {
  for (const auto& [name, dims] : options.shapes) {
    const bool known = std::any_of(signature.inputs.begin(), signature.inputs.end(),
                                   [&](const DeclaredTensor& in) { return in.name == name; });
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shape ", name, ": model '", signature.name, "' has no such input"));
    }
  }
  std::vector<v1::Tensor> tensors;
  uint64_t seed = options.seed;
  for (const DeclaredTensor& input : signature.inputs) {
    absl::StatusOr<std::vector<int64_t>> dims = PayloadRowDims(options, input, batched);
    if (!dims.ok()) return dims.status();
    v1::Tensor tensor;
    tensor.set_name(input.name);
    tensor.set_dtype(static_cast<v1::DataType>(input.dtype));
    if (batched) tensor.add_shape(options.rows);
    for (int64_t d : *dims) tensor.add_shape(d);
    std::optional<int64_t> elements = ElementCount(absl::MakeConstSpan(tensor.shape().data(), tensor.shape().size()));
    if (!elements || DTypeSize(input.dtype) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("input '", input.name, "': unsupported shape or datatype ",
                                                     input.datatype));
    }
    *tensor.mutable_data() = RandomTensorBytes(input.dtype, *elements, seed++);
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

absl::Status RpcError(const char* rpc, const grpc::Status& status) {
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  return absl::Status(code, absl::StrCat(rpc, ": ", absl::StatusCodeToString(code), ": ", status.error_message()));
}

// What the run needs from the model's metadata.
struct BenchModel {
  ModelInfo signature;
  std::string version;         // the version that serves (for the /metrics labels)
  int64_t max_batch_size = 0;  // 0: unknown, or no batch dimension (`batched`)
  bool batched = true;         // false: v1 metadata or Triton's config says max_batch_size 0
};

std::shared_ptr<grpc::Channel> MetadataChannel(const BenchOptions& options, const ChannelFactory& channels) {
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(-1);
  return channels.NewChannel(options.target, channel_args);
}

// From v1 GetModelMetadata when v1 is measured, else from v2 ModelMetadata,
// else from REST GET /v2/models/NAME; with v2 and REST, whether the model
// batches comes from Triton's model configuration (ModelConfig, GET
// .../config) where the server has it, else it is assumed.
absl::StatusOr<BenchModel> FetchModel(const BenchOptions& options, const ChannelFactory& channels) {
  const auto has = [&](Protocol p) {
    return std::find(options.protocols.begin(), options.protocols.end(), p) != options.protocols.end();
  };
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);
  BenchModel model;
  if (has(Protocol::kV1) || options.protocols.empty()) {
    auto stub = v1::Inference::NewStub(MetadataChannel(options, channels));
    grpc::ClientContext context;
    context.set_deadline(deadline);
    v1::GetModelMetadataRequest request;
    request.set_model(options.model);
    request.set_version(options.version);
    v1::ModelMetadata metadata;
    grpc::Status status = stub->GetModelMetadata(&context, request, &metadata);
    if (!status.ok()) return RpcError("GetModelMetadata", status);
    model.signature = SignatureFromV1(metadata);
    model.version = absl::StrCat(metadata.version());
    model.max_batch_size = metadata.batching().max_batch_size();
    model.batched = model.max_batch_size != 0;
    return model;
  }
  if (has(Protocol::kV2)) {
    auto stub = inference::GRPCInferenceService::NewStub(MetadataChannel(options, channels));
    grpc::ClientContext context;
    context.set_deadline(deadline);
    inference::ModelMetadataRequest request;
    request.set_name(options.model);
    request.set_version(V2Version(options.version));
    inference::ModelMetadataResponse metadata;
    grpc::Status status = stub->ModelMetadata(&context, request, &metadata);
    if (!status.ok()) return RpcError("ModelMetadata", status);
    model.signature = SignatureFromV2(metadata);
    grpc::ClientContext config_context;
    config_context.set_deadline(deadline);
    inference::ModelConfigRequest config_request;
    config_request.set_name(options.model);
    config_request.set_version(V2Version(options.version));
    inference::ModelConfigResponse config;
    if (stub->ModelConfig(&config_context, config_request, &config).ok()) {
      model.max_batch_size = config.config().max_batch_size();
      model.batched = model.max_batch_size != 0;
    }
  } else {
    HttpOptions http;
    http.address = options.http;
    http.tls = options.tls;
    http.timeout_ms = 10000;
    absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Create(http);
    if (!client.ok()) return client.status();
    absl::StatusOr<HttpReply> response = (*client)->Get(RestModelPath(options.model, V2Version(options.version)));
    if (!response.ok()) return response.status();
    absl::StatusOr<ModelInfo> signature = ParseRestModelMetadata(response->status, response->body);
    if (!signature.ok()) return absl::Status(signature.status().code(),
                                             absl::StrCat("model metadata: ", signature.status().message()));
    model.signature = std::move(*signature);
    absl::StatusOr<HttpReply> config = (*client)->Get(RestModelPath(options.model, V2Version(options.version)) + "/config");
    if (config.ok()) {
      if (std::optional<int64_t> max = ParseRestMaxBatchSize(config->status, config->body)) {
        model.max_batch_size = *max;
        model.batched = *max != 0;
      }
    }
  }
  // The served version: the one asked for, else the newest listed.
  int64_t newest = options.version;
  for (const std::string& v : model.signature.versions) {
    int64_t n = 0;
    if (options.version == 0 && absl::SimpleAtoi(v, &n)) newest = std::max(newest, n);
  }
  model.version = absl::StrCat(newest);
  return model;
}

// One front end under test.
struct Front {
  Protocol protocol;
  std::unique_ptr<Target> target;
  ProtocolInfo info;
  std::string metrics_method;  // its `method` label in the server's metrics
};

grpc::ByteBuffer Payload(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

absl::StatusOr<Front> MakeFront(Protocol protocol, const BenchOptions& options, const ChannelFactory& channels,
                                const std::vector<v1::Tensor>& inputs) {
  Front front;
  front.protocol = protocol;
  front.info.protocol = ProtocolName(protocol);
  InferRequestSpec spec;
  spec.model = options.model;
  spec.version = V2Version(options.version);
  spec.inputs = inputs;
  TargetOptions target;
  target.target = options.target;
  target.channels = options.channels;
  switch (protocol) {
    case Protocol::kV1: {
      v1::PredictRequest request;
      request.set_model(options.model);
      request.set_version(options.version);
      for (const v1::Tensor& tensor : inputs) *request.add_inputs() = tensor;
      const std::string bytes = request.SerializeAsString();
      if (options.echo) {
        target.method = "/microbatch.v1.Echo/Echo";
        target.check = [n = bytes.size()](const std::string& response) { return response.size() == n; };
      } else {
        target.method = "/microbatch.v1.Inference/Predict";
        target.check = [](const std::string& response) {
          v1::PredictResponse parsed;
          return parsed.ParseFromString(response) && parsed.outputs_size() > 0;
        };
      }
      front.info.method = options.echo ? "Echo" : "Predict";
      front.metrics_method = front.info.method;
      front.info.payload_bytes = static_cast<int64_t>(bytes.size());
      front.target = NewGrpcTarget(target, channels, Payload(bytes));
      break;
    }
    case Protocol::kV2: {
      absl::StatusOr<inference::ModelInferRequest> request = BuildModelInferRequest(spec);
      if (!request.ok()) return request.status();
      const std::string bytes = request->SerializeAsString();
      target.method = "/inference.GRPCInferenceService/ModelInfer";
      target.check = [](const std::string& response) {
        inference::ModelInferResponse parsed;
        if (!parsed.ParseFromString(response)) return false;
        absl::StatusOr<InferResult> result = ParseModelInferResponse(parsed);
        return result.ok() && !result->outputs.empty();
      };
      front.info.method = "ModelInfer";
      front.metrics_method = "ModelInfer";
      front.info.payload_bytes = static_cast<int64_t>(bytes.size());
      front.target = NewGrpcTarget(target, channels, Payload(bytes));
      break;
    }
    case Protocol::kRest: {
      HttpOptions http;
      http.address = options.http;
      http.tls = options.tls;
      http.timeout_ms = 0;  // each request's deadline sets it
      absl::StatusOr<HttpEndpoint> endpoint = HttpEndpoint::Create(http);
      if (!endpoint.ok()) return endpoint.status();
      absl::StatusOr<std::string> body = BuildRestInferBody(spec);
      if (!body.ok()) return body.status();
      const std::string path = RestInferPath(spec.model, spec.version);
      front.info.method = "POST infer";
      front.metrics_method = "RestInfer";
      front.info.payload_bytes = static_cast<int64_t>(body->size());
      front.info.target = endpoint->Url(path);
      front.target = NewRestTarget(*endpoint, path, std::move(*body), [](const std::string& response) {
        absl::StatusOr<InferResult> result = ParseRestInferResponse(200, response);
        return result.ok() && !result->outputs.empty();
      });
      break;
    }
  }
  if (front.info.target.empty()) front.info.target = options.target;
  front.info.channels = static_cast<int64_t>(front.target->connections());
  return front;
}

// One checked request through `front`, before any level: the code of its
// outcome (0 OK, -1 a response that does not decode).
int FirstRequest(Front& front, int64_t deadline_ms) {
  std::unique_ptr<Exchange> exchange = front.target->NewExchange(0);
  std::mutex mu;
  std::condition_variable cv;
  std::optional<int> outcome;
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::milliseconds(deadline_ms > 0 ? std::max<int64_t>(deadline_ms, 10000) : 30000);
  exchange->Start(deadline, /*check=*/true, [&](int code) {
    std::lock_guard<std::mutex> lock(mu);
    outcome = code;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return outcome.has_value(); });
  return *outcome;
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
  std::string method = report.method;
  for (const ProtocolInfo& p : report.protocols) {
    if (p.protocol == result.protocol) method = p.method;
  }
  std::cerr << "bench: " << (report.rounds > 1 ? absl::StrCat("round ", result.round, "/", report.rounds, " ") : "")
            << (ShowsProtocols(report) ? result.protocol + " " : std::string()) << method << " "
            << report.model << " " << LevelName(result) << ": " << Fixed(result.throughput, 1) << " req/s, p50 "
            << Fixed(result.latency.p50, 2) << " ms, p99 " << Fixed(result.latency.p99, 2) << " ms, errors "
            << ErrorsText(result) << " (" << result.windows << " windows" << (result.stable ? "" : ", not stable")
            << ")\n";
}

}  // namespace

int RunBench(const BenchOptions& options) {
  absl::StatusOr<ChannelFactory> channels = ChannelFactory::Create(options.tls);
  if (!channels.ok()) return Fail(std::string(channels.status().message()));
  absl::StatusOr<std::unique_ptr<MetricsScraper>> scraper = NewScraper(options);
  if (!scraper.ok()) return Fail(std::string(scraper.status().message()));

  // The model's metadata shapes the payload.
  absl::StatusOr<BenchModel> model = FetchModel(options, *channels);
  if (!model.ok()) return Fail(std::string(model.status().message()));
  if (!options.echo && model->max_batch_size > 0 && options.rows > model->max_batch_size) {
    return Fail(absl::StrCat("--rows ", options.rows, " exceeds the model's max_batch_size ", model->max_batch_size));
  }
  if (!options.echo && !model->batched && options.rows != 1) {
    return Fail(absl::StrCat("--rows ", options.rows, ": the model has no batch dimension (one call per request)"));
  }
  absl::StatusOr<std::vector<v1::Tensor>> inputs = BuildInputs(options, model->signature, model->batched);
  if (!inputs.ok()) return Fail(std::string(inputs.status().message()));

  std::vector<Front> fronts;
  // Each front end, in the order run, with its name in the report.
  struct Planned {
    Protocol protocol;
    std::string name;
    bool echo;  // sent to microbatch.v1.Echo
  };
  std::vector<Planned> plan;
  if (options.with_echo) plan.push_back({Protocol::kV1, "echo", true});
  for (Protocol protocol : options.protocols) plan.push_back({protocol, ProtocolName(protocol), options.echo});
  for (const auto& [protocol, name, echo] : plan) {
    BenchOptions front_options = options;
    front_options.echo = echo;
    absl::StatusOr<Front> front = MakeFront(protocol, front_options, *channels, *inputs);
    if (!front.ok()) return Fail(absl::StrCat(name, ": ", front.status().message()));
    front->info.protocol = name;
    if (!front->target->WaitForConnected(std::chrono::seconds(10))) {
      return Fail(absl::StrCat(front->info.protocol, ": cannot connect to ", front->info.target));
    }
    if (const int code = FirstRequest(*front, options.deadline_ms); code != 0) {
      return Fail(absl::StrCat(front->info.protocol, ": the first ", front->info.method, " request to ",
                               front->info.target, " failed: ", CodeName(code),
                               echo ? " (is the server started with --enable_echo?)"
                                    : absl::StrCat(" (try it with `microbatch predict --protocol ", name, "`)")));
    }
    fronts.push_back(std::move(*front));
  }
  if (fronts.empty()) return Fail("no --protocol");

  BenchReport report;
  const ProtocolInfo& first = fronts.front().info;
  report.target = first.target;
  report.method = first.method;
  report.model = model->signature.name.empty() ? options.model : model->signature.name;
  int64_t version = 0;
  report.version = absl::SimpleAtoi(model->version, &version) ? version : 0;
  report.rows = options.rows;
  report.payload_bytes = first.payload_bytes;
  report.deadline_ms = options.deadline_ms;
  report.channels = first.channels;
  for (const Front& front : fronts) report.protocols.push_back(front.info);
  report.rounds = std::max<int64_t>(1, options.rounds);
  Runner runner(options, scraper->get(), report.model, model->version);
  for (int64_t round = 1; round <= report.rounds; ++round) {
    for (const LevelSpec& level : Levels(options)) {
      for (Front& front : fronts) {
        report.levels.push_back(runner.Run(level, front.target.get(), front.info.protocol, front.metrics_method));
        report.levels.back().round = round;
        PrintLevelLine(report, report.levels.back());
      }
    }
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
