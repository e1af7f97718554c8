#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"

#include <dlfcn.h>
#include <pthread.h>

// Debian's civetweb 1.15 is compiled with USE_STACK_SIZE=102400 and asks for
// 100 KiB thread stacks. glibc carves the static TLS of every loaded library
// out of each new thread's stack, and LibTorch's dependencies (OpenBLAS ~60
// KiB, glog ~30 KiB, ...) need about that much, so civetweb's pthread_create
// fails with EINVAL ("Cannot create first worker thread") in any process that
// links LibTorch. This definition interposes the libc function for the whole
// process (the executable's symbols come first in lookup) and only raises
// requests below 1 MiB to 1 MiB; it never lowers a request.
extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t stack_size) {
  using Fn = int (*)(pthread_attr_t*, size_t);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  constexpr size_t kFloor = size_t{1} << 20;
  return real(attr, stack_size < kFloor ? kFloor : stack_size);
}

namespace microbatch {
namespace {

bool IsValidPath(const std::string& path) {
  return !path.empty() && path[0] == '/' &&
         std::all_of(path.begin(), path.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '/' || c == '_' || c == '.' || c == '-';
         });
}

// civetweb request handler; `handler` is the HttpHandler registered for the
// path. Returns the status code (civetweb logs it).
int Dispatch(mg_connection* conn, void* handler) {
  const mg_request_info* info = mg_get_request_info(conn);
  HttpRequest request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  request.path = info->local_uri != nullptr ? info->local_uri : "";
  request.query = info->query_string != nullptr ? info->query_string : "";
  const HttpResponse response = (*static_cast<const HttpHandler*>(handler))(request);

  const std::string length = std::to_string(response.body.size());
  mg_response_header_start(conn, response.status);
  mg_response_header_add(conn, "Content-Type", response.content_type.c_str(), -1);
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  mg_response_header_send(conn);
  if (request.method != "HEAD") mg_write(conn, response.body.data(), response.body.size());
  return response.status;
}

// Opens and closes a TCP connection to `address:port`, ignoring failures.
void Poke(const std::string& address, int port) {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) return;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  close(fd);
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
  if (options.port < 0 || options.port > 65535 || options.num_threads < 1) {
    return absl::InvalidArgumentError("HttpServer: invalid port or num_threads");
  }
  static const unsigned kInitialized = mg_init_library(0);
  (void)kInitialized;

  const std::string ports = options.host.empty()
                                ? std::to_string(options.port)
                                : absl::StrCat(options.host, ":", options.port);
  const std::string threads = std::to_string(options.num_threads);
  const std::string timeout = std::to_string(options.request_timeout_ms);
  const char* config[] = {"listening_ports",    ports.c_str(),   "num_threads", threads.c_str(),
                          "request_timeout_ms", timeout.c_str(), nullptr};
  mg_callbacks callbacks = {};
  mg_init_data init = {&callbacks, nullptr, config};
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error = {&error_code, error_text, sizeof(error_text)};
  context_ = mg_start2(&init, &error);
  if (context_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("HttpServer: cannot listen on ", ports, ": ", error_text));
  }
  started_ = true;
  mg_server_port bound[1] = {};
  if (mg_get_server_ports(context_, 1, bound) != 1) {
    Stop();
    return absl::InternalError("HttpServer: cannot read the bound port");
  }
  port_ = bound[0].port;
  wake_address_ = options.host.empty() || options.host == "0.0.0.0" ? "127.0.0.1" : options.host;
  for (const auto& [path, handler] : handlers_) {
    mg_set_request_handler(context_, (path + "$").c_str(), Dispatch, handler.get());
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (context_ == nullptr) return;
  // civetweb's listener thread checks for stop only between 2 s polls of the
  // listening socket; connecting to it ends the poll, so Stop returns
  // promptly instead of after up to 2 s.
  std::atomic<bool> stopped{false};
  std::thread stopper([this, &stopped] {
    mg_stop(context_);
    stopped = true;
  });
  while (!stopped) {
    Poke(wake_address_, port_);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stopper.join();
  context_ = nullptr;
}

}  // namespace microbatch
