#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/log.h"
#include "server/service/tls_files.h"

namespace microbatch {

namespace {

prometheus::MetricFamily Gauge(const char* name, const char* help, double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric metric;
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

InferenceServer::InferenceServer(ServerOptions options) : options_(std::move(options)) {
  memory_metrics_ = std::make_shared<metrics::FunctionCollector>([this] {
    return std::vector<prometheus::MetricFamily>{
        Gauge("microbatch_memory_budget_bytes",
              "Bytes requests may hold at once (--memory_budget_mb); 0: unlimited.",
              static_cast<double>(std::max<int64_t>(0, memory_budget_.limit()))),
        Gauge("microbatch_memory_in_use_bytes",
              "Bytes held now by requests and BatchPredict chunks being decoded, queued, run "
              "or answered.",
              static_cast<double>(memory_budget_.in_use())),
    };
  });
  metrics_.exposition().Add(memory_metrics_);
}

InferenceServer::~InferenceServer() {
  if (server_ && !shut_down_.load()) Shutdown(absl::ZeroDuration());
}

namespace {

// gRPC server credentials from the TLS options: plaintext, TLS, or mTLS.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& o) {
  if (o.tls_cert_file.empty() && o.tls_key_file.empty()) {
    if (!o.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key must be given together");
  }
  absl::StatusOr<std::string> cert = ReadPem("--tls_cert", o.tls_cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem("--tls_key", o.tls_key_file);
  if (!key.ok()) return key.status();
  std::string ca;
  if (!o.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca_pem = ReadPem("--tls_client_ca", o.tls_client_ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    ca = *std::move(ca_pem);
  }
  if (absl::Status s = CheckTlsPem(*cert, *key, ca); !s.ok()) return s;
  const grpc_ssl_client_certificate_request_type client_certificates =
      ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                 : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  if (o.tls_reload_interval <= absl::ZeroDuration()) {
    grpc::SslServerCredentialsOptions ssl(client_certificates);
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    ssl.pem_root_certs = ca;
    return grpc::SslServerCredentials(ssl);
  }
  // The files are read again every interval: a renewed certificate (a
  // rotated Kubernetes Secret) is served to new connections without a
  // restart. A key and certificate that do not match (half-written files)
  // are not taken; the last good pair stays in use.
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      o.tls_key_file, o.tls_cert_file, o.tls_client_ca_file,
      static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(o.tls_reload_interval))));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (!ca.empty()) tls.watch_root_certs();
  tls.set_cert_request_type(client_certificates);
  return grpc::experimental::TlsServerCredentials(tls);
}

// The host without the brackets of an IPv6 literal ("[::1]" -> "::1").
std::string UnbracketedHost(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

// "host:port", an IPv6 literal in brackets ("[::]:8500").
std::string JoinHostPort(const std::string& host, int port) {
  const std::string bare = UnbracketedHost(host);
  if (bare.find(':') != std::string::npos) return absl::StrCat("[", bare, "]:", port);
  return absl::StrCat(bare, ":", port);
}

// A duration as a gRPC channel argument: milliseconds in [1, INT_MAX].
int ClampedMs(absl::Duration d) {
  return static_cast<int>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, std::numeric_limits<int>::max()));
}

// Removes gRPC server reflection from one server. Linking grpc++_reflection
// registers its plugin for every server of the process at static
// initialization, so reflection is on unless removed here.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& plugin) {
                                    return plugin->name() == "proto_server_reflection";
                                  }),
                   plugins->end());
  }
};

}  // namespace

void InferenceServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  for (const std::string& service : served_services_) health->SetServingStatus(service, serving);
}

absl::Status InferenceServer::StartListening() {
  grpc::EnableDefaultHealthCheckService(true);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = Credentials(options_);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // idempotent
  if (!options_.enable_reflection) builder.SetOption(std::make_unique<WithoutReflection>());
  const std::string address = JoinHostPort(options_.host, options_.grpc_port);
  builder.AddListeningPort(address, *credentials, &grpc_port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams);
  // gRPC sets SO_REUSEPORT by default: a second server started on this port
  // (an old process still running) would bind too, and the kernel would
  // split new connections between the two. A busy port must fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ClampedMs(options_.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ClampedMs(options_.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             ClampedMs(options_.min_client_ping_interval));
  // Pings of the server's own keepalive are not limited by the data sent.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  if (options_.max_connection_age > absl::ZeroDuration()) {
    // No grace limit (gRPC's default): a BatchPredict stream on an old
    // connection runs to its end.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, ClampedMs(options_.max_connection_age));
  }
  if (options_.memory_budget_bytes > 0) {
    // gRPC's own buffers (messages read but not yet handed to us) get a
    // quota of the budget plus room for two of the largest messages, so that
    // our budget refuses first, with a clear message and a resume offset,
    // and the transport only steps in beyond it: under pressure gRPC shrinks
    // its buffers and at worst resets streams or closes connections
    // (RESOURCE_EXHAUSTED / UNAVAILABLE, retriable). Without a quota, 24
    // callers sending 8 MiB each grew the process by 387 MiB over a 48 MiB
    // budget (MemoryBoundTest); with it, by about 120 MiB.
    grpc::ResourceQuota quota("microbatch");
    quota.Resize(static_cast<size_t>(options_.memory_budget_bytes) +
                 2 * static_cast<size_t>(options_.max_message_bytes));
    builder.SetResourceQuota(quota);
  }
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  // Each service also gets its own health status, by its full name (the
  // health protocol answers NOT_FOUND for a name that was never set).
  auto serve = [&](grpc::Service* service, const char* name) {
    builder.RegisterService(service);
    served_services_.push_back(name);
  };
  serve(&inference_, v1::Inference::service_full_name());
  serve(&v2_grpc_, inference::GRPCInferenceService::service_full_name());
  serve(&model_control_, v1::ModelControl::service_full_name());
  if (options_.enable_echo) serve(&echo_, v1::Echo::service_full_name());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  SetServing(false);
  if (options_.metrics_port >= 0) {
    absl::Status s = http_.AddMetricsHandler([this] { return metrics_.Expose(); });
    if (s.ok()) {
      s = http_.AddHealthHandlers([this]() -> std::pair<bool, std::string> {
        if (ready_.load()) return {true, "ready"};
        return {false, draining_.load() ? "draining" : "loading models"};
      });
    }
    if (s.ok()) s = v2_rest_.Register(&http_);
    HttpServerOptions http_options;
    http_options.host = UnbracketedHost(options_.host);
    http_options.port = options_.metrics_port;
    http_options.num_threads = options_.http_threads;
    http_options.max_body_bytes = options_.http_max_body_bytes;
    http_options.max_async_in_flight = options_.http_max_infer_in_flight;
    if (s.ok() && options_.metrics_tls) {
      if (options_.tls_cert_file.empty() || options_.tls_key_file.empty()) {
        s = absl::InvalidArgumentError("--metrics_tls needs --tls_cert and --tls_key");
      } else if (absl::StatusOr<std::string> key = ReadPem("--tls_key", options_.tls_key_file);
                 !key.ok()) {
        s = key.status();
      } else if (absl::StatusOr<std::string> cert =
                     ReadPem("--tls_cert", options_.tls_cert_file);
                 !cert.ok()) {
        s = cert.status();
      } else {
        http_options.tls_key_pem = *key;
        http_options.tls_cert_pem = *cert;
      }
    }
    if (s.ok()) s = http_.Start(http_options);
    if (!s.ok()) {
      server_->Shutdown();
      return absl::Status(s.code(), absl::StrCat("metrics endpoint: ", s.message()));
    }
    if (options_.metrics_tls && options_.tls_reload_interval > absl::ZeroDuration()) {
      metrics_tls_reloader_ = std::make_unique<TlsFileReloader>(
          options_.tls_cert_file, options_.tls_key_file, options_.tls_reload_interval, http_options.tls_cert_pem,
          http_options.tls_key_pem,
          [this](const std::string& cert, const std::string& key) { return http_.SetTlsCertificate(key, cert); });
    }
    Log(LogLevel::kInfo, "metrics_listening",
        {{"address", JoinHostPort(options_.host, http_.port())}});
  }
  Log(LogLevel::kInfo, "grpc_listening",
      {{"address", JoinHostPort(options_.host, grpc_port_)},
       {"echo", options_.enable_echo ? "on" : "off"},
       {"reflection", options_.enable_reflection ? "on" : "off"},
       {"tls", options_.tls_cert_file.empty()          ? "off"
               : options_.tls_client_ca_file.empty() ? "on"
                                                      : "mtls"}});
  return absl::OkStatus();
}

absl::Status InferenceServer::LoadModels() {
  RepositoryOptions repository_options;
  repository_options.root = options_.model_repository;
  repository_options.default_intra_op_threads = options_.default_intra_op_threads;
  repository_options.deadline_margin = options_.deadline_margin;
  repository_options.idle_spin = options_.idle_spin;
  repository_options.inline_max_compute = options_.inline_max_compute;
  repository_options.metrics = &metrics_;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ModelManager>> models =
      ModelManager::Start(repository_options, options_.model_control);
  if (!models.ok()) return models.status();
  models_ = std::move(*models);
  engine_.SetModels(models_.get());
  const ModelManager* served = models_.get();
  metrics_.WatchModels([served] {
    std::vector<ModelState> states;
    std::map<std::pair<std::string, int64_t>, std::shared_ptr<const ServedModel>> ready;
    for (auto& model : served->All()) ready[{model->name, model->version}] = model;
    for (const ModelVersionIndex& row : served->Index(/*include_disk=*/false)) {
      ModelState state;
      state.model = row.model;
      state.version = row.version;
      state.state = row.state;
      auto it = ready.find({row.model, row.version});
      if (it != ready.end() && row.state == "READY") {
        const ServedModel& model = *it->second;
        state.queue = model.batcher->Stats();
        state.queue_capacity = model.plan.config.max_queue_size();
        state.instances = model.plan.config.instance_count();
        state.ready = true;
        if (model.cache != nullptr) {
          const ResponseCache::Stats cache = model.cache->stats();
          state.has_cache = true;
          state.cache_bytes = cache.bytes;
          state.cache_entries = cache.entries;
          state.cache_evictions = cache.evictions;
        }
      }
      states.push_back(std::move(state));
    }
    return states;
  });
  SetServing(true);
  ready_ = true;
  Log(LogLevel::kInfo, "server_ready",
      {{"models", models_->All().size()},
       {"model_control_mode", options_.model_control.mode == ControlMode::kPoll ? "poll" : "explicit"},
       {"startup_ms", absl::ToDoubleMilliseconds(absl::Now() - start)}});
  return absl::OkStatus();
}

void InferenceServer::BeginDrain() {
  draining_ = true;
  ready_ = false;
  if (server_) SetServing(false);
  inference_.BeginDrain();
}

void InferenceServer::Shutdown(absl::Duration grace) {
  if (shut_down_.exchange(true)) return;
  BeginDrain();
  if (server_) {
    // gRPC's own Shutdown(deadline) waits for every connection to close,
    // idle ones too, so an idle client held it for the whole grace period.
    // Instead: refuse new calls, wait (up to `grace`) only for the calls
    // already accepted, then shut gRPC down at once, which closes the idle
    // connections.
    const absl::Time start = absl::Now();
    inference_.StopAccepting();
    v2_grpc_.StopAccepting();
    v2_rest_.StopAccepting();
    auto in_flight = [this] {
      return inference_.in_flight() + v2_grpc_.in_flight() + v2_rest_.in_flight();
    };
    while (in_flight() > 0 && absl::Now() < start + grace) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    const int64_t unfinished = in_flight();
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
    server_->Wait();
    Log(LogLevel::kInfo, "grpc_stopped",
        {{"ms", absl::ToDoubleMilliseconds(absl::Now() - start)}, {"cancelled", unfinished}});
  }
  metrics_.WatchModels(nullptr);
  if (models_) models_->Shutdown();
  metrics_tls_reloader_.reset();
  http_.Stop();
}

}  // namespace microbatch
