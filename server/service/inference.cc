#include "server/service/inference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/tensor/float16.h"
#include "server/core/log.h"
#include "server/core/text.h"

namespace microbatch {
namespace {

// The reject counter a final status stands for, if any.
std::optional<RejectReason> ReasonFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return RejectReason::kInvalidInput;
    case absl::StatusCode::kResourceExhausted:
      if (status.GetPayload(MemoryBudget::kExhaustedPayload).has_value()) {
        return RejectReason::kMemoryBudget;
      }
      return status.GetPayload(DynamicBatcher::kOverloadPayload).has_value()
                 ? RejectReason::kOverloaded
                 : RejectReason::kQueueFull;
    case absl::StatusCode::kDeadlineExceeded:
      return RejectReason::kDeadlineExceeded;
    case absl::StatusCode::kCancelled:
      return RejectReason::kCancelled;
    default:
      return std::nullopt;
  }
}

// Bad requests and load shedding are counted in the metrics, not logged one
// by one (under overload that would be a line per refused request).
bool WorthALogLine(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded:
      return false;
    default:
      return true;
  }
}

// Lines a client can cause once per request, rate-limited.
RateLimitedLog& RejectedLog() {
  static RateLimitedLog* log = new RateLimitedLog(10);
  return *log;
}
RateLimitedLog& FailedLog() {
  static RateLimitedLog* log = new RateLimitedLog(10);
  return *log;
}

}  // namespace

absl::Time RequestDeadline(const InferenceRequest& request, const v1::RequestTimeoutConfig& policy) {
  absl::Duration timeout = absl::Microseconds(policy.default_microseconds());
  const bool own = request.timeout > absl::ZeroDuration() && !policy.ignore_request_timeout() &&
                   (timeout == absl::ZeroDuration() || request.timeout < timeout);
  if (own) timeout = request.timeout;
  if (timeout <= absl::ZeroDuration()) return request.deadline;
  return std::min(request.deadline, request.received + timeout);
}

absl::StatusOr<ModelSpec> ParseModelSpec(absl::string_view name, absl::string_view version) {
  ModelSpec spec;
  spec.name = std::string(name);
  if (version.empty()) return spec;
  if (absl::ascii_isdigit(static_cast<unsigned char>(version[0])) || version[0] == '-' ||
      version[0] == '+') {
    int64_t number = 0;
    if (!absl::SimpleAtoi(version, &number) || number <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", ClientText(name), "': version '", ClientText(version),
          "' is neither a positive version number nor a label (empty selects the default "
          "version)"));
    }
    spec.version = number;
    return spec;
  }
  spec.label = std::string(version);
  return spec;
}

// One request between Infer and on_done.
struct InferenceEngine::Call {
  InferenceCallbacks callbacks;
  RpcMethod method = RpcMethod::kPredict;
  absl::Time received;
  std::string id;
  std::shared_ptr<ServedModel> model;  // null until found
  ModelMetrics* metrics = nullptr;
  std::vector<int> selected;
  MemoryBudget::Lease memory;
  std::shared_ptr<Shadow> shadow;  // null unless mirrored
  // The task of a request waiting for its twin's answer (response cache);
  // run only if the twin fails.
  std::unique_ptr<BatchTask> deferred;
};

namespace {

// One output of one side of a mirrored request, copied.
struct CapturedOutput {
  std::string name;
  DType dtype = DType::kInvalid;
  std::vector<int64_t> shape;
  std::string data;
};

}  // namespace

// One mirrored request: the candidate's run on its own copy of the inputs,
// and both answers, compared once both are in.
struct InferenceEngine::Shadow {
  using Output = CapturedOutput;

  ~Shadow() { in_flight->fetch_sub(1); }
  // Called once by each side, after it stored its answer.
  void Done();

  std::shared_ptr<ServedModel> model;  // the candidate
  std::vector<std::string> inputs;     // the copies its task reads
  MemoryBudget::Lease memory;
  std::atomic<int>* in_flight = nullptr;
  Mutex mu;
  int remaining ABSL_GUARDED_BY(mu) = 2;
  bool primary_ok ABSL_GUARDED_BY(mu) = false;
  bool shadow_ok ABSL_GUARDED_BY(mu) = false;
  bool dropped ABSL_GUARDED_BY(mu) = false;
  std::vector<Output> primary ABSL_GUARDED_BY(mu);
  std::vector<Output> candidate ABSL_GUARDED_BY(mu);
};

namespace {

std::vector<CapturedOutput> CopyOutputs(const ModelSignature& signature,
                                                         const TaskOutputs& outputs) {
  std::vector<CapturedOutput> copies;
  for (size_t i = 0; i < outputs.size() && i < signature.outputs.size(); ++i) {
    CapturedOutput out;
    out.name = signature.outputs[i].name;
    out.dtype = outputs.dtype(i);
    out.shape = outputs.shape(i);
    out.data = std::string(outputs.data(i));
    copies.push_back(std::move(out));
  }
  return copies;
}

// Element `i` of dense `data` of `dtype` as a double.
double ElementAt(DType dtype, const std::string& data, size_t i) {
  auto load = [&](auto v) {
    std::memcpy(&v, data.data() + i * sizeof(v), sizeof(v));
    return v;
  };
  switch (dtype) {
    case DType::kFloat32: return load(float{});
    case DType::kFloat64: return load(double{});
    case DType::kFloat16: return HalfToFloat(load(uint16_t{}));
    case DType::kBFloat16: return BFloat16ToFloat(load(uint16_t{}));
    case DType::kInt64: return static_cast<double>(load(int64_t{}));
    case DType::kInt32: return load(int32_t{});
    case DType::kInt16: return load(int16_t{});
    case DType::kInt8: return load(int8_t{});
    case DType::kUInt8: return load(uint8_t{});
    case DType::kBool: return load(uint8_t{}) != 0 ? 1.0 : 0.0;
    default: return 0;
  }
}

// The cache key of a request: its validated inputs (dtype, shape, bytes) in
// signature order. The answer holds every output, so the outputs asked for
// are not part of the key. The key is `header` (every input's dtype, shape
// and byte size) followed by the inputs' bytes, which stay where they lie.
struct CacheKey {
  explicit CacheKey(const std::vector<TensorView>& inputs) {
    auto put = [this](int64_t v) { header.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
    put(static_cast<int64_t>(inputs.size()));
    for (const TensorView& in : inputs) {
      put(static_cast<int64_t>(in.dtype));
      put(static_cast<int64_t>(in.shape.size()));
      for (int64_t d : in.shape) put(d);
      put(static_cast<int64_t>(in.byte_size));
    }
    pieces.reserve(inputs.size() + 1);
    pieces.emplace_back(header);
    for (const TensorView& in : inputs) pieces.emplace_back(static_cast<const char*>(in.data), in.byte_size);
  }
  CacheKey(const CacheKey&) = delete;
  CacheKey& operator=(const CacheKey&) = delete;

  std::string header;
  std::vector<absl::string_view> pieces;
};

// A copy of every output of one task, to cache.
std::shared_ptr<const CachedResponse> CopyAnswer(const TaskOutputs& outputs) {
  std::vector<DType> dtypes;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<absl::string_view> bytes;
  for (size_t i = 0; i < outputs.size(); ++i) {
    dtypes.push_back(outputs.dtype(i));
    shapes.push_back(outputs.shape(i));
    bytes.push_back(outputs.data(i));
  }
  return CachedResponse::Copy(dtypes, shapes, bytes, outputs.rows());
}

}  // namespace

void InferenceEngine::AnswerFromCache(Call* call, const CachedResponse& answer) {
  TaskOutputs outputs(&answer.outputs, 0, answer.rows);
  absl::Status status = absl::OkStatus();
  if (call->callbacks.on_outputs) {
    status = call->callbacks.on_outputs(InferenceResult{*call->model, call->selected, outputs});
  }
  Finish(call, std::move(status));
}

void InferenceEngine::Shadow::Done() {
  std::vector<Output> served, mirrored;
  bool compare = false, failed = false, was_dropped = false;
  {
    MutexLock lock(&mu);
    if (--remaining > 0) return;
    was_dropped = dropped;
    failed = primary_ok && !shadow_ok && !dropped;
    compare = primary_ok && shadow_ok;
    served = std::move(primary);
    mirrored = std::move(candidate);
  }
  ModelMetrics* metrics = model->metrics;
  if (was_dropped) {
    metrics->RecordShadowDropped();
    return;
  }
  if (failed) {
    metrics->RecordShadowError();
    return;
  }
  if (!compare) return;  // the served version failed: nothing to compare with
  double max_diff = 0;
  int64_t rows = 0, mismatches = 0;
  for (size_t k = 0; k < served.size(); ++k) {
    const Output& p = served[k];
    auto c = std::find_if(mirrored.begin(), mirrored.end(), [&](const Output& o) { return o.name == p.name; });
    if (c == mirrored.end() || c->shape != p.shape || DTypeSize(c->dtype) == 0 ||
        DTypeSize(p.dtype) == 0 ||
        c->data.size() / DTypeSize(c->dtype) != p.data.size() / DTypeSize(p.dtype)) {
      metrics->RecordShadowError();  // not comparable: a different signature
      return;
    }
    const size_t n = p.data.size() / DTypeSize(p.dtype);
    for (size_t i = 0; i < n; ++i) {
      const double d = std::fabs(ElementAt(p.dtype, p.data, i) - ElementAt(c->dtype, c->data, i));
      if (!(d <= max_diff)) max_diff = std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
    }
    if (k == 0 && !p.shape.empty() && p.shape[0] > 0) {
      rows = p.shape[0];
      const size_t per_row = n / static_cast<size_t>(rows);
      for (int64_t r = 0; r < rows && per_row > 0; ++r) {
        size_t best_p = 0, best_c = 0;
        for (size_t j = 1; j < per_row; ++j) {
          const size_t i = static_cast<size_t>(r) * per_row;
          if (ElementAt(p.dtype, p.data, i + j) > ElementAt(p.dtype, p.data, i + best_p)) best_p = j;
          if (ElementAt(c->dtype, c->data, i + j) > ElementAt(c->dtype, c->data, i + best_c)) best_c = j;
        }
        if (best_p != best_c) ++mismatches;
      }
    }
  }
  metrics->RecordShadowCompared(rows, mismatches, max_diff);
}

absl::StatusOr<ModelManager*> InferenceEngine::Models() const {
  ModelManager* models = models_.load();
  if (models == nullptr) {
    return absl::UnavailableError("the server is still loading its models; retry shortly");
  }
  return models;
}

namespace {

lifecycle::VersionSelector SelectorOf(const ModelSpec& spec) {
  if (!spec.label.empty()) return lifecycle::VersionSelector::Label(spec.label);
  if (spec.version > 0) return lifecycle::VersionSelector::Number(spec.version);
  return lifecycle::VersionSelector::Default();
}

}  // namespace

absl::StatusOr<std::shared_ptr<ServedModel>> InferenceEngine::Find(const ModelSpec& spec) const {
  absl::StatusOr<ModelManager*> models = Models();
  if (!models.ok()) return models.status();
  absl::StatusOr<RoutedRequest> routed = (*models)->Route(spec.name, SelectorOf(spec), {});
  if (!routed.ok()) return routed.status();
  return routed->primary;
}

absl::StatusOr<std::shared_ptr<ServedModel>> InferenceEngine::Find(absl::string_view name,
                                                                   absl::string_view version) const {
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(name, version);
  if (!spec.ok()) return spec.status();
  return Find(*spec);
}

std::shared_ptr<InferenceEngine::Shadow> InferenceEngine::StartShadow(
    std::shared_ptr<ServedModel> model, absl::Span<const RequestTensor> request) {
  ModelMetrics* metrics = model->metrics;
  if (shadows_in_flight_.fetch_add(1) >= options_.max_shadow_in_flight) {
    shadows_in_flight_.fetch_sub(1);
    metrics->RecordShadowDropped();
    return nullptr;
  }
  auto shadow = std::make_shared<Shadow>();
  shadow->in_flight = &shadows_in_flight_;
  shadow->model = std::move(model);
  const ServedModel& candidate = *shadow->model;
  absl::StatusOr<ValidatedInputs> inputs =
      ValidateCall(candidate.signature, request, candidate.plan.config.max_batch_size());
  if (!inputs.ok()) {
    metrics->RecordShadowError();
    return nullptr;
  }
  int64_t input_bytes = 0;
  for (const TensorView& in : inputs->inputs) input_bytes += static_cast<int64_t>(in.byte_size);
  std::vector<int> all_outputs(candidate.signature.outputs.size());
  for (size_t i = 0; i < all_outputs.size(); ++i) all_outputs[i] = static_cast<int>(i);
  absl::StatusOr<MemoryBudget::Lease> memory = budget_->Reserve(
      input_bytes + 2 * EstimateOutputBytes(candidate.signature, all_outputs, inputs->rows, input_bytes));
  if (!memory.ok()) {
    metrics->RecordShadowDropped();
    return nullptr;
  }
  shadow->memory = std::move(*memory);
  BatchTask task;
  shadow->inputs.reserve(inputs->inputs.size());
  for (TensorView view : inputs->inputs) {
    shadow->inputs.emplace_back(static_cast<const char*>(view.data), view.byte_size);
    view.data = shadow->inputs.back().data();
    task.inputs.push_back(std::move(view));
  }
  task.rows = inputs->rows;
  task.shape_key = std::move(inputs->shape_key);
  task.priority = Priority::kBulk;
  task.done = [shadow](const absl::Status& status, const TaskOutputs& outputs, const BatchInfo&) {
    {
      MutexLock lock(&shadow->mu);
      shadow->shadow_ok = status.ok();
      if (status.ok()) shadow->candidate = CopyOutputs(shadow->model->signature, outputs);
    }
    shadow->Done();
  };
  absl::Status queued = shadow->model->batcher->Enqueue(std::move(task));
  if (!queued.ok()) {
    MutexLock lock(&shadow->mu);
    shadow->dropped = true;
    --shadow->remaining;  // the shadow side is over
  }
  return shadow;
}

void InferenceEngine::RecordRefused(RpcMethod method, const absl::Status& status,
                                    absl::Time received) {
  ModelMetrics* metrics = metrics_->Unknown();
  metrics->RequestStarted();
  if (std::optional<RejectReason> reason = ReasonFor(status)) metrics->RecordReject(*reason);
  metrics->RecordRequest(method, status.code(), received);
}

void InferenceEngine::Finish(Call* call, absl::Status status) {
  if (std::optional<RejectReason> reason = ReasonFor(status)) call->metrics->RecordReject(*reason);
  call->metrics->RecordRequest(call->method, status.code(), call->received);
  if (WorthALogLine(status)) {
    const bool failed = status.code() == absl::StatusCode::kInternal && call->model != nullptr;
    (failed ? FailedLog() : RejectedLog())
        .Log(failed ? LogLevel::kError : LogLevel::kWarning,
             failed ? "inference_failed" : "inference_rejected",
             {{"method", RpcMethodName(call->method)},
              {"model", call->model ? call->model->name : std::string()},
              {"version", call->model ? call->model->version : 0},
              {"request_id", ClientText(call->id)},
              {"code", absl::StatusCodeToString(status.code())},
              {"message", status.message()}});
  }
  std::function<void(const absl::Status&)> on_done = std::move(call->callbacks.on_done);
  delete call;  // the model handle and the memory lease go first
  on_done(status);
}

void InferenceEngine::Infer(InferenceRequest request, InferenceCallbacks callbacks) {
  auto* call = new Call;
  call->callbacks = std::move(callbacks);
  call->method = request.method;
  call->received = request.received;
  call->id = std::move(request.id);
  absl::StatusOr<ModelManager*> models = Models();
  absl::StatusOr<RoutedRequest> routed =
      models.ok() ? (*models)->Route(request.model.name, SelectorOf(request.model), request.routing_key)
                  : absl::StatusOr<RoutedRequest>(models.status());
  call->metrics = routed.ok() ? routed->primary->metrics : metrics_->Unknown();
  call->metrics->RequestStarted();
  if (!routed.ok()) return Finish(call, routed.status());
  call->model = routed->primary;
  const ServedModel& served = *call->model;
  if (!request.input_error.ok()) return Finish(call, request.input_error);

  absl::StatusOr<ValidatedInputs> inputs =
      ValidateCall(served.signature, request.inputs, served.plan.config.max_batch_size());
  if (!inputs.ok()) return Finish(call, inputs.status());
  absl::StatusOr<std::vector<int>> selected = ResolveOutputs(served.signature, request.outputs);
  if (!selected.ok()) return Finish(call, selected.status());
  call->selected = std::move(*selected);
  int64_t input_bytes = 0;
  for (const TensorView& in : inputs->inputs) input_bytes += static_cast<int64_t>(in.byte_size);
  absl::StatusOr<MemoryBudget::Lease> memory = budget_->Reserve(
      2 * request.wire_bytes +
      EstimateOutputBytes(served.signature, call->selected, inputs->rows, input_bytes));
  if (!memory.ok()) return Finish(call, memory.status());
  call->memory = std::move(*memory);

  BatchTask task;
  task.inputs = std::move(inputs->inputs);
  task.rows = inputs->rows;
  task.shape_key = std::move(inputs->shape_key);
  task.priority = request.priority;
  task.may_run_inline = request.may_run_inline;
  task.deadline = RequestDeadline(request, served.plan.config.request_timeout());
  task.is_cancelled = std::move(request.is_cancelled);
  ResponseCache* cache = served.cache.get();
  // The flight this request leads, once the cache says so.
  auto flight = cache != nullptr ? std::make_shared<std::shared_ptr<ResponseCache::Flight>>() : nullptr;
  task.done = [this, call, cache, flight](const absl::Status& status, const TaskOutputs& outputs,
                                          const BatchInfo& info) {
    call->metrics->RecordQueueWait(info.queue_wait);
    if (flight != nullptr && *flight != nullptr) {
      cache->Complete(*flight, status.ok() ? CopyAnswer(outputs) : nullptr);
    }
    absl::Status final_status = status;
    if (status.ok() && call->callbacks.on_outputs) {
      final_status = call->callbacks.on_outputs(InferenceResult{*call->model, call->selected, outputs});
    }
    std::shared_ptr<Shadow> shadow = std::move(call->shadow);
    if (shadow != nullptr) {
      MutexLock lock(&shadow->mu);
      shadow->primary_ok = status.ok();
      if (status.ok()) shadow->primary = CopyOutputs(call->model->signature, outputs);
    }
    Finish(call, std::move(final_status));
    // After the caller's answer: when the shadow answered first, Done()
    // compares the outputs here, which must not delay that answer.
    if (shadow != nullptr) shadow->Done();
  };
  if (cache != nullptr) {
    const absl::Time start = absl::Now();
    // A joined request may be answered (and `call` freed) by another thread
    // as soon as Find returns: after it, touch `call` only when not joined.
    ModelMetrics* metrics = call->metrics;
    // Stored before the lookup: the twin may finish (and fail) at once. The
    // key's pieces view the task's inputs, which the move leaves in place.
    call->deferred = std::make_unique<BatchTask>(std::move(task));
    const CacheKey key(call->deferred->inputs);
    ResponseCache::Lookup lookup =
        cache->Find(key.pieces, [this, call](std::shared_ptr<const CachedResponse> answer) {
          if (answer != nullptr) {
            call->deferred.reset();
            return AnswerFromCache(call, *answer);
          }
          // The twin failed: run this request itself.
          absl::Status queued = call->model->batcher->Enqueue(std::move(*call->deferred));
          if (!queued.ok()) Finish(call, queued);
        });
    metrics->RecordCacheLookup(lookup.hit != nullptr ? CacheResult::kHit
                                     : lookup.joined       ? CacheResult::kJoined
                                                           : CacheResult::kMiss,
                                     absl::Now() - start);
    if (lookup.hit != nullptr) {
      call->deferred.reset();
      routed->snapshot.reset();
      return AnswerFromCache(call, *lookup.hit);
    }
    if (lookup.joined) return;  // answered by the waiter
    *flight = std::move(lookup.lead);
    task = std::move(*call->deferred);
    call->deferred.reset();
  }
  if (routed->shadow != nullptr) {
    call->shadow = StartShadow(std::move(routed->shadow), request.inputs);
  }
  DynamicBatcher* batcher = served.batcher.get();
  absl::Status queued = batcher->Enqueue(std::move(task));
  // The snapshot held off the version's drain until its work was queued.
  routed->snapshot.reset();
  // A refused task's `done` was not called: answer here.
  if (!queued.ok()) {
    if (flight != nullptr && *flight != nullptr) cache->Complete(*flight, nullptr);
    if (std::shared_ptr<Shadow> shadow = std::move(call->shadow)) shadow->Done();
    Finish(call, queued);
  }
}

}  // namespace microbatch
