// microbatch-lifecycle-bench: what a version swap costs on a live server
// (issue #12). Starts microbatch-server (poll mode) on a fresh repository
// holding version 1 of a demo model, keeps a closed-loop Predict load on it,
// then publishes versions 2, 3, ... one after another by atomic rename and
// reports:
//   (a) the time from the rename to the first request the new version
//       answers (and to LOADING / READY in the index, and to the old
//       version's unload);
//   (b) Predict latency (p50, p99, max) in steady state and during the swaps
//       (from the new version's LOADING to its first answer + 0.5 s, and
//       around the old version's unload), and every non-OK answer.
// scripts/lifecycle_bench.sh runs it with the default poll interval and with
// --repository_poll_seconds=1.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "microbatch/v1/inference.grpc.pb.h"
#include "microbatch/v1/model_control.grpc.pb.h"
#include "server/backend/demo_models.h"

ABSL_FLAG(std::string, server_bin, "",
          "The microbatch-server binary (default: microbatch-server next to this binary)");
ABSL_FLAG(std::string, work_dir, "/tmp/microbatch-lifecycle-bench",
          "Scratch directory for the repository and the server log (emptied first)");
ABSL_FLAG(std::string, model, "mlp_bench", "Demo model to serve and swap (mlp, mlp_bench, ...)");
ABSL_FLAG(int, repository_poll_seconds, -1,
          "Passed to the server; -1 leaves the server's default");
ABSL_FLAG(int, unload_grace_seconds, 2, "Passed to the server");
ABSL_FLAG(int, swaps, 3, "Versions published one after another (2, 3, ...)");
ABSL_FLAG(int, concurrency, 4, "Closed-loop callers");
ABSL_FLAG(double, steady_seconds, 4, "Steady-state measurement before the first swap");
ABSL_FLAG(double, settle_seconds, 1, "Pause after each swap (old version unloaded)");

namespace microbatch {
namespace {

namespace fs = std::filesystem;

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

struct Sent {
  absl::Time sent;
  double ms = 0;
  int64_t version = 0;
  bool ok = false;
};

struct Stats {
  size_t n = 0;
  double p50 = 0, p99 = 0, max = 0;
};

Stats Summarize(std::vector<double> ms) {
  Stats s;
  s.n = ms.size();
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  s.p50 = ms[(ms.size() - 1) / 2];
  s.p99 = ms[static_cast<size_t>(0.99 * static_cast<double>(ms.size() - 1))];
  s.max = ms.back();
  return s;
}

// First time the index showed each version in each state.
struct Seen {
  std::map<int64_t, absl::Time> loading, ready, unavailable_after_ready;
};

int Run(const char* argv0) {
  const std::string model = absl::GetFlag(FLAGS_model);
  const int swaps = absl::GetFlag(FLAGS_swaps);
  const fs::path work = absl::GetFlag(FLAGS_work_dir);
  std::string server_bin = absl::GetFlag(FLAGS_server_bin);
  if (server_bin.empty()) {
    server_bin = (fs::absolute(fs::path(argv0)).parent_path() / "microbatch-server").string();
  }
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work / "models" / model);
  DemoModelOptions demo;
  demo.models = {model};
  demo.versions = swaps + 1;
  if (absl::Status s = WriteModelRepository((work / "staging").string(), demo); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  const fs::path staged = work / "staging" / model;
  const fs::path repo = work / "models" / model;
  fs::copy_file(staged / "config.pbtxt", repo / "config.pbtxt");
  fs::copy(staged / "1", repo / "1", fs::copy_options::recursive);

  const int port = FreePort();
  std::vector<std::string> args = {server_bin,
                                   "--host=127.0.0.1",
                                   absl::StrCat("--grpc_port=", port),
                                   "--metrics_port=-1",
                                   absl::StrCat("--model_repository=", (work / "models").string()),
                                   absl::StrCat("--unload_grace_seconds=", absl::GetFlag(FLAGS_unload_grace_seconds))};
  const int poll = absl::GetFlag(FLAGS_repository_poll_seconds);
  if (poll >= 0) args.push_back(absl::StrCat("--repository_poll_seconds=", poll));
  const std::string log_path = (work / "server.log").string();
  const pid_t pid = fork();
  if (pid == 0) {
    if (std::freopen(log_path.c_str(), "w", stderr) == nullptr) _exit(127);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(server_bin.c_str(), argv.data());
    _exit(127);
  }
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  auto stub = v1::Inference::NewStub(channel);
  auto control = v1::ModelControl::NewStub(channel);
  const int64_t features = model == "mlp_bench" ? 256 : 16;
  v1::PredictRequest request;
  request.set_model(model);
  v1::Tensor* x = request.add_inputs();
  x->set_name("x");
  x->set_dtype(v1::FP32);
  x->add_shape(1);
  x->add_shape(features);
  std::vector<float> values(features);
  for (int64_t i = 0; i < features; ++i) values[i] = static_cast<float>(i % 7) * 0.1f;
  x->set_data(values.data(), values.size() * sizeof(float));

  bool up = false;
  for (absl::Time end = absl::Now() + absl::Minutes(3); absl::Now() < end && !up;) {
    v1::PredictResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    up = stub->Predict(&context, request, &response).ok();
    if (!up) absl::SleepFor(absl::Milliseconds(50));
  }
  if (!up) {
    std::cerr << "the server did not come up; see " << log_path << "\n";
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return 1;
  }

  // The load.
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Sent> all;
  std::map<int64_t, absl::Time> first_answer;
  std::vector<std::thread> callers;
  for (int t = 0; t < absl::GetFlag(FLAGS_concurrency); ++t) {
    callers.emplace_back([&] {
      auto own = v1::Inference::NewStub(grpc::CreateChannel(
          absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
      std::vector<Sent> mine;
      int64_t newest = 0;
      while (!stop.load()) {
        v1::PredictResponse response;
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        const absl::Time sent = absl::Now();
        grpc::Status s = own->Predict(&context, request, &response);
        const absl::Time got = absl::Now();
        mine.push_back({sent, absl::ToDoubleMilliseconds(got - sent), response.version(), s.ok()});
        if (s.ok() && response.version() > newest) {
          newest = response.version();
          std::lock_guard<std::mutex> lock(mu);
          auto [it, inserted] = first_answer.try_emplace(newest, got);
          if (!inserted && got < it->second) it->second = got;
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      all.insert(all.end(), mine.begin(), mine.end());
    });
  }
  // The index, every 20 ms.
  Seen seen;
  std::thread monitor([&] {
    while (!stop.load()) {
      v1::RepositoryIndexRequest index_request;
      index_request.set_model(model);
      v1::RepositoryIndexResponse index;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      if (control->RepositoryIndex(&context, index_request, &index).ok()) {
        const absl::Time now = absl::Now();
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& row : index.versions()) {
          if (row.state() == v1::VERSION_STATE_LOADING) seen.loading.try_emplace(row.version(), now);
          if (row.state() == v1::VERSION_STATE_READY) seen.ready.try_emplace(row.version(), now);
          if (row.state() == v1::VERSION_STATE_UNAVAILABLE && seen.ready.count(row.version())) {
            seen.unavailable_after_ready.try_emplace(row.version(), now);
          }
        }
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  });

  const absl::Time steady_start = absl::Now() + absl::Milliseconds(500);
  absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_steady_seconds)));
  const absl::Time steady_end = absl::Now();
  std::map<int64_t, absl::Time> renamed;
  bool failed = false;
  for (int64_t v = 2; v <= swaps + 1 && !failed; ++v) {
    const fs::path tmp = repo / absl::StrCat(".", v, ".tmp");
    fs::copy(staged / std::to_string(v), tmp, fs::copy_options::recursive);
    fs::rename(tmp, repo / std::to_string(v));
    renamed[v] = absl::Now();
    auto wait_for = [&](auto done, absl::Duration timeout) {
      for (absl::Time end = absl::Now() + timeout; absl::Now() < end;) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (done()) return true;
        }
        absl::SleepFor(absl::Milliseconds(10));
      }
      return false;
    };
    if (!wait_for([&] { return first_answer.count(v) > 0; }, absl::Seconds(120)) ||
        !wait_for([&] { return seen.unavailable_after_ready.count(v - 1) > 0; },
                  absl::Seconds(absl::GetFlag(FLAGS_unload_grace_seconds) + 60))) {
      std::cerr << "version " << v << " did not take over; see " << log_path << "\n";
      failed = true;
    }
    absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_settle_seconds)));
  }
  stop = true;
  for (auto& t : callers) t.join();
  monitor.join();
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);

  // The report.
  std::cout << absl::StrFormat(
      "model %s, %d callers, poll interval %s, unload grace %d s\n", model,
      absl::GetFlag(FLAGS_concurrency),
      poll < 0 ? std::string("default (5 s)") : absl::StrCat(poll, " s"),
      absl::GetFlag(FLAGS_unload_grace_seconds));
  std::cout << "swap  rename->LOADING  rename->READY  load+warm  rename->first answer  rename->old unloaded\n";
  std::vector<double> to_first;
  std::vector<std::pair<absl::Time, absl::Time>> windows, unload_windows, loading_windows,
      switch_windows;
  for (const auto& [v, at] : renamed) {
    auto ms = [&](const std::map<int64_t, absl::Time>& m, int64_t key) {
      auto it = m.find(key);
      return it == m.end() ? -1.0 : absl::ToDoubleMilliseconds(it->second - at);
    };
    const double loading = ms(seen.loading, v), ready = ms(seen.ready, v), first = ms(first_answer, v),
                 gone = ms(seen.unavailable_after_ready, v - 1);
    to_first.push_back(first);
    std::cout << absl::StrFormat("v%-3d %13.0f ms %12.0f ms %7.0f ms %18.0f ms %18.0f ms\n", v, loading,
                                 ready, ready - loading, first, gone);
    // The swap proper: load and warm-up, the switch, 0.5 s of the new version.
    const absl::Time from = seen.loading.count(v) ? seen.loading[v] - absl::Milliseconds(50) : at;
    const absl::Time to = first_answer.count(v) ? first_answer[v] + absl::Milliseconds(500)
                                                : at + absl::Seconds(10);
    windows.emplace_back(from, to);
    if (first_answer.count(v)) {
      loading_windows.emplace_back(from, first_answer[v]);
      switch_windows.emplace_back(first_answer[v], to);
    }
    // The old version's drain and unload, +-0.5 s.
    if (seen.unavailable_after_ready.count(v - 1)) {
      const absl::Time gone = seen.unavailable_after_ready[v - 1];
      unload_windows.emplace_back(gone - absl::Milliseconds(500), gone + absl::Milliseconds(500));
    }
  }
  std::vector<double> steady, swapping, unloading, loading, switching;
  int64_t errors = 0, total = 0;
  for (const Sent& s : all) {
    ++total;
    if (!s.ok) {
      ++errors;
      continue;
    }
    if (s.sent >= steady_start && s.sent < steady_end) steady.push_back(s.ms);
    for (const auto& [from, to] : windows) {
      if (s.sent >= from && s.sent < to) swapping.push_back(s.ms);
    }
    for (const auto& [from, to] : unload_windows) {
      if (s.sent >= from && s.sent < to) unloading.push_back(s.ms);
    }
    for (const auto& [from, to] : loading_windows) {
      if (s.sent >= from && s.sent < to) loading.push_back(s.ms);
    }
    for (const auto& [from, to] : switch_windows) {
      if (s.sent >= from && s.sent < to) switching.push_back(s.ms);
    }
  }
  const Stats st = Summarize(steady), sw = Summarize(swapping), un = Summarize(unloading);
  std::sort(to_first.begin(), to_first.end());
  std::cout << absl::StrFormat("rename -> first answer by the new version: median %.0f ms, max %.0f ms\n",
                               to_first.empty() ? -1.0 : to_first[(to_first.size() - 1) / 2],
                               to_first.empty() ? -1.0 : to_first.back());
  std::cout << absl::StrFormat("Predict steady:      n=%6zu  p50 %7.3f ms  p99 %7.3f ms  max %7.2f ms\n",
                               st.n, st.p50, st.p99, st.max);
  std::cout << absl::StrFormat("Predict during swap: n=%6zu  p50 %7.3f ms  p99 %7.3f ms  max %7.2f ms"
                               "  (p99 x%.2f)\n",
                               sw.n, sw.p50, sw.p99, sw.max, st.p99 > 0 ? sw.p99 / st.p99 : 0.0);
  for (const auto& [name, part] : {std::make_pair("  of which loading:  ", Summarize(loading)),
                                    std::make_pair("  of which switched: ", Summarize(switching))}) {
    std::cout << absl::StrFormat("%s n=%6zu  p50 %7.3f ms  p99 %7.3f ms  max %7.2f ms\n", name, part.n,
                                 part.p50, part.p99, part.max);
  }
  std::cout << absl::StrFormat("Predict around unload: n=%6zu  p50 %7.3f ms  p99 %7.3f ms  max %7.2f ms"
                               "  (p99 x%.2f)\n",
                               un.n, un.p50, un.p99, un.max, st.p99 > 0 ? un.p99 / st.p99 : 0.0);
  std::cout << "(during swap: from the new version's LOADING - 50 ms to its first answer (loading), then "
               "500 ms (switched); "
               "around unload: the old version's UNAVAILABLE +- 500 ms)\n";
  std::cout << "requests " << total << ", non-OK " << errors << "\n";
  return failed || errors > 0 ? 1 : 0;
}

}  // namespace
}  // namespace microbatch

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures a version swap on a live microbatch-server (poll mode): time from an atomic "
      "rename to the first answer by the new version, and Predict latency during swaps vs steady "
      "state.");
  absl::ParseCommandLine(argc, argv);
  return microbatch::Run(argv[0]);
}
