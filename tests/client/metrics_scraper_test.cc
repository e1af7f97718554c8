// MetricsScraper (libcurl) against a tiny HTTP server on loopback started by
// the test: success with keep-alive, chunked bodies, HTTP error status,
// timeout and connection refused.
#include "client/metrics_scraper.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace bench {
namespace {

using ::testing::HasSubstr;

// Serves one connection at a time on 127.0.0.1: for each request (headers up
// to the blank line) writes what `respond` returns; an empty answer means
// "never answer" (the request hangs until the client gives up).
class LoopbackHttpServer {
 public:
  explicit LoopbackHttpServer(std::function<std::string(const std::string& request)> respond)
      : respond_(std::move(respond)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listen_fd_, 8), 0);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~LoopbackHttpServer() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }

  int port() const { return port_; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }

 private:
  // True when `fd` became readable within 50 ms.
  static bool Readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, 50) > 0;
  }

  void Serve() {
    while (!stop_) {
      if (!Readable(listen_fd_)) continue;
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      ++connections_;
      ServeConnection(fd);
      close(fd);
    }
  }

  void ServeConnection(int fd) {
    std::string buffer;
    while (!stop_) {
      if (!Readable(fd)) continue;
      char chunk[4096];
      const ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n <= 0) return;  // the client closed
      buffer.append(chunk, static_cast<size_t>(n));
      size_t end;
      while ((end = buffer.find("\r\n\r\n")) != std::string::npos) {
        const std::string request = buffer.substr(0, end + 4);
        buffer.erase(0, end + 4);
        ++requests_;
        const std::string response = respond_(request);
        if (response.empty()) continue;  // hang
        if (write(fd, response.data(), response.size()) != static_cast<ssize_t>(response.size())) return;
      }
    }
  }

  std::function<std::string(const std::string&)> respond_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

std::string Ok(const std::string& body) {
  return absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: ", body.size(),
                      "\r\n\r\n", body);
}

std::unique_ptr<MetricsScraper> NewScraper(const std::string& url, int64_t timeout_ms = 5000) {
  ScraperOptions options;
  options.url = url;
  options.timeout_ms = timeout_ms;
  auto scraper = MetricsScraper::Create(options);
  EXPECT_TRUE(scraper.ok()) << scraper.status();
  return scraper.ok() ? std::move(*scraper) : nullptr;
}

TEST(NormalizeMetricsUrlTest, AddsSchemeAndPath) {
  EXPECT_EQ(*NormalizeMetricsUrl("localhost:8502"), "http://localhost:8502/metrics");
  EXPECT_EQ(*NormalizeMetricsUrl("localhost:8502/custom"), "http://localhost:8502/custom");
  EXPECT_EQ(*NormalizeMetricsUrl("http://10.0.0.1:80/metrics"), "http://10.0.0.1:80/metrics");
  EXPECT_EQ(*NormalizeMetricsUrl("https://metrics.example:443"), "https://metrics.example:443/metrics");
  EXPECT_EQ(*NormalizeMetricsUrl("[::1]:8502"), "http://[::1]:8502/metrics");
}

TEST(NormalizeMetricsUrlTest, RejectsWhatIsNotHostPort) {
  for (const char* bad : {"", "localhost", "localhost:", ":8502", "ftp://h:1", "[::1]", "http:///metrics"}) {
    const auto url = NormalizeMetricsUrl(bad);
    EXPECT_EQ(url.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(url.status().message(), HasSubstr("--metrics-url")) << bad;
  }
}

TEST(MetricsScraperTest, FetchesTheBodyAndReusesTheConnection) {
  std::string seen_request;
  LoopbackHttpServer server([&](const std::string& request) {
    seen_request = request;
    return Ok("microbatch_batches_total{model=\"m\",version=\"1\"} 7\n");
  });
  auto scraper = NewScraper(absl::StrCat("127.0.0.1:", server.port()));
  ASSERT_NE(scraper, nullptr);
  EXPECT_EQ(scraper->url(), absl::StrCat("http://127.0.0.1:", server.port(), "/metrics"));
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::string> body = scraper->Fetch();
    ASSERT_TRUE(body.ok()) << body.status();
    EXPECT_EQ(*body, "microbatch_batches_total{model=\"m\",version=\"1\"} 7\n");
  }
  EXPECT_THAT(seen_request, HasSubstr("GET /metrics HTTP/1.1"));
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.connections(), 1);  // keep-alive
}

TEST(MetricsScraperTest, DecodesAChunkedBody) {
  LoopbackHttpServer server([](const std::string&) {
    return std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nup 1\n\r\n6\r\nx_y 2\n\r\n0\r\n\r\n");
  });
  auto scraper = NewScraper(absl::StrCat("http://127.0.0.1:", server.port(), "/metrics"));
  ASSERT_NE(scraper, nullptr);
  absl::StatusOr<std::string> body = scraper->Fetch();
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "up 1\nx_y 2\n");
}

TEST(MetricsScraperTest, HttpErrorStatusIsUnavailableNamingIt) {
  LoopbackHttpServer server([](const std::string&) {
    return std::string("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\n\r\ndraining");
  });
  auto scraper = NewScraper(absl::StrCat("127.0.0.1:", server.port()));
  ASSERT_NE(scraper, nullptr);
  absl::StatusOr<std::string> body = scraper->Fetch();
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr("HTTP 503"));
  EXPECT_THAT(body.status().message(), HasSubstr(scraper->url()));
}

TEST(MetricsScraperTest, TimesOutOnAServerThatNeverAnswers) {
  LoopbackHttpServer server([](const std::string&) { return std::string(); });
  auto scraper = NewScraper(absl::StrCat("127.0.0.1:", server.port()), /*timeout_ms=*/300);
  ASSERT_NE(scraper, nullptr);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> body = scraper->Fetch();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr("timed out"));
  EXPECT_GE(seconds, 0.25);
  EXPECT_LT(seconds, 3.0);
}

TEST(MetricsScraperTest, ConnectionRefusedIsUnavailable) {
  int port = 0;
  {
    LoopbackHttpServer server([](const std::string&) { return Ok(""); });
    port = server.port();
  }  // closed: nothing listens there now
  auto scraper = NewScraper(absl::StrCat("127.0.0.1:", port));
  ASSERT_NE(scraper, nullptr);
  absl::StatusOr<std::string> body = scraper->Fetch();
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", port)));
}

TEST(MetricsScraperTest, BadUrlIsInvalidArgument) {
  ScraperOptions options;
  options.url = "nohostport";
  EXPECT_EQ(MetricsScraper::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bench
}  // namespace microbatch
