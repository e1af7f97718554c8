// Lifecycle of one inference server process: gRPC listener, health, model
// repository, drain and shutdown.
#ifndef MICROBATCH_SERVER_SERVICE_SERVER_H_
#define MICROBATCH_SERVER_SERVICE_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/server.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/service/inference_service.h"
#include "server/http/http_server.h"
#include "server/service/tls_files.h"
#include "server/service/model_manager.h"
#include "server/service/model_control_service.h"
#include "server/v2/grpc_service.h"
#include "server/v2/rest_api.h"
#include "server/service/server_metrics.h"

namespace microbatch {

struct ServerOptions {
  // Listen address of both ports: IPv4 ("0.0.0.0": all interfaces) or IPv6
  // ("::": all interfaces, IPv4 too; "::1"; brackets optional). Port 0 picks
  // a free port (see grpc_port()).
  std::string host = "0.0.0.0";
  int grpc_port = 8500;
  // HTTP port for /metrics, /healthz and /readyz; 0 picks a free port, -1
  // disables the endpoint.
  int metrics_port = 8502;
  std::string model_repository;
  // Intra-op threads for models whose config sets none (0: LibTorch default).
  int default_intra_op_threads = 0;
  // Time kept between a request's estimated answer and its deadline; a
  // request that cannot be answered that early is refused or dropped, never
  // run late. Default 5 ms (the answer's way back through gRPC and a busy
  // client, and the model time's jitter beyond its estimate).
  absl::Duration deadline_margin = absl::Milliseconds(5);
  // How long an idle model executor polls for the next request before it
  // sleeps. Default 0 here; microbatch-server's --idle_spin_us defaults to
  // 500.
  absl::Duration idle_spin = absl::ZeroDuration();
  // Predict, ModelInfer and REST infer requests whose estimated model time is
  // at most this run on the receiving thread when their model is idle
  // (BatcherOptions::inline_max_compute); zero: never. Default 50 us (as
  // microbatch-server's --inline_max_compute_us).
  absl::Duration inline_max_compute = absl::Microseconds(50);
  // Mirrored (shadow) runs in flight beyond which further requests are not
  // mirrored (counted as dropped), so that shadows never queue up behind
  // live traffic (InferenceEngineOptions::max_shadow_in_flight). Default 64.
  int max_shadow_in_flight = 64;
  // Largest gRPC message accepted or sent. Default 64 MiB.
  int max_message_bytes = 64 << 20;
  // Chunks each BatchPredict stream may have in flight (read, not yet
  // answered). Bounds the server's memory per stream to about this many
  // chunks of input plus output. Default 4.
  int batch_window_chunks = 4;
  // Also serve microbatch.v1.Echo (for transport benchmarks). Default off.
  bool enable_echo = false;
  // Serve gRPC server reflection (grpcurl and friends list the services).
  // Default on.
  bool enable_reflection = true;
  // TLS for gRPC: PEM files of the server's certificate chain and private
  // key; both empty (default) serves plaintext. With `tls_client_ca_file`
  // set too, every client must present a certificate signed by that CA
  // (mTLS); plaintext and unverified clients are refused.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // How often the gRPC port reads the three TLS files again: a renewed
  // certificate or CA bundle is served to new connections without a
  // restart (a key and certificate that do not match are not taken; the
  // last good pair stays), on the gRPC port and on the HTTPS metrics port
  // (metrics_tls). Zero: read once, at start. Default 60 s.
  absl::Duration tls_reload_interval = absl::Seconds(60);
  // Serve the metrics/health port over HTTPS with the same certificate and
  // key (no client certificates). Default off.
  bool metrics_tls = false;
  // Worker threads of the metrics/health HTTP port (each watches many
  // connections; idle or slow ones hold no thread). Default 4.
  int http_threads = 4;
  // Bytes that requests may hold at once while decoded, queued, run and
  // answered (Predict requests and BatchPredict chunks; see MemoryBudget);
  // gRPC's transport buffers get a quota of this plus two max_message_bytes.
  // <= 0: unlimited.
  // Default 1 GiB.
  int64_t memory_budget_bytes = int64_t{1} << 30;
  // Concurrent RPCs (streams) per client connection. Default 256.
  int max_concurrent_streams = 256;
  // gRPC keepalive. The server pings a connection that was idle this long
  // and closes it when no answer comes within keepalive_timeout (a client
  // that vanished without closing). Defaults 2 h and 20 s (gRPC's).
  absl::Duration keepalive_time = absl::Hours(2);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Clients may send keepalive pings this often, also while no call is in
  // flight; a client that pings more often is sent GOAWAY
  // (ENHANCE_YOUR_CALM, "too_many_pings") after two such pings. Default 10 s
  // (gRPC's own default, 5 min and only during calls, closes connections of
  // clients configured with a shorter keepalive).
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  // A connection older than this (plus up to 10% jitter) is sent GOAWAY:
  // calls in flight on it finish there, new ones go over a new connection,
  // which makes clients resolve the server's name again, so that replicas
  // added behind a headless Service (the HPA) get their share of long-lived
  // clients. Zero (default): never.
  absl::Duration max_connection_age = absl::ZeroDuration();
  // KServe v2 REST on the HTTP port: largest infer body accepted (larger
  // ones get 413 unread), and infer requests in flight beyond which new ones
  // get 503. An infer request holds no HTTP thread while it is queued or
  // run, so /healthz, /readyz and /metrics stay answered. Defaults 64 MiB
  // and 256.
  int64_t http_max_body_bytes = int64_t{64} << 20;
  int http_max_infer_in_flight = 256;
  // How the model repository changes while the server runs (poll or
  // explicit, poll interval, unload grace, startup models).
  ModelControlOptions model_control;
};

// Thread-safe. Start order: StartListening(), then LoadModels(); health is
// NOT_SERVING in between. Shutdown() must be called before destruction when
// Start succeeded.
class InferenceServer {
 public:
  explicit InferenceServer(ServerOptions options);
  ~InferenceServer();

  // Starts gRPC (microbatch.v1 Inference, KServe v2 GRPCInferenceService,
  // Health, reflection; Echo if enabled) with health NOT_SERVING, and the
  // HTTP port (metrics, health, KServe v2 REST). Fails when a port cannot be bound.
  absl::Status StartListening();
  // Loads and warms every model, then sets health SERVING. On error the server
  // stays NOT_SERVING and the caller should exit.
  absl::Status LoadModels();
  // Health NOT_SERVING and ready() false, while requests are still served.
  void BeginDrain();
  // Stops accepting RPCs (new Predict calls get UNAVAILABLE), waits up to
  // `grace` for accepted ones (they finish normally: queued requests still
  // run), then stops gRPC at once (idle client connections do not delay it),
  // then the batchers.
  void Shutdown(absl::Duration grace);

  int grpc_port() const { return grpc_port_; }
  // 0 when the metrics endpoint is disabled.
  int metrics_port() const { return http_.port(); }
  ServerMetrics& metrics() { return metrics_; }
  // Models loaded and warmed, and not draining.
  bool ready() const { return ready_.load(); }
  // BatchPredict streams not yet done (see InferenceService::batch_streams).
  int64_t batch_streams() { return inference_.batch_streams(); }
  // Null before LoadModels() succeeded.
  ModelManager* models() const { return models_.get(); }

 private:
  // The health status of "" and of every registered service.
  void SetServing(bool serving);

  const ServerOptions options_;

  ServerMetrics metrics_;
  HttpServer http_;
  // Rereads --tls_cert/--tls_key for the HTTPS metrics port (metrics_tls
  // with a reload interval); stopped before http_.
  std::unique_ptr<TlsFileReloader> metrics_tls_reloader_;
  std::atomic<bool> draining_{false};
  MemoryBudget memory_budget_{options_.memory_budget_bytes};
  // Declared before everything that may still call it while being destroyed.
  std::unique_ptr<ModelManager> models_;
  InferenceEngine engine_{&metrics_, &memory_budget_,
                          InferenceEngineOptions{options_.max_shadow_in_flight}};
  InferenceService inference_{&engine_, &metrics_, &memory_budget_, options_.batch_window_chunks};
  // Runs admin calls that wait for loads (never on gRPC or HTTP threads).
  lifecycle::ThreadPool admin_pool_{2};
  ModelControlService model_control_{&engine_, &admin_pool_};
  v2::GrpcService v2_grpc_{&engine_, [this] { return ready_.load(); }, &admin_pool_};
  v2::RestApi v2_rest_{&engine_, [this] { return ready_.load(); }, &admin_pool_};
  EchoService echo_;
  // microbatch_memory_budget_bytes and microbatch_memory_in_use_bytes.
  std::shared_ptr<prometheus::Collectable> memory_metrics_;
  std::unique_ptr<grpc::Server> server_;
  // Full names of the registered gRPC services, each with its own health
  // status. Written by StartListening() before the server starts, read-only
  // after.
  std::vector<std::string> served_services_;
  int grpc_port_ = 0;
  std::atomic<bool> ready_{false};
  std::atomic<bool> shut_down_{false};
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_SERVER_H_
