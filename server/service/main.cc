// microbatch-server: serves the TorchScript models of a model repository over
// gRPC through per-model dynamic batchers.
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/flags/internal/program_name.h"
#include "absl/flags/internal/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/core/log.h"
#include "server/service/server.h"

ABSL_FLAG(std::string, host, "0.0.0.0",
          "Address to listen on (gRPC and metrics): IPv4, or IPv6 (\"::\" takes IPv4 too)");
ABSL_FLAG(int, grpc_port, 8500, "gRPC listen port (0 picks a free port)");
ABSL_FLAG(int, metrics_port, 8502,
          "HTTP port for /metrics (Prometheus), /healthz (live), /readyz (ready) and the KServe "
          "v2 REST API under /v2; 0 picks a free port, -1 disables");
ABSL_FLAG(std::string, model_repository, "", "Model repository directory (required)");
ABSL_FLAG(int, default_intra_op_threads, 0,
          "Intra-op threads per model instance when its config sets none (0: cores / "
          "instance_count, at least 1)");
ABSL_FLAG(int, deadline_margin_ms, 5,
          "Milliseconds kept between a request's estimated answer and its deadline, for the "
          "answer's way back (at most a quarter of the time the request has left): requests that "
          "cannot be answered that early are refused (RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED) or "
          "dropped, never run late");
ABSL_FLAG(int, idle_spin_us, 500,
          "Microseconds an idle model executor polls for the next request before it sleeps: "
          "spends CPU to save the wake-up of a sleeping thread on the next request; it polls "
          "only while the median of the model's last 8 idle gaps is at most a quarter of this "
          "(or of the busy periods between them, up to 3/4 of this), and pauses while other "
          "threads keep the polling core busy");
ABSL_FLAG(int, inline_max_compute_us, 50,
          "A Predict, ModelInfer or REST infer request that finds its model idle and nothing "
          "queued runs at once on the gRPC or HTTP thread that received it, with no hand-off to "
          "the model's executor thread, when the model's estimated time for it is at most this "
          "many microseconds; 0: never");
ABSL_FLAG(int, drain_seconds, 5,
          "After SIGTERM, seconds to keep serving while reporting NOT_SERVING, before refusing new "
          "requests");
ABSL_FLAG(int, shutdown_grace_seconds, 30,
          "After the drain window, seconds to wait for accepted requests before cancelling them");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC message accepted or sent");
ABSL_FLAG(int, batch_window_chunks, 4,
          "Chunks each BatchPredict stream may have in flight; bounds memory per stream");
ABSL_FLAG(bool, enable_echo, false, "Also serve microbatch.v1.Echo (transport benchmarks)");
ABSL_FLAG(std::string, log_format, "text", "Log line format: text or json");
ABSL_FLAG(bool, enable_reflection, true,
          "Serve gRPC server reflection (lets grpcurl list and call the services)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain for gRPC over TLS (with --tls_key); empty: plaintext");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: when set, clients must present a certificate it signed (mTLS)");
ABSL_FLAG(int, tls_reload_seconds, 60,
          "Seconds between reads of the TLS files: a renewed certificate is served to new gRPC "
          "and HTTPS (--metrics_tls) connections without a restart; 0 reads them once");
ABSL_FLAG(bool, metrics_tls, false,
          "Serve the metrics/health port over HTTPS with --tls_cert/--tls_key");
ABSL_FLAG(int64_t, memory_budget_mb, 1024,
          "MiB that requests may hold at once while decoded, queued, run and answered (Predict and "
          "BatchPredict chunks; gRPC's transport buffers get this plus two max messages); beyond "
          "it RESOURCE_EXHAUSTED. 0: unlimited");
ABSL_FLAG(int, max_concurrent_streams, 256, "Concurrent RPCs per client connection");
ABSL_FLAG(int64_t, grpc_keepalive_time_ms, 7200000,
          "Ping a gRPC connection idle this long; close it when no answer comes within "
          "--grpc_keepalive_timeout_ms (a client that vanished)");
ABSL_FLAG(int64_t, grpc_keepalive_timeout_ms, 20000,
          "How long the server waits for the answer to its keepalive ping");
ABSL_FLAG(int64_t, grpc_max_connection_age_seconds, 0,
          "Send GOAWAY to a gRPC connection this old (+up to 10% jitter): calls in flight finish, "
          "new ones reconnect and re-resolve, so that added replicas get long-lived clients; 0: "
          "never");
ABSL_FLAG(int64_t, grpc_min_client_ping_interval_ms, 10000,
          "Clients may send keepalive pings this often, also with no call in flight; more often "
          "gets GOAWAY too_many_pings");
ABSL_FLAG(int, max_shadow_in_flight, 64,
          "Mirrored (shadow) runs in flight beyond which further requests are not mirrored "
          "(counted as dropped): shadows never queue up behind live traffic");
ABSL_FLAG(int, http_threads, 4,
          "Worker threads of the metrics/health port; each watches many connections (epoll), so "
          "idle or slow clients hold none");
ABSL_FLAG(std::string, model_control_mode, "poll",
          "How the model repository changes while the server runs: poll (rescan it every "
          "--repository_poll_seconds and apply new, removed and changed versions and models) or "
          "explicit (only the ModelControl RPCs load and unload)");
ABSL_FLAG(int, repository_poll_seconds, 5,
          "poll mode: seconds between scans of the model repository; 0 scans only at startup");
ABSL_FLAG(int, unload_grace_seconds, 10,
          "Seconds a served version may be missing from disk or from its version policy before "
          "it is unloaded");
ABSL_FLAG(std::vector<std::string>, load_model, {},
          "explicit mode: models to load at startup (comma-separated); empty or * loads every model");
ABSL_FLAG(int, model_load_threads, 2, "Threads loading model versions (models load concurrently)");
ABSL_FLAG(int64_t, http_max_body_mb, 64,
          "Largest KServe v2 REST request body in MiB; larger ones are answered 413 unread");
ABSL_FLAG(int, http_max_infer_in_flight, 256,
          "KServe v2 REST infer requests in flight (queued or running; they hold no HTTP thread) "
          "beyond which new ones are answered 503");

namespace {

using microbatch::Log;
using microbatch::LogLevel;

// Blocks SIGINT and SIGTERM in every thread started after this call, so that
// only WaitForSignal() receives them.
sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int WaitForSignal(const sigset_t& set) {
  int signal = 0;
  sigwait(&set, &signal);
  return signal;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves TorchScript models over gRPC with dynamic batching.\n"
      "Usage: microbatch-server --model_repository=DIR [--grpc_port=8500] ...");
  // --help and --helpshort list this file's flags (abseil's default matches
  // only files named after the program, so it would list none).
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/service/main.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  usage_config.normalize_filename = [](absl::string_view file) {
    const size_t at = file.rfind("server/service/");
    return std::string(at == absl::string_view::npos ? file : file.substr(at));
  };
  // --version: the project's version (abseil's default names the program
  // and whether abseil itself was built with NDEBUG).
  usage_config.version_string = [] { return std::string("microbatch-server " MICROBATCH_VERSION "\n"); };
  absl::SetFlagsUsageConfig(usage_config);
  // abseil exits 1 after --help; a help request that succeeded exits 0.
  absl::flags_internal::SetProgramInvocationName(argv[0]);
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-help" || arg == "--helpshort" || arg == "-h") {
      absl::flags_internal::FlagsHelp(std::cout, "server/service/main.cc",
                                      absl::flags_internal::HelpFormat::kHumanReadable,
                                      absl::ProgramUsageMessage());
      return 0;
    }
  }
  absl::ParseCommandLine(argc, argv);
  // gRPC locks absl::Mutex on every call; Debian's abseil is built with
  // deadlock detection on, which keeps a lock graph (about 3% of the server's
  // CPU under load in perf). We never rely on it in production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const sigset_t signals = BlockTerminationSignals();

  const std::string log_format = absl::GetFlag(FLAGS_log_format);
  if (log_format != "text" && log_format != "json") {
    std::cerr << "--log_format must be text or json, got '" << log_format << "'\n";
    return 2;
  }
  microbatch::SetLogFormat(log_format == "json" ? microbatch::LogFormat::kJson
                                                : microbatch::LogFormat::kText);
  if (absl::GetFlag(FLAGS_model_repository).empty()) {
    std::cerr << "--model_repository is required (see --help)\n";
    return 2;
  }

  microbatch::ServerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.grpc_port = absl::GetFlag(FLAGS_grpc_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.model_repository = absl::GetFlag(FLAGS_model_repository);
  options.default_intra_op_threads = absl::GetFlag(FLAGS_default_intra_op_threads);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.deadline_margin = absl::Milliseconds(std::max(0, absl::GetFlag(FLAGS_deadline_margin_ms)));
  options.idle_spin = absl::Microseconds(std::max(0, absl::GetFlag(FLAGS_idle_spin_us)));
  options.inline_max_compute =
      absl::Microseconds(std::max(0, absl::GetFlag(FLAGS_inline_max_compute_us)));
  options.enable_echo = absl::GetFlag(FLAGS_enable_echo);
  options.batch_window_chunks = absl::GetFlag(FLAGS_batch_window_chunks);
  options.enable_reflection = absl::GetFlag(FLAGS_enable_reflection);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.metrics_tls = absl::GetFlag(FLAGS_metrics_tls);
  options.tls_reload_interval = absl::Seconds(std::max(0, absl::GetFlag(FLAGS_tls_reload_seconds)));
  options.http_threads = std::max(1, absl::GetFlag(FLAGS_http_threads));
  options.memory_budget_bytes = std::max<int64_t>(0, absl::GetFlag(FLAGS_memory_budget_mb)) << 20;
  options.max_concurrent_streams = std::max(1, absl::GetFlag(FLAGS_max_concurrent_streams));
  options.keepalive_time = absl::Milliseconds(std::max<int64_t>(1, absl::GetFlag(FLAGS_grpc_keepalive_time_ms)));
  options.keepalive_timeout =
      absl::Milliseconds(std::max<int64_t>(1, absl::GetFlag(FLAGS_grpc_keepalive_timeout_ms)));
  options.min_client_ping_interval =
      absl::Milliseconds(std::max<int64_t>(1, absl::GetFlag(FLAGS_grpc_min_client_ping_interval_ms)));
  options.max_connection_age =
      absl::Seconds(std::max<int64_t>(0, absl::GetFlag(FLAGS_grpc_max_connection_age_seconds)));
  options.max_shadow_in_flight = std::max(0, absl::GetFlag(FLAGS_max_shadow_in_flight));
  options.http_max_body_bytes = std::max<int64_t>(1, absl::GetFlag(FLAGS_http_max_body_mb)) << 20;
  options.http_max_infer_in_flight = std::max(1, absl::GetFlag(FLAGS_http_max_infer_in_flight));
  std::optional<microbatch::ControlMode> mode =
      microbatch::ParseControlMode(absl::GetFlag(FLAGS_model_control_mode));
  if (!mode) {
    std::cerr << "--model_control_mode must be poll or explicit, got '"
              << absl::GetFlag(FLAGS_model_control_mode) << "'\n";
    return 2;
  }
  options.model_control.mode = *mode;
  options.model_control.poll_interval =
      absl::Seconds(std::max(0, absl::GetFlag(FLAGS_repository_poll_seconds)));
  options.model_control.unload_grace =
      absl::Seconds(std::max(0, absl::GetFlag(FLAGS_unload_grace_seconds)));
  options.model_control.startup_models = absl::GetFlag(FLAGS_load_model);
  options.model_control.load_threads = std::max(1, absl::GetFlag(FLAGS_model_load_threads));
  const int drain_seconds = absl::GetFlag(FLAGS_drain_seconds);
  const int grace_seconds = absl::GetFlag(FLAGS_shutdown_grace_seconds);
  Log(LogLevel::kInfo, "config",
      {{"host", options.host},
       {"grpc_port", options.grpc_port},
       {"metrics_port", options.metrics_port},
       {"model_repository", options.model_repository},
       {"default_intra_op_threads", options.default_intra_op_threads},
       {"deadline_margin_ms", absl::ToInt64Milliseconds(options.deadline_margin)},
       {"idle_spin_us", absl::ToInt64Microseconds(options.idle_spin)},
       {"inline_max_compute_us", absl::ToInt64Microseconds(options.inline_max_compute)},
       {"drain_seconds", drain_seconds},
       {"shutdown_grace_seconds", grace_seconds},
       {"max_message_bytes", options.max_message_bytes},
       {"enable_echo", options.enable_echo ? "true" : "false"},
       {"batch_window_chunks", options.batch_window_chunks},
       {"log_format", log_format},
       {"enable_reflection", options.enable_reflection ? "true" : "false"},
       {"tls_cert", options.tls_cert_file},
       {"tls_client_ca", options.tls_client_ca_file},
       {"metrics_tls", options.metrics_tls ? "true" : "false"},
       {"tls_reload_seconds", absl::ToInt64Seconds(options.tls_reload_interval)},
       {"http_threads", options.http_threads},
       {"memory_budget_mb", options.memory_budget_bytes >> 20},
       {"max_concurrent_streams", options.max_concurrent_streams},
       {"grpc_keepalive_time_ms", absl::ToInt64Milliseconds(options.keepalive_time)},
       {"grpc_keepalive_timeout_ms", absl::ToInt64Milliseconds(options.keepalive_timeout)},
       {"grpc_min_client_ping_interval_ms", absl::ToInt64Milliseconds(options.min_client_ping_interval)},
       {"grpc_max_connection_age_seconds", absl::ToInt64Seconds(options.max_connection_age)},
       {"max_shadow_in_flight", options.max_shadow_in_flight},
       {"http_max_body_mb", options.http_max_body_bytes >> 20},
       {"http_max_infer_in_flight", options.http_max_infer_in_flight},
       {"model_control_mode", absl::GetFlag(FLAGS_model_control_mode)},
       {"repository_poll_seconds", absl::GetFlag(FLAGS_repository_poll_seconds)},
       {"unload_grace_seconds", absl::GetFlag(FLAGS_unload_grace_seconds)},
       {"load_model", absl::StrJoin(options.model_control.startup_models, ",")},
       {"model_load_threads", options.model_control.load_threads},
       {"cores", std::thread::hardware_concurrency()}});

  microbatch::InferenceServer server(options);
  if (absl::Status s = server.StartListening(); !s.ok()) {
    Log(LogLevel::kError, "startup_failed", {{"message", s.message()}});
    return 1;
  }
  // Models load on another thread while this one waits for a signal; a failed
  // load signals this thread itself.
  std::atomic<int> load_result{-1};
  std::thread loader([&] {
    absl::Status s = server.LoadModels();
    if (!s.ok()) {
      Log(LogLevel::kError, "model_load_failed", {{"message", s.message()}});
      load_result = 1;
      kill(getpid(), SIGTERM);
      return;
    }
    load_result = 0;
  });

  const int signal = WaitForSignal(signals);
  loader.join();
  if (load_result.load() != 0) {
    server.Shutdown(absl::ZeroDuration());
    return 1;
  }
  Log(LogLevel::kInfo, "draining",
      {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}, {"drain_seconds", drain_seconds}});
  server.BeginDrain();
  absl::SleepFor(absl::Seconds(drain_seconds));
  Log(LogLevel::kInfo, "shutting_down", {{"grace_seconds", grace_seconds}});
  server.Shutdown(absl::Seconds(grace_seconds));
  Log(LogLevel::kInfo, "stopped");
  return 0;
}
