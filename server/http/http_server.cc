#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/core/log.h"
#include "server/http/content_coding.h"
#include "server/http/tls_identity.h"

namespace microbatch {

struct HttpServer::State {
  std::map<std::string, std::unique_ptr<HttpHandler>> exact;
  std::map<std::string, std::unique_ptr<AsyncHttpHandler>> prefixes;
  int64_t max_body_bytes = 0;
  int max_async_in_flight = 0;
  std::atomic<int64_t> async_in_flight{0};

  // HTTPS: the identity new handshakes get, and those replaced, kept a while
  // since a handshake under way may still use them (GnuTLS copies nothing).
  std::shared_ptr<const TlsIdentity> CurrentIdentity() {
    std::lock_guard<std::mutex> lock(tls_mu);
    return tls_identity;
  }
  void SetIdentity(std::shared_ptr<const TlsIdentity> identity) {
    std::lock_guard<std::mutex> lock(tls_mu);
    const absl::Time now = absl::Now();
    retired.erase(std::remove_if(retired.begin(), retired.end(),
                                 [&](const auto& old) { return now - old.first > absl::Minutes(10); }),
                  retired.end());
    if (tls_identity != nullptr) retired.emplace_back(now, std::move(tls_identity));
    tls_identity = std::move(identity);
  }
  std::mutex tls_mu;
  std::shared_ptr<const TlsIdentity> tls_identity;  // guarded by tls_mu
  std::vector<std::pair<absl::Time, std::shared_ptr<const TlsIdentity>>> retired;  // guarded by tls_mu
};

namespace {

bool IsValidPath(const std::string& path) {
  return !path.empty() && path[0] == '/' &&
         std::all_of(path.begin(), path.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '/' || c == '_' || c == '.' || c == '-';
         });
}

// Where an asynchronous request's answer waits for its connection: shared by
// the request's state and its responder.
struct AsyncSlot {
  std::mutex mu;
  bool suspended = false;  // guarded by mu
  bool answered = false;   // guarded by mu
  HttpResponse response;   // guarded by mu; set when answered
  MHD_Connection* connection = nullptr;
};

// What libmicrohttpd keeps per request between calls of the access handler.
struct RequestState {
  std::string target;  // the request line's target, with the query string
  bool started = false;
  const AsyncHttpHandler* async = nullptr;
  // A bodiless request to an exact path (or to no path: null), answered in
  // the access handler's final call.
  const HttpHandler* exact = nullptr;
  bool answer_when_read = false;
  HttpRequest request;  // of an asynchronous request, until it is handed over
  // The coding its answer gets (from Accept-Encoding).
  ContentCoding answer_coding = ContentCoding::kIdentity;
  bool too_large = false;
  std::string too_large_message;  // of the 413, when the declared length was too large
  std::shared_ptr<AsyncSlot> slot;  // once handed over
};

// MHD_OPTION_URI_LOG_CALLBACK: called first for every request; its result
// becomes the request's state.
void* RememberTarget(void*, const char* uri, MHD_Connection*) {
  auto* state = new RequestState;
  state->target = uri != nullptr ? uri : "";
  return state;
}

// MHD_OPTION_NOTIFY_COMPLETED: frees the request's state. An asynchronous
// request counts as in flight until here, when its answer has been sent (or
// the connection closed), so Stop() never cuts an answer off.
void ForgetRequest(void* server, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
  auto* request = static_cast<RequestState*>(*state);
  if (request != nullptr && request->slot != nullptr) {
    static_cast<HttpServer::State*>(server)->async_in_flight.fetch_sub(1);
  }
  delete request;
  *state = nullptr;
}

MHD_Result Respond(MHD_Connection* connection, const HttpResponse& response) {
  MHD_Response* reply = MHD_create_response_from_buffer(
      response.body.size(), const_cast<char*>(response.body.data()), MHD_RESPMEM_MUST_COPY);
  if (reply == nullptr) return MHD_NO;
  MHD_add_response_header(reply, MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str());
  bool retry_after = false;
  for (const auto& [name, value] : response.headers) {
    MHD_add_response_header(reply, name.c_str(), value.c_str());
    retry_after = retry_after || absl::EqualsIgnoreCase(name, MHD_HTTP_HEADER_RETRY_AFTER);
  }
  // Overloaded (429) and not now (503) are worth a retry: say when, as HTTP
  // clients and proxies expect, unless the handler did.
  if ((response.status == 429 || response.status == 503) && !retry_after) {
    MHD_add_response_header(reply, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  }
  const MHD_Result queued =
      MHD_queue_response(connection, static_cast<unsigned>(response.status), reply);
  MHD_destroy_response(reply);
  return queued;
}

// Answers of at least this many bytes are compressed for clients that
// accept it; smaller ones gain less than the compression costs.
constexpr size_t kCompressFromBytes = 1024;

// `response` compressed in `coding` when worth it and not encoded already.
void EncodeForClient(ContentCoding coding, HttpResponse* response) {
  response->headers.emplace_back("Vary", "Accept-Encoding");
  if (coding == ContentCoding::kIdentity || response->body.size() < kCompressFromBytes) return;
  for (const auto& [name, value] : response->headers) {
    if (absl::EqualsIgnoreCase(name, "Content-Encoding")) return;
  }
  if (std::optional<std::string> encoded = EncodeBody(coding, response->body)) {
    response->body = *std::move(encoded);
    response->headers.emplace_back("Content-Encoding", ContentCodingName(coding));
  }
}

HttpResponse NotFound() {
  HttpResponse not_found;
  not_found.status = 404;
  not_found.body = "not found";
  return not_found;
}

HttpResponse JsonError(int status, const std::string& message) {
  HttpResponse response;
  response.status = status;
  response.content_type = "application/json";
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) escaped += c;
  }
  response.body = "{\"error\":\"" + escaped + "\"}";
  return response;
}

MHD_Result CollectHeader(void* headers, MHD_ValueKind, const char* key, const char* value) {
  std::string name = key != nullptr ? key : "";
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  (*static_cast<std::map<std::string, std::string>*>(headers))[name] = value != nullptr ? value : "";
  return MHD_YES;
}

// The asynchronous handler whose prefix is the longest one matching `path`
// at a '/' boundary; null if none.
const AsyncHttpHandler* FindPrefix(const HttpServer::State& server, const std::string& path) {
  const AsyncHttpHandler* best = nullptr;
  size_t best_length = 0;
  for (const auto& [prefix, handler] : server.prefixes) {
    if (path.compare(0, prefix.size(), prefix) == 0 &&
        (path.size() == prefix.size() || path[prefix.size()] == '/') && prefix.size() >= best_length) {
      best = handler.get();
      best_length = prefix.size();
    }
  }
  return best;
}

// The first call for a request: its headers are in.
MHD_Result Start(HttpServer::State& server, MHD_Connection* connection, RequestState& state,
                 const char* url, const char* method, size_t* upload_data_size) {
  state.started = true;
  HttpRequest request;
  request.method = method != nullptr ? method : "";
  request.path = url != nullptr ? url : "";
  const size_t question = state.target.find('?');
  if (question != std::string::npos) request.query = state.target.substr(question + 1);
  MHD_get_connection_values(connection, MHD_HEADER_KIND, &CollectHeader, &request.headers);
  auto exact = server.exact.find(request.path);
  const HttpHandler* handler = exact != server.exact.end() ? exact->second.get() : nullptr;
  state.async = handler != nullptr ? nullptr : FindPrefix(server, request.path);
  if (state.async == nullptr) {
    // An answer queued before libmicrohttpd has read the whole request makes
    // it close the connection after the answer. A request without a body is
    // read once its headers are: it is answered in the final call, and the
    // connection stays open for the next scrape or probe. One with a body
    // (not used on these paths) is answered at once and the connection
    // closed, so that its body is never read.
    auto length = request.headers.find("content-length");
    const bool bodiless = request.headers.count("transfer-encoding") == 0 &&
                          (length == request.headers.end() || length->second == "0");
    if (bodiless) {
      state.exact = handler;
      state.answer_when_read = true;
      state.request = std::move(request);
      return MHD_YES;
    }
    *upload_data_size = 0;
    return Respond(connection, handler != nullptr ? (*handler)(request) : NotFound());
  }
  auto length = request.headers.find("content-length");
  if (length != request.headers.end()) {
    char* end = nullptr;
    const unsigned long long bytes = std::strtoull(length->second.c_str(), &end, 10);
    if (bytes > static_cast<unsigned long long>(server.max_body_bytes)) {
      std::string message = absl::StrCat("request body of ", bytes, " bytes exceeds the server's limit of ",
                                         server.max_body_bytes, " bytes");
      // A body up to kDrainedBodyFactor times the limit is read (and
      // discarded) before the 413: answering while the client still sends
      // closes the connection with unread bytes, and TCP then resets it,
      // often before the client has read the answer. Larger ones are
      // answered at once.
      constexpr unsigned long long kDrainedBodyFactor = 4;
      if (bytes / kDrainedBodyFactor > static_cast<unsigned long long>(server.max_body_bytes)) {
        return Respond(connection, JsonError(413, message));
      }
      state.too_large = true;
      state.too_large_message = std::move(message);
    } else {
      request.body.reserve(static_cast<size_t>(bytes));
    }
  }
  state.request = std::move(request);
  return MHD_YES;
}

// Hands a complete asynchronous request to its handler; answers at once when
// the handler did, else suspends the connection until the responder runs.
MHD_Result HandOver(HttpServer::State& server, MHD_Connection* connection, RequestState& state) {
  if (state.too_large) {
    return Respond(connection,
                   JsonError(413, !state.too_large_message.empty()
                                      ? state.too_large_message
                                      : absl::StrCat("request body exceeds the server's limit of ",
                                                     server.max_body_bytes, " bytes")));
  }
  // A compressed body is decoded here, within the same byte limit; the
  // handler sees the decoded body and no Content-Encoding.
  auto encoding = state.request.headers.find("content-encoding");
  if (encoding != state.request.headers.end()) {
    absl::StatusOr<ContentCoding> coding = ParseContentEncoding(encoding->second);
    if (!coding.ok()) return Respond(connection, JsonError(415, std::string(coding.status().message())));
    if (*coding != ContentCoding::kIdentity) {
      absl::StatusOr<std::string> decoded = DecodeBody(*coding, state.request.body, server.max_body_bytes);
      if (!decoded.ok()) {
        const int status = decoded.status().code() == absl::StatusCode::kResourceExhausted ? 413 : 400;
        return Respond(connection, JsonError(status, std::string(decoded.status().message())));
      }
      state.request.body = *std::move(decoded);
    }
    state.request.headers.erase(encoding);
  }
  auto accept = state.request.headers.find("accept-encoding");
  if (accept != state.request.headers.end()) state.answer_coding = ChooseResponseCoding(accept->second);
  if (server.async_in_flight.fetch_add(1) >= server.max_async_in_flight) {
    server.async_in_flight.fetch_sub(1);
    return Respond(connection,
                   JsonError(503, absl::StrCat("the server is answering ", server.max_async_in_flight,
                                               " requests on this port already; retry shortly")));
  }
  auto slot = std::make_shared<AsyncSlot>();
  slot->connection = connection;
  state.slot = slot;
  HttpResponder respond = [slot](HttpResponse response) {
    std::lock_guard<std::mutex> lock(slot->mu);
    if (slot->answered) return;  // a second answer is ignored
    slot->answered = true;
    slot->response = std::move(response);
    if (slot->suspended) MHD_resume_connection(slot->connection);
  };
  (*state.async)(std::move(state.request), std::move(respond));
  std::unique_lock<std::mutex> lock(slot->mu);
  if (slot->answered) {
    HttpResponse response = std::move(slot->response);
    lock.unlock();
    EncodeForClient(state.answer_coding, &response);
    return Respond(connection, response);
  }
  slot->suspended = true;
  MHD_suspend_connection(connection);
  return MHD_YES;
}

// The access handler, called once with the headers, once per piece of body,
// once when the body is complete and, for an asynchronous request, once more
// after its answer resumed the connection.
MHD_Result Dispatch(void* server_state, MHD_Connection* connection, const char* url,
                    const char* method, const char*, const char* upload_data,
                    size_t* upload_data_size, void** request_state) {
  auto& server = *static_cast<HttpServer::State*>(server_state);
  auto* state = static_cast<RequestState*>(*request_state);
  if (state == nullptr) {  // no URI log callback ran: should not happen
    state = new RequestState;
    state->target = url != nullptr ? url : "";
    *request_state = state;
  }
  if (!state->started) return Start(server, connection, *state, url, method, upload_data_size);
  if (state->answer_when_read) {
    if (*upload_data_size != 0) {  // cannot happen: it was declared bodiless
      *upload_data_size = 0;
      return MHD_YES;
    }
    return Respond(connection, state->exact != nullptr ? (*state->exact)(state->request) : NotFound());
  }
  if (state->async == nullptr) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    if (!state->too_large) {
      if (static_cast<int64_t>(state->request.body.size() + *upload_data_size) > server.max_body_bytes) {
        state->too_large = true;
        std::string().swap(state->request.body);
      } else {
        state->request.body.append(upload_data, *upload_data_size);
      }
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (state->slot != nullptr) {  // resumed: the answer is in
    HttpResponse response;
    {
      std::lock_guard<std::mutex> lock(state->slot->mu);
      response = std::move(state->slot->response);
    }
    EncodeForClient(state->answer_coding, &response);
    return Respond(connection, response);
  }
  return HandOver(server, connection, *state);
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

HttpServer::HttpServer() : state_(std::make_unique<State>()) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::AddHandler(const std::string& path, HttpHandler handler) {
  if (started_) return absl::FailedPreconditionError("HttpServer already started");
  if (!IsValidPath(path)) return absl::InvalidArgumentError(absl::StrCat("invalid path ", path));
  if (!state_->exact.emplace(path, std::make_unique<HttpHandler>(std::move(handler))).second) {
    return absl::AlreadyExistsError(absl::StrCat("a handler for ", path, " exists"));
  }
  return absl::OkStatus();
}

absl::Status HttpServer::AddPrefixHandler(const std::string& prefix, AsyncHttpHandler handler) {
  if (started_) return absl::FailedPreconditionError("HttpServer already started");
  if (!IsValidPath(prefix)) return absl::InvalidArgumentError(absl::StrCat("invalid prefix ", prefix));
  if (!state_->prefixes.emplace(prefix, std::make_unique<AsyncHttpHandler>(std::move(handler))).second) {
    return absl::AlreadyExistsError(absl::StrCat("a handler for ", prefix, " exists"));
  }
  return absl::OkStatus();
}

int64_t HttpServer::async_in_flight() const { return state_->async_in_flight.load(); }

absl::Status HttpServer::AddMetricsHandler(std::function<std::string()> expose) {
  return AddHandler("/metrics", [expose = std::move(expose)](const HttpRequest& request) {
    HttpResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = expose();
    // Prometheus asks for gzip; the text shrinks about tenfold.
    auto accept = request.headers.find("accept-encoding");
    const bool gzip = accept != request.headers.end() && AcceptsCoding(accept->second, ContentCoding::kGzip);
    EncodeForClient(gzip ? ContentCoding::kGzip : ContentCoding::kIdentity, &response);
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

namespace {

// MHD_OPTION_NOTIFY_CONNECTION: a new connection's socket context is the
// server's state, so that its TLS handshake finds the current identity.
void RememberServer(void* cls, MHD_Connection* connection, void** socket_context,
                    enum MHD_ConnectionNotificationCode code) {
  if (code == MHD_CONNECTION_NOTIFY_STARTED) *socket_context = cls;
}

// MHD_OPTION_HTTPS_CERT_CALLBACK (GnuTLS's retrieve function): the identity
// current when the handshake starts. libmicrohttpd sets each session's
// pointer to its connection.
int ServeIdentity(gnutls_session_t session, const gnutls_datum_t*, int, const gnutls_pk_algorithm_t*, int,
                  gnutls_pcert_st** chain, unsigned int* chain_length, gnutls_privkey_t* key) {
  auto* connection = static_cast<MHD_Connection*>(gnutls_session_get_ptr(session));
  const MHD_ConnectionInfo* info =
      connection != nullptr ? MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : nullptr;
  auto* state = info != nullptr ? static_cast<HttpServer::State*>(info->socket_context) : nullptr;
  std::shared_ptr<const TlsIdentity> identity = state != nullptr ? state->CurrentIdentity() : nullptr;
  if (identity == nullptr) return -1;  // fails this handshake only
  *chain = identity->chain();
  *chain_length = identity->chain_length();
  *key = identity->key();
  return 0;
}

}  // namespace

absl::Status HttpServer::SetTlsCertificate(const std::string& key_pem, const std::string& cert_pem) {
  if (!tls_) return absl::FailedPreconditionError("HttpServer: not serving HTTPS");
  absl::StatusOr<std::shared_ptr<const TlsIdentity>> identity = TlsIdentity::FromPem(cert_pem, key_pem);
  if (!identity.ok()) return identity.status();
  state_->SetIdentity(*std::move(identity));
  return absl::OkStatus();
}

absl::Status HttpServer::Start(const HttpServerOptions& options) {
  if (started_) return absl::FailedPreconditionError("HttpServer already started");
  if (options.port < 0 || options.port > 65535 || options.num_threads < 1 ||
      options.max_connections < 1 || options.max_connections_per_ip < 1 ||
      options.max_body_bytes < 0 || options.max_async_in_flight < 1) {
    return absl::InvalidArgumentError(
        "HttpServer: invalid port, num_threads, max_connections, max_body_bytes or "
        "max_async_in_flight");
  }
  state_->max_body_bytes = options.max_body_bytes;
  state_->max_async_in_flight = options.max_async_in_flight;
  const bool tls = !options.tls_key_pem.empty() && !options.tls_cert_pem.empty();
  if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    return absl::UnavailableError("HttpServer: this libmicrohttpd has no TLS support");
  }
  const std::string host = options.host.empty() ? "0.0.0.0" : options.host;
  sockaddr_storage address = {};
  unsigned family_flags = 0;
  if (host.find(':') == std::string::npos) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(options.port));
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("HttpServer: not an IP address: ", host));
    }
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(options.port));
    if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("HttpServer: not an IP address: ", host));
    }
    // The IPv6 wildcard also takes IPv4 connections, as gRPC's does.
    family_flags = IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
  }
  if (tls) {
    absl::StatusOr<std::shared_ptr<const TlsIdentity>> identity =
        TlsIdentity::FromPem(options.tls_cert_pem, options.tls_key_pem);
    if (!identity.ok()) return absl::InvalidArgumentError(absl::StrCat("HttpServer: ", identity.status().message()));
    state_->SetIdentity(*std::move(identity));
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                   MHD_ALLOW_SUSPEND_RESUME | family_flags;
  if (tls) flags |= MHD_USE_TLS;
  const unsigned timeout_s = static_cast<unsigned>((std::max(options.request_timeout_ms, 1) + 999) / 1000);
  // One thread is the daemon's own: a pool of 0 or 1 draws a warning.
  MHD_OptionItem pool_options[] = {
      {options.num_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
       static_cast<intptr_t>(options.num_threads), nullptr},
      {MHD_OPTION_END, 0, nullptr},
  };
  // The certificate is chosen per handshake (SetTlsCertificate swaps it).
  MHD_OptionItem tls_options[] = {
      {tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, 0, reinterpret_cast<void*>(&ServeIdentity)},
      {MHD_OPTION_END, 0, nullptr},
  };
  // No MHD_OPTION_LISTENING_ADDRESS_REUSE: libmicrohttpd's default on Linux
  // is SO_REUSEADDR without SO_REUSEPORT, so a port another socket listens on
  // still fails, while one that only holds closed connections in TIME_WAIT
  // (a restart within a minute of the last scrape) binds. Setting it to 0
  // drops SO_REUSEADDR.
  daemon_ = MHD_start_daemon(
      flags, static_cast<uint16_t>(options.port), nullptr, nullptr, &Dispatch, state_.get(),
      MHD_OPTION_EXTERNAL_LOGGER, &LogDaemonError, nullptr,  // first, as libmicrohttpd asks
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&address),
      MHD_OPTION_ARRAY, pool_options,
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(options.max_connections),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<unsigned>(options.max_connections_per_ip),
      MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
      MHD_OPTION_URI_LOG_CALLBACK, &RememberTarget, nullptr,
      MHD_OPTION_NOTIFY_COMPLETED, &ForgetRequest, state_.get(),
      MHD_OPTION_NOTIFY_CONNECTION, &RememberServer, state_.get(),
      MHD_OPTION_ARRAY, tls_options,
      MHD_OPTION_END);
  if (daemon_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("HttpServer: cannot listen on ", host, ":", options.port,
                     tls ? " with TLS (check the key and certificate)" : ""));
  }
  started_ = true;
  tls_ = tls;
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
  // Suspended connections must be resumed (answered) before the daemon stops.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (state_->async_in_flight.load() > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
}

}  // namespace microbatch
