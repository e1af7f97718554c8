#include "server/service/inference.h"

#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
};

absl::StatusOr<ModelRepository*> InferenceEngine::Repository() const {
  ModelRepository* repository = repository_.load();
  if (repository == nullptr) {
    return absl::UnavailableError("the server is still loading its models; retry shortly");
  }
  return repository;
}

absl::StatusOr<std::shared_ptr<ServedModel>> InferenceEngine::Find(const ModelSpec& spec) const {
  absl::StatusOr<ModelRepository*> repository = Repository();
  if (!repository.ok()) return repository.status();
  if (!spec.label.empty()) {
    // Labels are not configured for any model yet: say what does exist.
    absl::StatusOr<std::shared_ptr<ServedModel>> model = (*repository)->Find(spec.name, 0);
    if (!model.ok()) return model.status();
    return absl::NotFoundError(absl::StrCat(
        "model '", ClientText(spec.name), "' has no version label '", ClientText(spec.label),
        "'; served versions: [", absl::StrJoin((*repository)->Versions(spec.name), ","),
        "] (ask for a number, or leave the version empty for the default)"));
  }
  return (*repository)->Find(spec.name, spec.version);
}

void InferenceEngine::RecordRefused(RpcMethod method, const absl::Status& status,
                                    absl::Time received) {
  ModelMetrics* metrics = metrics_->Unknown();
  metrics->RequestStarted();
  if (std::optional<RejectReason> reason = ReasonFor(status)) metrics->RecordReject(*reason);
  metrics->RecordRequest(method, status.code(), absl::Now() - received);
}

void InferenceEngine::Finish(Call* call, absl::Status status) {
  if (std::optional<RejectReason> reason = ReasonFor(status)) call->metrics->RecordReject(*reason);
  call->metrics->RecordRequest(call->method, status.code(), absl::Now() - call->received);
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
  absl::StatusOr<std::shared_ptr<ServedModel>> model = Find(request.model);
  call->metrics = model.ok() ? (*model)->metrics : metrics_->Unknown();
  call->metrics->RequestStarted();
  if (!model.ok()) return Finish(call, model.status());
  call->model = std::move(*model);
  const ServedModel& served = *call->model;
  if (!request.input_error.ok()) return Finish(call, request.input_error);

  absl::StatusOr<ValidatedInputs> inputs =
      ValidateInputs(served.signature, request.inputs, served.plan.config.max_batch_size());
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
  task.deadline = request.deadline;
  task.is_cancelled = std::move(request.is_cancelled);
  task.done = [this, call](const absl::Status& status, const TaskOutputs& outputs,
                           const BatchInfo& info) {
    call->metrics->RecordQueueWait(info.queue_wait);
    absl::Status final_status = status;
    if (status.ok() && call->callbacks.on_outputs) {
      final_status = call->callbacks.on_outputs(InferenceResult{*call->model, call->selected, outputs});
    }
    Finish(call, std::move(final_status));
  };
  DynamicBatcher* batcher = served.batcher.get();
  absl::Status queued = batcher->Enqueue(std::move(task));
  // A refused task's `done` was not called: answer here.
  if (!queued.ok()) Finish(call, queued);
}

}  // namespace microbatch
