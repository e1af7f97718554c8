#include "client/metrics_scraper.h"

#include <curl/curl.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/http_client.h"

namespace microbatch {
namespace bench {
namespace {

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

}  // namespace

absl::StatusOr<std::string> NormalizeMetricsUrl(absl::string_view url) {
  std::string scheme = "http";
  if (const size_t sep = url.find("://"); sep != absl::string_view::npos) {
    scheme = std::string(url.substr(0, sep));
    url.remove_prefix(sep + 3);
    if (scheme != "http" && scheme != "https") {
      return absl::InvalidArgumentError(
          absl::StrCat("--metrics-url: scheme must be http or https, got '", scheme, "'"));
    }
  }
  absl::string_view authority = url;
  std::string path = "/metrics";
  if (const size_t slash = url.find('/'); slash != absl::string_view::npos) {
    authority = url.substr(0, slash);
    path = std::string(url.substr(slash));
  }
  const size_t colon = authority.rfind(':');
  const bool bracketed = !authority.empty() && authority.back() == ']';  // [::1] without a port
  if (authority.empty() || colon == absl::string_view::npos || colon == 0 || bracketed ||
      colon + 1 == authority.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-url: expected [http[s]://]host:port[/path], got '", url, "'"));
  }
  return absl::StrCat(scheme, "://", authority, path);
}

absl::StatusOr<std::unique_ptr<MetricsScraper>> MetricsScraper::Create(const ScraperOptions& options) {
  absl::StatusOr<std::string> url = NormalizeMetricsUrl(options.url);
  if (!url.ok()) return url.status();
  InitCurlOnce();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("metrics: curl_easy_init failed");
  std::unique_ptr<MetricsScraper> scraper(new MetricsScraper(*url, curl));
  curl_easy_setopt(curl, CURLOPT_URL, scraper->url_.c_str());
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout_ms));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout_ms));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM (threads)
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl can decode
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &scraper->body_);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, scraper->error_);
  if (!options.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options.ca_file.c_str());
  return scraper;
}

MetricsScraper::~MetricsScraper() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

absl::StatusOr<std::string> MetricsScraper::Fetch() {
  CURL* curl = static_cast<CURL*>(curl_);
  body_.clear();
  error_[0] = '\0';
  const CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("metrics ", url_, ": ",
                                               error_[0] != '\0' ? error_ : curl_easy_strerror(code)));
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) return absl::UnavailableError(absl::StrCat("metrics ", url_, ": HTTP ", status));
  return std::move(body_);
}

}  // namespace bench
}  // namespace microbatch
