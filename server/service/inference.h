// The one request path of every front end (microbatch.v1 Predict, KServe v2
// ModelInfer over gRPC, v2 REST infer): model lookup, validation, memory
// admission, the batcher, metrics and logs. Front ends only convert their
// wire format to an InferenceRequest and the outputs back.
#ifndef MICROBATCH_SERVER_SERVICE_INFERENCE_H_
#define MICROBATCH_SERVER_SERVICE_INFERENCE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/core/batcher.h"
#include "server/core/memory_budget.h"
#include "server/core/signature.h"
#include "server/service/model_manager.h"
#include "server/service/server_metrics.h"

namespace microbatch {

// Which served version a request asks for.
struct ModelSpec {
  std::string name;
  // 0: the model's default version (the highest served).
  int64_t version = 0;
  // Non-empty: a version label ("stable"); `version` must then be 0.
  std::string label;
};

// Parses a version as the Open Inference Protocol sends it: "" is the
// default version, a decimal number a version, anything else a label.
// INVALID_ARGUMENT for "0", negative numbers and numbers beyond int64.
absl::StatusOr<ModelSpec> ParseModelSpec(absl::string_view name, absl::string_view version);

struct InferenceRequest;

// The deadline `request` runs under: the earlier of its transport deadline
// and its timeout, counted from its arrival, where the timeout is the
// request's own or the model's default as `policy` says.
absl::Time RequestDeadline(const InferenceRequest& request, const v1::RequestTimeoutConfig& policy);

// One inference as a front end hands it over.
struct InferenceRequest {
  RpcMethod method = RpcMethod::kPredict;
  ModelSpec model;
  // Views into memory the front end keeps until `on_done` (below) is called.
  std::vector<RequestTensor> inputs;
  // Non-OK when the front end could not decode the inputs: the request is
  // looked up and counted against its model, then answered with this.
  absl::Status input_error;
  // Output names to return, in this order; empty returns every output.
  std::vector<std::string> outputs;
  // The transport's deadline (gRPC); none on REST.
  absl::Time deadline = absl::InfiniteFuture();
  // The request's own timeout (the `timeout` request parameter), counted
  // from `received`; zero: none. The model's request_timeout policy decides
  // whether it applies (RequestDeadline).
  absl::Duration timeout = absl::ZeroDuration();
  // Optional; true once the caller has gone. Called from batcher threads.
  std::function<bool()> is_cancelled;
  Priority priority = Priority::kInteractive;
  // The front end accepts `on_outputs` and `on_done` being called before
  // Infer returns, on its own thread (BatchTask::may_run_inline). Default false.
  bool may_run_inline = false;
  // The caller's request id, for logs (bounded there).
  std::string id;
  // Sticky routing (canary split, shadow sampling): requests with equal keys
  // go to the same version while the routing holds. Front ends pass the
  // routing-key header when set, else the request id; empty spreads requests
  // by weight.
  std::string routing_key;
  // Bytes of the request as received; admission reserves twice this (the
  // wire bytes and their decoded copy) plus the estimated outputs.
  int64_t wire_bytes = 0;
  // When the front end received the request (the duration metric's start).
  absl::Time received = absl::Now();
};

// What a successful request produced; valid only during the callback.
struct InferenceResult {
  const ServedModel& model;
  // Indices into model.signature.outputs, in the order the request asked.
  absl::Span<const int> selected;
  // This request's rows of every output of the model (signature order).
  const TaskOutputs& outputs;
};

struct InferenceCallbacks {
  // Called at most once, on success only, from a batcher thread (or the
  // calling thread): encodes the answer. Its status becomes the request's
  // final status (an encoding failure is counted like any other).
  std::function<absl::Status(const InferenceResult& result)> on_outputs;
  // Called exactly once, last, with the final status, after the metrics are
  // recorded: the front end answers its caller and frees its memory.
  std::function<void(const absl::Status& status)> on_done;
};

struct InferenceEngineOptions {
  // Shadow runs (mirrored requests) in flight beyond which further requests
  // are not mirrored (counted as dropped): shadows never queue up behind
  // live traffic. Default 64.
  int max_shadow_in_flight = 64;
};

// Thread-safe. Until SetModels() is called every request fails with
// UNAVAILABLE.
//
// Response cache: a version whose config enables it answers a request whose
// inputs (names, dtypes, shapes, bytes) equal an earlier request's from the
// cache, without queueing; a request whose twin is running waits for that
// run (single flight) and runs itself only if that run fails.
//
// Shadows: a request routed with a shadow version (ModelManager::Route) is
// also run there, at bulk priority, on its own copy of the inputs, after
// the caller's answer is unaffected; when both have answered, their outputs
// are compared into the shadow version's metrics.
class InferenceEngine {
 public:
  // Neither is owned; both must outlive the engine.
  InferenceEngine(ServerMetrics* metrics, MemoryBudget* budget, InferenceEngineOptions options = {})
      : metrics_(metrics), budget_(budget), options_(options) {}

  // `models` is not owned and must outlive every request.
  void SetModels(ModelManager* models) { models_.store(models); }
  // UNAVAILABLE before SetModels.
  absl::StatusOr<ModelManager*> Models() const;

  // The served version `spec` names (the default version for version 0 and
  // no label). NOT_FOUND names what exists.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(const ModelSpec& spec) const;
  // The same for a model name and version string as clients send them (a
  // number, a label or empty): ParseModelSpec's errors, then Find's.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(absl::string_view name, absl::string_view version) const;

  // Runs `request`. `callbacks.on_done` is called exactly once, possibly
  // before Infer returns (for requests refused at once).
  void Infer(InferenceRequest request, InferenceCallbacks callbacks);

  // Records a request that a front end refused before it could build an
  // InferenceRequest (undecodable body, server shutting down), as Infer
  // would have.
  void RecordRefused(RpcMethod method, const absl::Status& status, absl::Time received);

 private:
  struct Call;
  struct Shadow;
  // Records `status`, frees the call and calls on_done.
  void Finish(Call* call, absl::Status status);
  // Answers `call` from a cached answer.
  void AnswerFromCache(Call* call, const CachedResponse& answer);
  // Mirrors the validated request to `shadow`; null when not mirrored.
  std::shared_ptr<Shadow> StartShadow(std::shared_ptr<ServedModel> shadow,
                                      absl::Span<const RequestTensor> inputs);

  ServerMetrics* const metrics_;
  MemoryBudget* const budget_;
  const InferenceEngineOptions options_;
  std::atomic<ModelManager*> models_{nullptr};
  std::atomic<int> shadows_in_flight_{0};
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_INFERENCE_H_
