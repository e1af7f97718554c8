#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Reply {
  int status = 0;     // 0: no connection or no parsable reply
  std::string head;   // status line and headers
  std::string body;
};

// A minimal HTTP/1.1 client: one request per connection to 127.0.0.1:port.
Reply Fetch(int port, const std::string& path, const std::string& method = "GET") {
  Reply reply;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return reply;
  }
  const std::string request =
      method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != ssize_t(request.size())) {
    close(fd);
    return reply;
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
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      send(fd, prefix.data(), prefix.size(), MSG_NOSIGNAL) != ssize_t(prefix.size())) {
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

  ready_ = true;
  Reply ready = Fetch(server_.port(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready");

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

}  // namespace
}  // namespace microbatch
