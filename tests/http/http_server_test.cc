#include "server/http/http_server.h"
#include "server/http/content_coding.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct Reply {
  int status = 0;     // 0: no connection or no parsable reply
  std::string head;   // status line and headers
  std::string body;
};

// A TCP connection to 127.0.0.1:port (or [::1]:port); -1 if none.
int ConnectLoopback(int port, bool ipv6 = false) {
  const int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_storage addr = {};
  socklen_t addr_len;
  if (ipv6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    v6->sin6_addr = in6addr_loopback;
    addr_len = sizeof(sockaddr_in6);
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr_len = sizeof(sockaddr_in);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `raw_request` (a whole HTTP/1.1 request) on a new connection and
// reads until the server closes.
Reply SendRaw(int port, const std::string& raw_request, bool ipv6 = false) {
  Reply reply;
  const int fd = ConnectLoopback(port, ipv6);
  if (fd < 0) return reply;
  size_t sent = 0;
  while (sent < raw_request.size()) {
    const ssize_t n = send(fd, raw_request.data() + sent, raw_request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (413) and close early
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) raw.append(buf, n);
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (raw.compare(0, 9, "HTTP/1.1 ") != 0 || end == std::string::npos) return reply;
  reply.status = std::stoi(raw.substr(9, 3));
  reply.head = raw.substr(0, end);
  reply.body = raw.substr(end + 4);
  return reply;
}

// One request per connection, with `extra_headers` (whole lines).
Reply Fetch(int port, const std::string& path, const std::string& method = "GET",
            bool ipv6 = false, const std::string& extra_headers = "") {
  return SendRaw(port,
                 method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                     extra_headers + "\r\n",
                 ipv6);
}

// Sends `requests` GETs of `path` one after another on one kept-alive
// connection; returns the status of each reply (0 where none came, e.g. the
// server closed the connection after the previous one).
std::vector<int> FetchKeptAlive(int port, const std::string& path, int requests) {
  std::vector<int> statuses;
  const int fd = ConnectLoopback(port);
  const bool connected = fd >= 0;
  std::string pending;
  for (int i = 0; i < requests; ++i) {
    int status = 0;
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (connected && send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size())) {
      // One reply: headers, then Content-Length bytes of body.
      char buf[4096];
      size_t end;
      ssize_t n = 1;
      while ((end = pending.find("\r\n\r\n")) == std::string::npos &&
             (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
        pending.append(buf, n);
      }
      if (end != std::string::npos && pending.compare(0, 9, "HTTP/1.1 ") == 0) {
        std::string head = pending.substr(0, end);
        std::transform(head.begin(), head.end(), head.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        const size_t length_at = head.find("content-length: ");
        const size_t length =
            length_at == std::string::npos ? 0 : std::stoul(head.substr(length_at + 16));
        while (pending.size() < end + 4 + length && (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
          pending.append(buf, n);
        }
        if (pending.size() >= end + 4 + length) {
          status = std::stoi(pending.substr(9, 3));
          pending.erase(0, end + 4 + length);
        }
      }
    }
    statuses.push_back(status);
  }
  if (connected) close(fd);
  return statuses;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.AddMetricsHandler([] { return std::string("up 1\n"); }).ok());
    ASSERT_TRUE(server_
                    .AddHealthHandlers([this] {
                      return ready_.load() ? std::make_pair(true, std::string())
                                           : std::make_pair(false, std::string("loading mlp"));
                    })
                    .ok());
    HttpServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    ASSERT_TRUE(server_.Start(options).ok());
    ASSERT_GT(server_.port(), 0);
  }

  std::atomic<bool> ready_{false};
  HttpServer server_;
};

TEST_F(HttpServerTest, Metrics) {
  Reply reply = Fetch(server_.port(), "/metrics");
  EXPECT_EQ(reply.status, 200);
  EXPECT_THAT(reply.head, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  EXPECT_THAT(reply.head, HasSubstr("Content-Length: 5"));
  EXPECT_EQ(reply.body, "up 1\n");
}

// A TCP connection to 127.0.0.1:port that has sent `prefix` (maybe nothing),
// or -1.
int OpenConnection(int port, const std::string& prefix) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return -1;
  if (send(fd, prefix.data(), prefix.size(), MSG_NOSIGNAL) != ssize_t(prefix.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

// Regression: the server (civetweb) ran 2 threads, one per connection, so two
// idle keep-alive connections made the kubelet's /healthz probe wait 10 s
// (and Kubernetes restart a healthy pod). Now epoll threads watch every
// connection and idle ones hold no thread.
TEST_F(HttpServerTest, ProbesAnswerWithin100msWhile100IdleOrSlowConnectionsAreOpen) {
  std::vector<int> fds;
  for (int i = 0; i < 70; ++i) fds.push_back(OpenConnection(server_.port(), ""));
  // Slowloris: a request that never ends, one header byte at a time.
  for (int i = 0; i < 30; ++i) {
    fds.push_back(OpenConnection(server_.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: "));
  }
  for (int fd : fds) ASSERT_GE(fd, 0);
  std::atomic<bool> stop{false};
  std::thread drip([&] {
    while (!stop.load()) {
      for (size_t i = 70; i < fds.size(); ++i) send(fds[i], "a", 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // all accepted
  for (int probe = 0; probe < 10; ++probe) {
    for (const char* path : {"/healthz", "/readyz"}) {
      const auto start = std::chrono::steady_clock::now();
      Reply reply = Fetch(server_.port(), path);
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
      EXPECT_NE(reply.status, 0) << path;
      EXPECT_LT(ms, 100) << path << " took " << ms << " ms";
    }
  }
  stop = true;
  drip.join();
  for (int fd : fds) close(fd);
}

// The bytes a gzip stream holds; "" if it is not one.
std::string Gunzip(const std::string& gz) {
  z_stream stream = {};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) return "";
  std::string out;
  char buf[4096];
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  stream.avail_in = static_cast<uInt>(gz.size());
  int result = Z_OK;
  while (result == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buf);
    stream.avail_out = sizeof(buf);
    result = inflate(&stream, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - stream.avail_out);
  }
  inflateEnd(&stream);
  return result == Z_STREAM_END ? out : "";
}

TEST(HttpServerMetricsTest, MetricsAreGzippedForScrapersThatAcceptIt) {
  std::string exposition;
  for (int i = 0; i < 500; ++i) exposition += "microbatch_x_total{model=\"m" + std::to_string(i) + "\"} 1\n";
  HttpServer server;
  ASSERT_TRUE(server.AddMetricsHandler([&] { return exposition; }).ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  ASSERT_TRUE(server.Start(options).ok());
  // Prometheus's own request header.
  Reply gz = Fetch(server.port(), "/metrics", "GET", false,
                   "Accept-Encoding: gzip\r\nAccept: application/openmetrics-text;version=1.0.0,"
                   "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n");
  ASSERT_EQ(gz.status, 200);
  EXPECT_THAT(gz.head, HasSubstr("Content-Encoding: gzip"));
  EXPECT_EQ(Gunzip(gz.body), exposition);
  EXPECT_LT(gz.body.size(), exposition.size() / 4);
  for (const std::string plain : {"", "Accept-Encoding: identity\r\n", "Accept-Encoding: gzip;q=0\r\n",
                                  "Accept-Encoding: br, deflate\r\n"}) {
    Reply reply = Fetch(server.port(), "/metrics", "GET", false, plain);
    ASSERT_EQ(reply.status, 200) << plain;
    EXPECT_THAT(reply.head, ::testing::Not(HasSubstr("Content-Encoding"))) << plain;
    EXPECT_EQ(reply.body, exposition) << plain;
  }
  EXPECT_THAT(Fetch(server.port(), "/metrics", "GET", false, "Accept-Encoding: deflate, GZIP;q=0.8\r\n").head,
              HasSubstr("Content-Encoding: gzip"));
}

TEST_F(HttpServerTest, HeadSendsNoBody) {
  Reply reply = Fetch(server_.port(), "/metrics", "HEAD");
  EXPECT_EQ(reply.status, 200);
  EXPECT_THAT(reply.head, HasSubstr("Content-Length: 5"));
  EXPECT_EQ(reply.body, "");
}

TEST_F(HttpServerTest, HealthAndReadiness) {
  Reply health = Fetch(server_.port(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok");

  Reply not_ready = Fetch(server_.port(), "/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body, "loading mlp");
  EXPECT_THAT(not_ready.head, HasSubstr("Retry-After: 1"));

  ready_ = true;
  Reply ready = Fetch(server_.port(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready");
  EXPECT_THAT(ready.head, ::testing::Not(HasSubstr("Retry-After")));

  ready_ = false;
  EXPECT_EQ(Fetch(server_.port(), "/readyz").status, 503);
}

TEST_F(HttpServerTest, OnlyExactPaths) {
  EXPECT_EQ(Fetch(server_.port(), "/").status, 404);
  EXPECT_EQ(Fetch(server_.port(), "/metrics/x").status, 404);
  EXPECT_EQ(Fetch(server_.port(), "/metricsx").status, 404);
  EXPECT_EQ(Fetch(server_.port(), "/metrics?name=x").status, 200);
}

TEST_F(HttpServerTest, ConcurrentScrapes) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        Reply reply = Fetch(server_.port(), i % 2 ? "/metrics" : "/healthz");
        if (reply.status == 200) ++ok;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST_F(HttpServerTest, StartAndAddHandlerAfterStartFail) {
  EXPECT_EQ(server_.Start(HttpServerOptions()).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(server_.AddHandler("/x", [](const HttpRequest&) { return HttpResponse(); }).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(HttpServerTest, StopIsIdempotentAndClosesThePort) {
  const int port = server_.port();
  server_.Stop();
  server_.Stop();
  EXPECT_EQ(Fetch(port, "/healthz").status, 0);
}

TEST_F(HttpServerTest, ScrapesAndProbesKeepTheConnectionAlive) {
  // Prometheus scrapes over one kept-alive connection; a port that closed it
  // after every answer would cost a handshake per scrape and leave a
  // TIME_WAIT connection behind each time.
  ready_ = true;
  for (const std::string path : {"/metrics", "/healthz", "/readyz"}) {
    EXPECT_THAT(FetchKeptAlive(server_.port(), path, 3), ::testing::ElementsAre(200, 200, 200))
        << path;
  }
  EXPECT_THAT(FetchKeptAlive(server_.port(), "/nope", 2), ::testing::ElementsAre(404, 404));
  // A body on these paths is never read: the answer comes at once, without
  // waiting for the declared body (none is sent here), and the connection is
  // closed after it.
  EXPECT_EQ(SendRaw(server_.port(),
                    "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
                .status,
            200);
}

TEST_F(HttpServerTest, RestartsOnItsPortWhileClosedConnectionsLinger) {
  // The server closes a "Connection: close" exchange first, so the port keeps
  // that connection in TIME_WAIT for a minute after the server stopped. A
  // server restarted at once (a container restarted in the same pod) must
  // still bind it.
  const int port = server_.port();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Fetch(port, "/healthz").status, 200);
  server_.Stop();
  HttpServer restarted;
  ASSERT_TRUE(restarted.AddHealthHandlers([] { return std::make_pair(true, std::string()); }).ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  absl::Status status = restarted.Start(options);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Fetch(port, "/healthz").status, 200);
}

// Whether this machine has IPv6 on loopback.
bool HasIpv6Loopback() {
  const int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 addr = {};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

TEST(HttpServerHostTest, TheIpv6WildcardTakesIpv6AndIpv4AndLoopbackOnlyItsOwn) {
  if (!HasIpv6Loopback()) GTEST_SKIP() << "no IPv6 on this machine";
  HttpServer wildcard;
  ASSERT_TRUE(wildcard.AddHealthHandlers([] { return std::make_pair(true, std::string()); }).ok());
  HttpServerOptions options;
  options.host = "::";
  ASSERT_TRUE(wildcard.Start(options).ok());
  EXPECT_EQ(Fetch(wildcard.port(), "/healthz", "GET", /*ipv6=*/true).status, 200);
  EXPECT_EQ(Fetch(wildcard.port(), "/healthz").status, 200);

  HttpServer loopback;
  ASSERT_TRUE(loopback.AddHealthHandlers([] { return std::make_pair(true, std::string()); }).ok());
  options.host = "::1";
  ASSERT_TRUE(loopback.Start(options).ok());
  EXPECT_EQ(Fetch(loopback.port(), "/healthz", "GET", /*ipv6=*/true).status, 200);
  EXPECT_EQ(Fetch(loopback.port(), "/healthz").status, 0);

  HttpServer bad;
  options.host = "::zz";
  EXPECT_EQ(bad.Start(options).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(HttpServerTest, BusyPortIsUnavailable) {
  HttpServer other;
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = server_.port();
  absl::Status status = other.Start(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

TEST(HttpServerHandlerTest, CustomHandlerSeesRequest) {
  HttpServer server;
  ASSERT_TRUE(server
                  .AddHandler("/v1/echo-path.txt",
                              [](const HttpRequest& request) {
                                HttpResponse response;
                                response.status = 418;
                                response.content_type = "application/json";
                                response.body = request.method + " " + request.path + " " +
                                                request.query;
                                return response;
                              })
                  .ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  ASSERT_TRUE(server.Start(options).ok());
  Reply reply = Fetch(server.port(), "/v1/echo-path.txt?a=1&b=2");
  EXPECT_EQ(reply.status, 418);
  EXPECT_THAT(reply.head, HasSubstr("Content-Type: application/json"));
  EXPECT_EQ(reply.body, "GET /v1/echo-path.txt a=1&b=2");
}

TEST(HttpServerHandlerTest, RejectsBadRegistrations) {
  HttpServer server;
  auto handler = [](const HttpRequest&) { return HttpResponse(); };
  EXPECT_EQ(server.AddHandler("metrics", handler).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.AddHandler("/a*", handler).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.AddHandler("/a$", handler).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(server.AddHandler("/a", handler).ok());
  EXPECT_EQ(server.AddHandler("/a", handler).code(), absl::StatusCode::kAlreadyExists);
  HttpServerOptions options;
  options.port = 70000;
  EXPECT_EQ(server.Start(options).code(), absl::StatusCode::kInvalidArgument);
  options.port = 0;
  options.num_threads = 0;
  EXPECT_EQ(server.Start(options).code(), absl::StatusCode::kInvalidArgument);
  options.num_threads = 1;
  options.host = "not-an-address";
  EXPECT_EQ(server.Start(options).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.port(), 0);
}


Reply Post(int port, const std::string& path, const std::string& body,
           const std::string& extra_headers = "") {
  return SendRaw(port, "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                           extra_headers + "Content-Length: " + std::to_string(body.size()) +
                           "\r\n\r\n" + body);
}

// Answers every request from another thread after `delay`, echoing what the
// handler saw.
class DelayedAnswers {
 public:
  explicit DelayedAnswers(std::chrono::milliseconds delay) : delay_(delay) {}
  ~DelayedAnswers() { Join(); }
  void Join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  AsyncHttpHandler Handler() {
    return [this](HttpRequest request, HttpResponder respond) {
      std::lock_guard<std::mutex> lock(mu_);
      pending_++;
      threads_.emplace_back([this, request = std::move(request), respond = std::move(respond)] {
        std::this_thread::sleep_for(delay_);
        HttpResponse response;
        response.status = 201;
        response.body = request.method + " " + request.path + " " + request.body + " " +
                        (request.headers.count("x-test") ? request.headers.at("x-test") : "-");
        response.headers.emplace_back("X-Answered", "later");
        pending_--;
        respond(std::move(response));
      });
    };
  }
  int pending() const { return pending_.load(); }

 private:
  std::chrono::milliseconds delay_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::atomic<int> pending_{0};
};

TEST(HttpServerAsyncTest, AnswersLaterWithoutHoldingTheOnlyThread) {
  DelayedAnswers answers(std::chrono::milliseconds(500));
  HttpServer server;
  ASSERT_TRUE(server.AddHealthHandlers([] { return std::make_pair(true, std::string()); }).ok());
  ASSERT_TRUE(server.AddPrefixHandler("/v2", answers.Handler()).ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.num_threads = 1;
  ASSERT_TRUE(server.Start(options).ok());
  std::vector<std::thread> clients;
  std::vector<Reply> replies(4);
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      replies[i] = Post(server.port(), "/v2/models/m/infer", "body" + std::to_string(i),
                        "X-Test: yes\r\n");
    });
  }
  // While four answers are pending, the one thread still answers probes.
  while (server.async_in_flight() < 4) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Reply health = Fetch(server.port(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_GT(answers.pending(), 0) << "the probe waited for the slow answers";
  for (auto& t : clients) t.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(replies[i].status, 201);
    EXPECT_EQ(replies[i].body, "POST /v2/models/m/infer body" + std::to_string(i) + " yes");
    EXPECT_THAT(replies[i].head, HasSubstr("X-Answered: later"));
  }
  // Counted until each answer is sent (libmicrohttpd's completion callback).
  for (int i = 0; i < 100 && server.async_in_flight() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server.async_in_flight(), 0);
}

TEST(HttpServerAsyncTest, RoutesExactThenLongestPrefixAtSlashBoundaries) {
  HttpServer server;
  auto named = [](std::string name) {
    return [name](HttpRequest, HttpResponder respond) {
      HttpResponse response;
      response.body = name;
      respond(std::move(response));  // answered inside the handler
    };
  };
  ASSERT_TRUE(server.AddHandler("/v2/health/live", [](const HttpRequest&) {
                      HttpResponse r;
                      r.body = "exact";
                      return r;
                    }).ok());
  ASSERT_TRUE(server.AddPrefixHandler("/v2", named("v2")).ok());
  ASSERT_TRUE(server.AddPrefixHandler("/v2/models", named("models")).ok());
  EXPECT_EQ(server.AddPrefixHandler("/v2", named("again")).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(server.AddPrefixHandler("v2", named("bad")).code(), absl::StatusCode::kInvalidArgument);
  HttpServerOptions options;
  options.host = "127.0.0.1";
  ASSERT_TRUE(server.Start(options).ok());
  EXPECT_EQ(Fetch(server.port(), "/v2/health/live").body, "exact");
  EXPECT_EQ(Fetch(server.port(), "/v2").body, "v2");
  EXPECT_EQ(Fetch(server.port(), "/v2/health/ready").body, "v2");
  EXPECT_EQ(Fetch(server.port(), "/v2/models/x/infer").body, "models");
  EXPECT_EQ(Fetch(server.port(), "/v2/modelsx").body, "v2");
  EXPECT_EQ(Fetch(server.port(), "/v2x").status, 404);
  EXPECT_EQ(server.AddPrefixHandler("/v3", named("late")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(HttpServerAsyncTest, BodiesOverTheLimitAre413AndTheServerGoesOn) {
  HttpServer server;
  ASSERT_TRUE(server.AddPrefixHandler("/v2", [](HttpRequest request, HttpResponder respond) {
                      HttpResponse response;
                      response.body = std::to_string(request.body.size());
                      respond(std::move(response));
                    }).ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.max_body_bytes = 1000;
  ASSERT_TRUE(server.Start(options).ok());
  EXPECT_EQ(Post(server.port(), "/v2/x", std::string(1000, 'a')).body, "1000");
  Reply declared = Post(server.port(), "/v2/x", std::string(5000, 'a'));
  EXPECT_EQ(declared.status, 413);
  EXPECT_THAT(declared.body, HasSubstr("request body of 5000 bytes exceeds the server's limit of 1000 bytes"));
  // Chunked: no length up front, cut off while it is read.
  std::string chunked = "POST /v2/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 6; ++i) chunked += "258\r\n" + std::string(600, 'b') + "\r\n";
  chunked += "0\r\n\r\n";
  Reply streamed = SendRaw(server.port(), chunked);
  EXPECT_EQ(streamed.status, 413);
  EXPECT_EQ(Post(server.port(), "/v2/x", "ok").body, "2");
}

// A 413 sent while the client was still sending a body a few times over the
// limit closed the connection with unread bytes; TCP can then reset it before
// the client reads the answer (V2RestTest.BadRequestsGetStatusAndMessage got
// status 0 through libcurl once in CI; this raw-socket client did not show
// it in 60 tries before the fix). Such bodies are now read and discarded
// first.
TEST(HttpServerAsyncTest, BodiesAFewTimesOverTheLimitStillGetTheir413) {
  HttpServer server;
  ASSERT_TRUE(server.AddPrefixHandler("/v2", [](HttpRequest request, HttpResponder respond) {
                      respond(HttpResponse{});
                    }).ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.max_body_bytes = 1 << 20;
  ASSERT_TRUE(server.Start(options).ok());
  const std::string body(3 * options.max_body_bytes, 'a');
  for (int i = 0; i < 20; ++i) {
    Reply reply = Post(server.port(), "/v2/x", body);
    ASSERT_EQ(reply.status, 413) << "attempt " << i;
    EXPECT_THAT(reply.body, HasSubstr("request body of 3145728 bytes exceeds the server's limit of 1048576 bytes"));
  }
}

TEST(HttpServerAsyncTest, TooManyInFlightIs503) {
  DelayedAnswers answers(std::chrono::milliseconds(400));
  HttpServer server;
  ASSERT_TRUE(server.AddPrefixHandler("/v2", answers.Handler()).ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.max_async_in_flight = 2;
  ASSERT_TRUE(server.Start(options).ok());
  std::vector<std::thread> clients;
  std::vector<Reply> replies(2);
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back([&, i] { replies[i] = Post(server.port(), "/v2/a", "x"); });
  }
  while (server.async_in_flight() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Reply refused = Post(server.port(), "/v2/a", "x");
  EXPECT_EQ(refused.status, 503);
  EXPECT_THAT(refused.body, HasSubstr("retry shortly"));
  EXPECT_THAT(refused.head, HasSubstr("Retry-After: 1"));
  for (auto& t : clients) t.join();
  for (const Reply& r : replies) EXPECT_EQ(r.status, 201);
}

TEST(HttpServerAsyncTest, StopWaitsForPendingAnswers) {
  DelayedAnswers answers(std::chrono::milliseconds(300));
  auto server = std::make_unique<HttpServer>();
  ASSERT_TRUE(server->AddPrefixHandler("/v2", answers.Handler()).ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  ASSERT_TRUE(server->Start(options).ok());
  Reply reply;
  std::thread client([&] { reply = Post(server->port(), "/v2/a", "x"); });
  while (server->async_in_flight() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server->Stop();
  client.join();
  EXPECT_EQ(reply.status, 201);
  answers.Join();
}

// Request bodies sent compressed (Content-Encoding), as tritonclient's
// request_compression_algorithm sends them, reach the handler decoded; a
// decompression bomb stops at the body limit.
TEST(HttpServerContentCodingTest, CompressedBodiesAreDecodedWithinTheLimit) {
  HttpServer server;
  ASSERT_TRUE(server.AddPrefixHandler("/v2", [](HttpRequest request, HttpResponder respond) {
                      HttpResponse response;
                      response.body = request.body + (request.headers.count("content-encoding") ? "|coded" : "");
                      respond(std::move(response));
                    }).ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.max_body_bytes = 64 * 1024;
  ASSERT_TRUE(server.Start(options).ok());
  const std::string json = R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]})";
  for (ContentCoding coding : {ContentCoding::kGzip, ContentCoding::kDeflate}) {
    const std::string name = ContentCodingName(coding);
    Reply reply = Post(server.port(), "/v2/x", *EncodeBody(coding, json), "Content-Encoding: " + name + "\r\n");
    EXPECT_EQ(reply.status, 200) << name;
    EXPECT_EQ(reply.body, json) << name;  // decoded, and the header is gone
  }
  // "deflate" without the zlib wrapper, as some clients send it.
  z_stream stream = {};
  ASSERT_EQ(deflateInit2(&stream, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string raw(256, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(json.data()));
  stream.avail_in = static_cast<uInt>(json.size());
  stream.next_out = reinterpret_cast<Bytef*>(raw.data());
  stream.avail_out = static_cast<uInt>(raw.size());
  ASSERT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  raw.resize(stream.total_out);
  deflateEnd(&stream);
  EXPECT_EQ(Post(server.port(), "/v2/x", raw, "Content-Encoding: deflate\r\n").body, json);
  EXPECT_EQ(Post(server.port(), "/v2/x", json, "Content-Encoding: identity\r\n").body, json);

  // 1 MB of zeros is about 1 KB of gzip: over the 64 KB limit once decoded.
  Reply bomb = Post(server.port(), "/v2/x", *EncodeBody(ContentCoding::kGzip, std::string(1 << 20, '\0')),
                    "Content-Encoding: gzip\r\n");
  EXPECT_EQ(bomb.status, 413);
  EXPECT_THAT(bomb.body, HasSubstr("decompresses to more than the server's limit of 65536 bytes"));
  Reply garbage = Post(server.port(), "/v2/x", "this is not gzip", "Content-Encoding: gzip\r\n");
  EXPECT_EQ(garbage.status, 400);
  EXPECT_THAT(garbage.body, HasSubstr("the request body is not valid gzip data"));
  std::string truncated = *EncodeBody(ContentCoding::kGzip, json);
  truncated.resize(truncated.size() / 2);
  Reply cut = Post(server.port(), "/v2/x", truncated, "Content-Encoding: gzip\r\n");
  EXPECT_EQ(cut.status, 400);
  EXPECT_THAT(cut.body, HasSubstr("not valid gzip data"));
  Reply brotli = Post(server.port(), "/v2/x", json, "Content-Encoding: br\r\n");
  EXPECT_EQ(brotli.status, 415);
  EXPECT_THAT(brotli.body, HasSubstr("Content-Encoding 'br' is not supported; send the body as gzip, deflate or identity"));
  EXPECT_EQ(Post(server.port(), "/v2/x", "ok").body, "ok");  // the server goes on
}

// Answers of asynchronous handlers are compressed for clients that ask
// (tritonclient's response_compression_algorithm; Python's requests asks by
// default), when large enough to gain.
TEST(HttpServerContentCodingTest, AnswersAreCompressedForClientsThatAcceptIt) {
  const std::string large(4096, 'y');
  HttpServer server;
  ASSERT_TRUE(server.AddPrefixHandler("/v2", [&](HttpRequest request, HttpResponder respond) {
                      HttpResponse response;
                      response.body = request.path == "/v2/large" ? large : "small";
                      respond(std::move(response));
                    }).ok());
  HttpServerOptions options;
  options.host = "127.0.0.1";
  ASSERT_TRUE(server.Start(options).ok());
  Reply gz = Fetch(server.port(), "/v2/large", "GET", false, "Accept-Encoding: gzip, deflate\r\n");
  EXPECT_THAT(gz.head, HasSubstr("Content-Encoding: gzip"));
  EXPECT_THAT(gz.head, HasSubstr("Vary: Accept-Encoding"));
  EXPECT_EQ(Gunzip(gz.body), large);
  Reply zlib = Fetch(server.port(), "/v2/large", "GET", false, "Accept-Encoding: deflate\r\n");
  EXPECT_THAT(zlib.head, HasSubstr("Content-Encoding: deflate"));
  EXPECT_EQ(*DecodeBody(ContentCoding::kDeflate, zlib.body, 1 << 20), large);
  Reply plain = Fetch(server.port(), "/v2/large");
  EXPECT_THAT(plain.head, Not(HasSubstr("Content-Encoding")));
  EXPECT_EQ(plain.body, large);
  Reply refused = Fetch(server.port(), "/v2/large", "GET", false, "Accept-Encoding: gzip;q=0, deflate;q=0\r\n");
  EXPECT_EQ(refused.body, large);
  Reply small = Fetch(server.port(), "/v2/small", "GET", false, "Accept-Encoding: gzip\r\n");
  EXPECT_THAT(small.head, Not(HasSubstr("Content-Encoding")));
  EXPECT_EQ(small.body, "small");
}

TEST(ContentCodingTest, AcceptEncodingValues) {
  EXPECT_EQ(ChooseResponseCoding(""), ContentCoding::kIdentity);
  EXPECT_EQ(ChooseResponseCoding("gzip, deflate, br"), ContentCoding::kGzip);
  EXPECT_EQ(ChooseResponseCoding("br;q=1.0, deflate;q=0.5"), ContentCoding::kDeflate);
  EXPECT_EQ(ChooseResponseCoding("*"), ContentCoding::kGzip);
  EXPECT_EQ(ChooseResponseCoding("*;q=0, deflate"), ContentCoding::kDeflate);
  EXPECT_EQ(ChooseResponseCoding("identity"), ContentCoding::kIdentity);
  EXPECT_EQ(ChooseResponseCoding("GZIP;Q=0.3"), ContentCoding::kGzip);
  EXPECT_EQ(ChooseResponseCoding("x-gzip"), ContentCoding::kGzip);
  EXPECT_EQ(ParseContentEncoding(" GZip ").value(), ContentCoding::kGzip);
  EXPECT_EQ(ParseContentEncoding("gzip, br").status().code(), absl::StatusCode::kUnimplemented);
  // Bytes after the end of the stream are refused, not ignored.
  EXPECT_EQ(DecodeBody(ContentCoding::kGzip, *EncodeBody(ContentCoding::kGzip, "a") + "junk", 100).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace microbatch
