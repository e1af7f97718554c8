#include "client/http_client.h"

#include <curl/curl.h>

#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"

namespace microbatch {
namespace {

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// Splits "host:port" / "[v6]:port"; false when either part is missing.
bool SplitHostPort(absl::string_view authority, std::string* host, std::string* port) {
  const size_t colon = authority.rfind(':');
  if (colon == absl::string_view::npos || colon == 0 || colon + 1 == authority.size()) return false;
  if (authority.back() == ']') return false;  // [::1] without a port
  int value = 0;
  if (!absl::SimpleAtoi(authority.substr(colon + 1), &value) || value <= 0 || value > 65535) return false;
  *host = std::string(authority.substr(0, colon));
  *port = std::string(authority.substr(colon + 1));
  return true;
}

}  // namespace

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

absl::StatusOr<std::string> NormalizeHttpBase(absl::string_view address, bool tls) {
  std::string scheme = tls ? "https" : "http";
  absl::string_view rest = address;
  if (const size_t sep = rest.find("://"); sep != absl::string_view::npos) {
    scheme = std::string(rest.substr(0, sep));
    rest.remove_prefix(sep + 3);
    if (scheme != "http" && scheme != "https") {
      return absl::InvalidArgumentError(absl::StrCat("--http: scheme must be http or https, got '", scheme, "'"));
    }
  }
  absl::string_view authority = rest;
  absl::string_view prefix;
  if (const size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    authority = rest.substr(0, slash);
    prefix = rest.substr(slash);
    while (absl::ConsumeSuffix(&prefix, "/")) {
    }
  }
  std::string host, port;
  if (!SplitHostPort(authority, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http: expected [http[s]://]host:port[/prefix], got '", address, "'"));
  }
  return absl::StrCat(scheme, "://", authority, prefix);
}

absl::StatusOr<HttpEndpoint> HttpEndpoint::Create(const HttpOptions& options) {
  absl::StatusOr<std::string> base = NormalizeHttpBase(options.address, options.tls.Enabled());
  if (!base.ok()) return base.status();
  // The same checks (and messages) as the gRPC channels.
  absl::StatusOr<ChannelFactory> tls = ChannelFactory::Create(options.tls);
  if (!tls.ok()) return tls.status();
  HttpEndpoint endpoint;
  endpoint.base_ = *base;
  endpoint.timeout_ms_ = options.timeout_ms;
  endpoint.connect_timeout_ms_ = options.connect_timeout_ms;
  if (absl::StartsWith(endpoint.base_, "https://")) {
    endpoint.ca_file_ = options.tls.ca_file;
    endpoint.cert_file_ = options.tls.cert_file;
    endpoint.key_file_ = options.tls.key_file;
    if (!options.tls.server_name.empty()) {
      // Verify (and send SNI for) server_name while connecting to the
      // address's host: the URL names server_name, CONNECT_TO maps it back.
      absl::string_view rest = absl::string_view(endpoint.base_).substr(8);
      const absl::string_view authority = rest.substr(0, rest.find('/'));
      const absl::string_view prefix = rest.substr(authority.size());
      std::string host, port;
      SplitHostPort(authority, &host, &port);  // validated by NormalizeHttpBase
      endpoint.connect_to_ = absl::StrCat(options.tls.server_name, ":", port, ":", host, ":", port);
      endpoint.base_ = absl::StrCat("https://", options.tls.server_name, ":", port, prefix);
    }
  }
  return endpoint;
}

void HttpEndpoint::Configure(void* handle, int64_t timeout_ms) const {
  CURL* curl = static_cast<CURL*>(handle);
  const int64_t timeout = timeout_ms >= 0 ? timeout_ms : timeout_ms_;
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout_ms_));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM (threads)
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!ca_file_.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file_.c_str());
  if (!cert_file_.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT, cert_file_.c_str());
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLKEY, key_file_.c_str());
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
  }
  // CURLOPT_CONNECT_TO keeps the list pointer: it lives in a static map of
  // one list per distinct mapping, never freed (a handful per process).
  if (!connect_to_.empty()) {
    static std::mutex mu;
    static auto* lists = new std::vector<std::pair<std::string, curl_slist*>>;
    std::lock_guard<std::mutex> lock(mu);
    curl_slist* list = nullptr;
    for (const auto& [mapping, l] : *lists) {
      if (mapping == connect_to_) list = l;
    }
    if (list == nullptr) {
      list = curl_slist_append(nullptr, connect_to_.c_str());
      lists->emplace_back(connect_to_, list);
    }
    curl_easy_setopt(curl, CURLOPT_CONNECT_TO, list);
  }
}

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(const HttpOptions& options) {
  absl::StatusOr<HttpEndpoint> endpoint = HttpEndpoint::Create(options);
  if (!endpoint.ok()) return endpoint.status();
  InitCurlOnce();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(*endpoint), curl));
}

HttpClient::HttpClient(HttpEndpoint endpoint, void* curl) : endpoint_(std::move(endpoint)), curl_(curl) {
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip before large bodies
  json_headers_ = headers;
  endpoint_.Configure(curl_);
  curl_easy_setopt(static_cast<CURL*>(curl_), CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(static_cast<CURL*>(curl_), CURLOPT_WRITEDATA, &body_);
  curl_easy_setopt(static_cast<CURL*>(curl_), CURLOPT_ERRORBUFFER, error_);
}

HttpClient::~HttpClient() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));
  curl_slist_free_all(static_cast<curl_slist*>(json_headers_));
}

absl::StatusOr<HttpReply> HttpClient::Get(absl::string_view path) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  return Perform("GET", endpoint_.Url(path));
}

absl::StatusOr<HttpReply> HttpClient::Post(absl::string_view path, absl::string_view json_body) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json_body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(json_body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(json_headers_));
  return Perform("POST", endpoint_.Url(path));
}

absl::StatusOr<HttpReply> HttpClient::Perform(const char* method, const std::string& url) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  body_.clear();
  error_[0] = '\0';
  const CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    const std::string message =
        absl::StrCat(method, " ", url, ": ", error_[0] != '\0' ? error_ : curl_easy_strerror(code));
    if (code == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(message);
    return absl::UnavailableError(message);
  }
  HttpReply response;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  response.body = std::move(body_);
  body_ = std::string();
  return response;
}

}  // namespace microbatch
