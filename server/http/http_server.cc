#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/core/log.h"

namespace microbatch {
namespace {

using Handlers = std::map<std::string, std::unique_ptr<HttpHandler>>;

bool IsValidPath(const std::string& path) {
  return !path.empty() && path[0] == '/' &&
         std::all_of(path.begin(), path.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '/' || c == '_' || c == '.' || c == '-';
         });
}

// What libmicrohttpd keeps per request between calls of the access handler:
// the request line's target as the client sent it (with the query string).
struct RequestState {
  std::string target;
};

// MHD_OPTION_URI_LOG_CALLBACK: called first for every request; its result
// becomes the request's state.
void* RememberTarget(void*, const char* uri, MHD_Connection*) {
  auto* state = new RequestState;
  state->target = uri != nullptr ? uri : "";
  return state;
}

// MHD_OPTION_NOTIFY_COMPLETED: frees the request's state.
void ForgetRequest(void*, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
  delete static_cast<RequestState*>(*state);
  *state = nullptr;
}

MHD_Result Respond(MHD_Connection* connection, const HttpResponse& response) {
  MHD_Response* reply = MHD_create_response_from_buffer(
      response.body.size(), const_cast<char*>(response.body.data()), MHD_RESPMEM_MUST_COPY);
  if (reply == nullptr) return MHD_NO;
  MHD_add_response_header(reply, MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str());
  const MHD_Result queued =
      MHD_queue_response(connection, static_cast<unsigned>(response.status), reply);
  MHD_destroy_response(reply);
  return queued;
}

// The access handler: runs the handler registered for the exact path.
MHD_Result Dispatch(void* handlers, MHD_Connection* connection, const char* url,
                    const char* method, const char*, const char*, size_t* upload_data_size,
                    void** state) {
  if (*upload_data_size != 0) {
    *upload_data_size = 0;  // bodies are not used: discard them
    return MHD_YES;
  }
  const std::string target = *state != nullptr ? static_cast<RequestState*>(*state)->target : url;
  HttpRequest request;
  request.method = method != nullptr ? method : "";
  request.path = url != nullptr ? url : "";
  const size_t question = target.find('?');
  if (question != std::string::npos) request.query = target.substr(question + 1);
  const auto& registered = *static_cast<const Handlers*>(handlers);
  auto it = registered.find(request.path);
  if (it == registered.end()) {
    HttpResponse not_found;
    not_found.status = 404;
    not_found.body = "not found";
    return Respond(connection, not_found);
  }
  return Respond(connection, (*it->second)(request));
}

// libmicrohttpd's own errors (a connection it could not accept, ...); rare,
// and limited so that a flood of bad connections cannot flood the log.
void LogDaemonError(void*, const char* format, va_list args) {
  static RateLimitedLog* log = new RateLimitedLog(5);
  char text[512];
  std::vsnprintf(text, sizeof(text), format, args);
  std::string message(text);
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) message.pop_back();
  log->Log(LogLevel::kWarning, "http_error", {{"message", message}});
}

}  // namespace

HttpServer::HttpServer() = default;

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::AddHandler(const std::string& path, HttpHandler handler) {
  if (started_) return absl::FailedPreconditionError("HttpServer already started");
  if (!IsValidPath(path)) return absl::InvalidArgumentError(absl::StrCat("invalid path ", path));
  if (!handlers_.emplace(path, std::make_unique<HttpHandler>(std::move(handler))).second) {
    return absl::AlreadyExistsError(absl::StrCat("a handler for ", path, " exists"));
  }
  return absl::OkStatus();
}

absl::Status HttpServer::AddMetricsHandler(std::function<std::string()> expose) {
  return AddHandler("/metrics", [expose = std::move(expose)](const HttpRequest&) {
    HttpResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = expose();
    return response;
  });
}

absl::Status HttpServer::AddHealthHandlers(ReadinessFn readiness) {
  absl::Status status = AddHandler("/healthz", [](const HttpRequest&) {
    HttpResponse response;
    response.body = "ok";
    return response;
  });
  if (!status.ok()) return status;
  return AddHandler("/readyz", [readiness = std::move(readiness)](const HttpRequest&) {
    auto [ready, reason] = readiness();
    HttpResponse response;
    response.status = ready ? 200 : 503;
    response.body = ready ? "ready" : reason.empty() ? "not ready" : reason;
    return response;
  });
}

absl::Status HttpServer::Start(const HttpServerOptions& options) {
  if (started_) return absl::FailedPreconditionError("HttpServer already started");
  if (options.port < 0 || options.port > 65535 || options.num_threads < 1 ||
      options.max_connections < 1 || options.max_connections_per_ip < 1) {
    return absl::InvalidArgumentError("HttpServer: invalid port, num_threads or max_connections");
  }
  const bool tls = !options.tls_key_pem.empty() && !options.tls_cert_pem.empty();
  if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    return absl::UnavailableError("HttpServer: this libmicrohttpd has no TLS support");
  }
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(options.port));
  const std::string host = options.host.empty() ? "0.0.0.0" : options.host;
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("HttpServer: not an IPv4 address: ", host));
  }
  tls_key_pem_ = options.tls_key_pem;
  tls_cert_pem_ = options.tls_cert_pem;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  if (tls) flags |= MHD_USE_TLS;
  const unsigned timeout_s = static_cast<unsigned>((std::max(options.request_timeout_ms, 1) + 999) / 1000);
  MHD_OptionItem tls_options[] = {
      {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, const_cast<char*>(tls_key_pem_.c_str())},
      {MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(tls_cert_pem_.c_str())},
      {MHD_OPTION_END, 0, nullptr},
  };
  daemon_ = MHD_start_daemon(
      flags, static_cast<uint16_t>(options.port), nullptr, nullptr, &Dispatch, &handlers_,
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&address),
      MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(options.num_threads),
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(options.max_connections),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<unsigned>(options.max_connections_per_ip),
      MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
      MHD_OPTION_URI_LOG_CALLBACK, &RememberTarget, nullptr,
      MHD_OPTION_NOTIFY_COMPLETED, &ForgetRequest, nullptr,
      MHD_OPTION_EXTERNAL_LOGGER, &LogDaemonError, nullptr,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 0u,  // a busy port fails, as it should
      MHD_OPTION_ARRAY, tls_options,
      MHD_OPTION_END);
  if (daemon_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("HttpServer: cannot listen on ", host, ":", options.port,
                     tls ? " with TLS (check the key and certificate)" : ""));
  }
  started_ = true;
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
  if (info == nullptr || info->port == 0) {
    Stop();
    return absl::InternalError("HttpServer: cannot read the bound port");
  }
  port_ = info->port;
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (daemon_ == nullptr) return;
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
}

}  // namespace microbatch
