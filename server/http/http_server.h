// A small HTTP server (libmicrohttpd) for /metrics, /healthz and /readyz,
// and asynchronous handlers under a path prefix (the KServe v2 REST API).
//
//   HttpServer http;
//   http.AddMetricsHandler([&registry] { return registry.Expose(); });
//   http.AddHealthHandlers([&] { return std::make_pair(ready, reason); });
//   HttpServerOptions options;
//   options.port = 0;  // any free port
//   absl::Status status = http.Start(options);
//   int port = http.port();
#ifndef MICROBATCH_SERVER_HTTP_HTTP_SERVER_H_
#define MICROBATCH_SERVER_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

struct MHD_Daemon;

namespace microbatch {

struct HttpRequest {
  std::string method;  // "GET", "HEAD", ...
  std::string path;    // decoded, without the query string
  std::string query;   // after '?', empty if none
  // The body (prefix handlers only; at most max_body_bytes).
  std::string body;
  // Request headers, names in lower case.
  std::map<std::string, std::string> headers;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;  // not sent for HEAD requests
  // Extra response headers.
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Answers one asynchronous request: call exactly once, from any thread.
using HttpResponder = std::function<void(HttpResponse response)>;
// Takes a whole request and answers it through `respond`, now or later
// (holding no server thread meanwhile).
using AsyncHttpHandler = std::function<void(HttpRequest request, HttpResponder respond)>;

// Readiness: {true, ""} when ready, else {false, reason}.
using ReadinessFn = std::function<std::pair<bool, std::string>()>;

struct HttpServerOptions {
  // Address to listen on: IPv4 ("0.0.0.0", empty: all interfaces) or IPv6
  // ("::": all interfaces, IPv4 too; "::1").
  std::string host = "0.0.0.0";
  // 0 picks a free port; port() then returns it.
  int port = 0;
  // Worker threads. Each watches many connections with epoll, so idle or
  // slow (slowloris) connections hold no thread: a probe is answered as soon
  // as a thread is free of handlers. Default 4.
  int num_threads = 4;
  // Connections open at once beyond which new ones are closed at accept, in
  // all and from one IP address, so that one client cannot use up the
  // connections the probes need. Defaults 1024 and 128.
  int max_connections = 1024;
  int max_connections_per_ip = 128;
  // A connection idle (or sending nothing) for this long is closed. Rounded
  // up to whole seconds. Default 10 s.
  int request_timeout_ms = 10000;
  // Serve HTTPS instead of HTTP when both are set: PEM text (not file names)
  // of the private key and the certificate chain (SetTlsCertificate replaces
  // them later). Client certificates are not requested (Kubernetes probes
  // send none).
  std::string tls_key_pem;
  std::string tls_cert_pem;
  // Largest request body a prefix handler accepts; a larger one is answered
  // 413 without reading it to the end. Default 64 MiB.
  int64_t max_body_bytes = int64_t{64} << 20;
  // Asynchronous requests (prefix handlers) accepted and not yet answered
  // beyond which new ones are answered 503 at once. Default 256.
  int max_async_in_flight = 256;
};

// Serves registered handlers for exact paths, then asynchronous handlers for
// path prefixes (the longest matching prefix wins); anything else is 404.
//
// Thread-safety: AddHandler, AddPrefixHandler, Start, Stop and the destructor
// must not run concurrently with each other (call them from one owner
// thread); port() and async_in_flight() may be called from any thread after
// Start returned. Handlers run concurrently on up to num_threads server
// threads and must be thread-safe; a handler blocks the other connections of
// its thread while it runs, so handlers are quick. An asynchronous request
// holds no thread between its handler's return and its answer, so slow
// answers (model runs) never delay /healthz, /readyz or /metrics.
class HttpServer {
 public:
  HttpServer();
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves `path` (exactly, e.g. "/metrics") with `handler`. Must be called
  // before Start. InvalidArgument for a path that does not start with '/' or
  // holds characters other than [A-Za-z0-9/_.-]; AlreadyExists for a
  // duplicate; FailedPrecondition after Start.
  absl::Status AddHandler(const std::string& path, HttpHandler handler);
  // Serves every path that starts with `prefix` (e.g. "/v2") and has no
  // exact handler, with any method, bodies included. Same errors as
  // AddHandler.
  absl::Status AddPrefixHandler(const std::string& prefix, AsyncHttpHandler handler);
  // GET /metrics: the body from `expose`, with content type
  // "text/plain; version=0.0.4; charset=utf-8".
  absl::Status AddMetricsHandler(std::function<std::string()> expose);
  // GET /healthz: 200 "ok" while the server runs. GET /readyz: 200 "ready"
  // or 503 with the reason from `readiness` ("not ready" if empty).
  absl::Status AddHealthHandlers(ReadinessFn readiness);

  // Binds and starts serving. May be called once. InvalidArgument for a
  // port outside [0, 65535] or num_threads < 1; Unavailable if the address
  // cannot be bound; FailedPrecondition if already started.
  absl::Status Start(const HttpServerOptions& options);
  // Stops serving and waits for running handlers to return, and (up to
  // 10 s) for asynchronous requests to be answered. Idempotent.
  void Stop();
  // The bound port; 0 before Start.
  int port() const { return port_; }
  // Asynchronous requests accepted and not yet answered.
  int64_t async_in_flight() const;
  // Serves `cert_pem` (chain, leaf first) with `key_pem` to the TLS
  // handshakes that start from now on; connections already open keep
  // theirs. FailedPrecondition unless Start served HTTPS; InvalidArgument
  // when the PEM text cannot be read or the key is not the certificate's
  // (the current pair stays). May be called from any thread after Start.
  absl::Status SetTlsCertificate(const std::string& key_pem, const std::string& cert_pem);

  // Shared with the request callbacks; defined in the .cc file.
  struct State;

 private:
  std::unique_ptr<State> state_;
  bool started_ = false;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
  // Serving HTTPS (set by Start, before SetTlsCertificate may be called).
  std::atomic<bool> tls_{false};
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_HTTP_HTTP_SERVER_H_
