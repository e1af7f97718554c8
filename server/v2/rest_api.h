// The Open Inference Protocol (KServe v2) over HTTP/JSON, on the server's
// HTTP port, through the same request path (and batches) as gRPC:
//
//   GET  /v2                                          server metadata
//   GET  /v2/health/live, /v2/health/ready            {"live"|"ready": bool}; 400 when not ready
//   GET  /v2/models/{name}[/versions/{v}]             model metadata
//   GET  /v2/models/{name}[/versions/{v}]/ready       {"name", "ready"}: 200, 400 not ready, 404 unknown
//   POST /v2/models/{name}[/versions/{v}]/infer       inference
//   GET  /v2/models/{name}[/versions/{v}]/config      Triton's model configuration (JSON)
//   GET  /v2/models[/{name}[/versions/{v}]]/stats     Triton's statistics extension
//   POST /v2/repository/index                          every model version and its state
//   POST /v2/repository/models/{name}/load | /unload   explicit mode: (un)load, wait
//
// Infer bodies are JSON ({"id", "parameters", "inputs": [{"name", "shape",
// "datatype", "data"}], "outputs": [{"name", "parameters"}]}, data flat or
// nested, row-major), or JSON followed by binary tensor data as Triton's
// binary tensor data extension has it (header Inference-Header-Content-Length,
// input parameter binary_data_size; output parameter binary_data or request
// parameter binary_data_output asks for binary outputs). Compressed bodies
// and answers are the HTTP server's (server/http/content_coding.h). Errors are
// {"error": "message"} with 400 (bad request), 404 (unknown model, version
// or path), 405 (wrong method), 413 (body over the limit), 429 (overloaded),
// 503 (not ready, shutting down), 504 (deadline) or 500.
#ifndef MICROBATCH_SERVER_V2_REST_API_H_
#define MICROBATCH_SERVER_V2_REST_API_H_

#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "server/core/lifecycle/thread_pool.h"
#include "server/http/http_server.h"
#include "server/service/drain_gate.h"
#include "server/service/inference.h"

namespace microbatch::v2 {

// The HTTP status that stands for `code` in a REST answer.
int HttpStatusFor(absl::StatusCode code);

// Thread-safe. Every request is answered exactly once.
class RestApi {
 public:
  // `engine` is not owned and must outlive the API's requests. `ready` says
  // whether the server is ready (models loaded, not draining).
  // `admin_pool` (not owned) runs the repository calls, which wait.
  RestApi(InferenceEngine* engine, std::function<bool()> ready, lifecycle::ThreadPool* admin_pool)
      : engine_(engine), ready_(std::move(ready)), admin_pool_(admin_pool) {}

  // Serves the paths under /v2 on `http` (before http->Start()).
  absl::Status Register(HttpServer* http);
  // From now on infer requests are answered 503 at once; accepted ones
  // still finish.
  void StopAccepting() { gate_.Close(); }
  // Infer requests accepted and not yet answered.
  int64_t in_flight() const { return gate_.in_flight(); }

  // Answers one request under /v2 (what Register installs).
  void Handle(HttpRequest request, HttpResponder respond);

 private:
  void Infer(HttpRequest request, ModelSpec spec, HttpResponder respond);
  void Repository(HttpRequest request, HttpResponder respond);
  // {"model_stats": [...]} for CollectStatistics(model, version), every
  // field written (zeros too), or the error.
  HttpResponse Statistics(const std::string& model, const std::string& version) const;

  InferenceEngine* const engine_;
  const std::function<bool()> ready_;
  lifecycle::ThreadPool* const admin_pool_;
  DrainGate gate_;  // infer requests
};

}  // namespace microbatch::v2

#endif  // MICROBATCH_SERVER_V2_REST_API_H_
