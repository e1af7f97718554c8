#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/log.h"

namespace microbatch {

constexpr char kInferenceServiceName[] = "microbatch.v1.Inference";

InferenceServer::InferenceServer(ServerOptions options) : options_(std::move(options)) {}

InferenceServer::~InferenceServer() {
  if (server_ && !shut_down_.load()) Shutdown(absl::ZeroDuration());
}

void InferenceServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  health->SetServingStatus(kInferenceServiceName, serving);
}

absl::Status InferenceServer::StartListening() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options_.host, ":", options_.grpc_port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &grpc_port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  builder.RegisterService(&inference_);
  if (options_.enable_echo) builder.RegisterService(&echo_);
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
    HttpServerOptions http_options;
    http_options.host = options_.host;
    http_options.port = options_.metrics_port;
    if (s.ok()) s = http_.Start(http_options);
    if (!s.ok()) {
      server_->Shutdown();
      return absl::Status(s.code(), absl::StrCat("metrics endpoint: ", s.message()));
    }
    Log(LogLevel::kInfo, "metrics_listening",
        {{"address", absl::StrCat(options_.host, ":", http_.port())}});
  }
  Log(LogLevel::kInfo, "grpc_listening",
      {{"address", absl::StrCat(options_.host, ":", grpc_port_)},
       {"echo", options_.enable_echo ? "on" : "off"}});
  return absl::OkStatus();
}

absl::Status InferenceServer::LoadModels() {
  RepositoryOptions repository_options;
  repository_options.root = options_.model_repository;
  repository_options.default_intra_op_threads = options_.default_intra_op_threads;
  repository_options.deadline_margin = options_.deadline_margin;
  repository_options.idle_spin = options_.idle_spin;
  repository_options.metrics = &metrics_;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ModelRepository>> repository =
      ModelRepository::Load(repository_options);
  if (!repository.ok()) return repository.status();
  repository_ = std::move(*repository);
  inference_.SetRepository(repository_.get());
  const ModelRepository* served = repository_.get();
  metrics_.WatchModels([served] {
    std::vector<ModelState> states;
    for (const ServedModel* model : served->All()) {
      ModelState state;
      state.model = model->name;
      state.version = model->version;
      state.queue = model->batcher->Stats();
      state.queue_capacity = model->plan.config.max_queue_size();
      state.instances = model->plan.config.instance_count();
      state.ready = true;
      states.push_back(std::move(state));
    }
    return states;
  });
  SetServing(true);
  ready_ = true;
  Log(LogLevel::kInfo, "server_ready",
      {{"models", repository_->All().size()},
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
    while (inference_.in_flight() > 0 && absl::Now() < start + grace) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    const int64_t unfinished = inference_.in_flight();
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
    server_->Wait();
    Log(LogLevel::kInfo, "grpc_stopped",
        {{"ms", absl::ToDoubleMilliseconds(absl::Now() - start)}, {"cancelled", unfinished}});
  }
  metrics_.WatchModels(nullptr);
  if (repository_) repository_->Shutdown();
  http_.Stop();
}

}  // namespace microbatch
