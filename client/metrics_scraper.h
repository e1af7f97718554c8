// Fetches a Prometheus text exposition over HTTP or HTTPS with libcurl, for
// the server-side queue/compute split of `microbatch bench`.
#ifndef MICROBATCH_CLIENT_METRICS_SCRAPER_H_
#define MICROBATCH_CLIENT_METRICS_SCRAPER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microbatch {
namespace bench {

struct ScraperOptions {
  // http://host:port/path, https://host:port/path, or host:port[/path]
  // (http). The path defaults to /metrics.
  std::string url;
  int64_t connect_timeout_ms = 2000;  // TCP (+ TLS) connect
  int64_t timeout_ms = 5000;          // whole request, connect included
  // PEM CA bundle verifying an https:// server (empty: the system roots).
  std::string ca_file;
};

// "localhost:8502" -> "http://localhost:8502/metrics"; keeps an explicit
// scheme and path. INVALID_ARGUMENT for an empty host or port, or a scheme
// other than http/https.
absl::StatusOr<std::string> NormalizeMetricsUrl(absl::string_view url);

// One scraper per endpoint: it keeps one libcurl handle, so consecutive
// fetches reuse the connection (HTTP keep-alive). Not thread-safe.
class MetricsScraper {
 public:
  // INVALID_ARGUMENT for a bad URL (see NormalizeMetricsUrl).
  static absl::StatusOr<std::unique_ptr<MetricsScraper>> Create(const ScraperOptions& options);
  ~MetricsScraper();
  MetricsScraper(const MetricsScraper&) = delete;
  MetricsScraper& operator=(const MetricsScraper&) = delete;

  // The response body of a 200 answer. UNAVAILABLE naming the URL otherwise:
  // connection refused, timeout, TLS failure, or the HTTP status (e.g.
  // "metrics http://h:1/metrics: HTTP 503").
  absl::StatusOr<std::string> Fetch();

  const std::string& url() const { return url_; }

 private:
  MetricsScraper(std::string url, void* curl) : url_(std::move(url)), curl_(curl) {}

  const std::string url_;
  void* const curl_;  // CURL*
  std::string body_;
  char error_[256] = {};
};

}  // namespace bench
}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_METRICS_SCRAPER_H_
