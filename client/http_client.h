// HTTP(S) with libcurl for the REST front end (`--protocol rest`): the base
// URL from --http and the TLS flags, the settings every easy handle gets, and
// a blocking client for the unary commands.
#ifndef MICROBATCH_CLIENT_HTTP_CLIENT_H_
#define MICROBATCH_CLIENT_HTTP_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/channel.h"

namespace microbatch {

// Runs curl_global_init once per process (it is not thread-safe against
// other libcurl calls): call before creating any easy or multi handle.
void InitCurlOnce();

struct HttpOptions {
  // host:port, or http[s]://host:port[/prefix] (the prefix is kept before
  // every request path). Without a scheme: https when tls asks for TLS.
  std::string address = "localhost:8502";
  // --tls_ca verifies the server, --tls_cert/--tls_key are the client
  // certificate, --tls_server_name the name checked in the server
  // certificate (the connection still goes to the address's host).
  TlsOptions tls;
  int64_t timeout_ms = 30000;         // whole request; 0: none
  int64_t connect_timeout_ms = 10000; // TCP (+ TLS) connect
};

// "localhost:8502" -> "http://localhost:8502" (https:// when `tls`);
// "https://h:1/p/" -> "https://h:1/p". INVALID_ARGUMENT naming --http for an
// empty host or port, or a scheme other than http/https.
absl::StatusOr<std::string> NormalizeHttpBase(absl::string_view address, bool tls);

// The validated settings of one endpoint, applied to any number of easy
// handles (each thread or transfer its own). Copyable.
class HttpEndpoint {
 public:
  // INVALID_ARGUMENT for a bad address (NormalizeHttpBase), or an unreadable
  // or non-PEM TLS file (as ChannelFactory::Create). An explicit http://
  // scheme wins over the TLS flags (they then apply to gRPC only).
  static absl::StatusOr<HttpEndpoint> Create(const HttpOptions& options);

  // base + path, e.g. "http://localhost:8502/v2/models/m/infer".
  std::string Url(absl::string_view path) const { return base_ + std::string(path); }
  const std::string& base() const { return base_; }

  // Sets on `curl` (a CURL*) everything but the URL, the method and the
  // body: timeouts, keep-alive, no signals, no "Expect: 100-continue", the
  // protocols allowed, and TLS. `timeout_ms` overrides options.timeout_ms
  // when >= 0.
  void Configure(void* curl, int64_t timeout_ms = -1) const;

 private:
  HttpEndpoint() = default;

  std::string base_;
  std::string ca_file_, cert_file_, key_file_;
  std::string connect_to_;  // "server_name:port:host:port" with --tls_server_name
  int64_t timeout_ms_ = 0;
  int64_t connect_timeout_ms_ = 0;
};

struct HttpReply {
  long status = 0;
  std::string body;
};

// One keep-alive connection's worth of blocking requests. Not thread-safe.
class HttpClient {
 public:
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(const HttpOptions& options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Any HTTP status is a response; errors are transport failures naming the
  // method and URL: DEADLINE_EXCEEDED for a timeout, UNAVAILABLE otherwise
  // (refused, TLS failure, ...).
  absl::StatusOr<HttpReply> Get(absl::string_view path);
  absl::StatusOr<HttpReply> Post(absl::string_view path, absl::string_view json_body);

  const HttpEndpoint& endpoint() const { return endpoint_; }

 private:
  HttpClient(HttpEndpoint endpoint, void* curl);
  absl::StatusOr<HttpReply> Perform(const char* method, const std::string& url);

  const HttpEndpoint endpoint_;
  void* const curl_;       // CURL*
  void* json_headers_;     // curl_slist*
  std::string body_;
  char error_[256] = {};
};

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_HTTP_CLIENT_H_
