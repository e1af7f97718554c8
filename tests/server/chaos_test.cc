// Chaos: the real microbatch-server is killed with SIGKILL (no drain, no
// resume offset) in the middle of a BatchPredict job run by the real
// `microbatch batch` CLI, and in the middle of Predict load; it is restarted
// on the same model repository. The job resumed with --resume must hold
// every row exactly once with the right values; Predict callers may see
// errors while it is down, never a wrong answer, and succeed after it is back.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <cstdio>
#include <thread>

#include "client/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/demo_models.h"
#include "tests/server/server_process.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Floats;
using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::ServerProcess;
using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;

constexpr int kColumns = 4;

// Row r of the input: its own index first, so that the identity model's
// output shows which input row every output row came from.
std::vector<float> Row(int64_t r) {
  return {static_cast<float>(r), static_cast<float>(r % 977) * 0.5f, -static_cast<float>(r),
          static_cast<float>(r % 13)};
}

ServerProcess* StartServer(const std::string& repository, int port, const std::string& log) {
  return new ServerProcess(MICROBATCH_SERVER_BIN,
                           {"--model_repository=" + repository,
                            "--grpc_port=" + std::to_string(port), "--metrics_port=-1",
                            "--host=127.0.0.1", "--drain_seconds=0"},
                           log);
}

// Waits until the server at `server` is ready; returns its gRPC port (0 on
// timeout).
int WaitReady(ServerProcess& server) {
  const int port = server.WaitForGrpcPort();
  if (port == 0) return 0;
  if (server.WaitForLog("server_ready", std::chrono::seconds(120)).empty()) return 0;
  return port;
}

int64_t CompleteRows(const std::string& npy) {
  absl::StatusOr<int64_t> rows = CountCompleteRows(npy);
  return rows.ok() ? *rows : 0;
}

TEST(ChaosTest, SigkillDuringBatchJobThenResumeGivesEveryRowOnce) {
  TempDir dir("chaos_batch_test");
  DemoModelOptions models;
  models.models = {"identity"};
  ASSERT_TRUE(WriteModelRepository(dir.path() + "/models", models).ok());
  constexpr int64_t kRows = 200000;
  const std::string in = dir.path() + "/in.npy";
  const std::string out = dir.path() + "/out.npy";
  {
    auto writer = NpyWriter::Create(in, DType::kFloat32, {kColumns});
    ASSERT_TRUE(writer.ok());
    std::vector<float> block;
    for (int64_t r = 0; r < kRows; ++r) {
      const std::vector<float> row = Row(r);
      block.insert(block.end(), row.begin(), row.end());
    }
    ASSERT_TRUE((*writer)->WriteRows({reinterpret_cast<const char*>(block.data()), block.size() * 4}).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
  }

  std::unique_ptr<ServerProcess> server(StartServer(dir.path() + "/models", 0, dir.path() + "/server1.log"));
  const int port = WaitReady(*server);
  ASSERT_GT(port, 0) << server->Log();
  const std::string target = "--target=127.0.0.1:" + std::to_string(port);
  // Small chunks: the job takes long enough to be killed midway.
  ServerProcess job(MICROBATCH_CLI_BIN,
                    {"batch", target, "--model=identity", "--input=" + in, "--output=" + out,
                     "--chunk-rows=50", "--window=2"},
                    dir.path() + "/job1.log");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (CompleteRows(out) < 2000 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  server->Signal(SIGKILL);
  EXPECT_EQ(server->Wait(std::chrono::seconds(30)), 128 + SIGKILL);
  const int job_exit = job.Wait(std::chrono::seconds(60));
  ASSERT_NE(job_exit, -1) << "the CLI hangs after the server died: " << job.Log();
  ASSERT_NE(job_exit, 0) << "the job finished before the kill; make it longer: " << job.Log();
  EXPECT_THAT(job.Log(), HasSubstr("rerun with --resume"));
  const int64_t kept = CompleteRows(out);
  ASSERT_GT(kept, 0);
  ASSERT_LT(kept, kRows);

  // Restart on the same repository (a new port) and resume.
  server.reset(StartServer(dir.path() + "/models", 0, dir.path() + "/server2.log"));
  const int port2 = WaitReady(*server);
  ASSERT_GT(port2, 0) << server->Log();
  ServerProcess resume(MICROBATCH_CLI_BIN,
                       {"batch", "--target=127.0.0.1:" + std::to_string(port2), "--model=identity",
                        "--input=" + in, "--output=" + out, "--chunk-rows=1000", "--resume"},
                       dir.path() + "/job2.log");
  ASSERT_EQ(resume.Wait(std::chrono::seconds(120)), 0) << resume.Log();
  EXPECT_THAT(resume.Log(), HasSubstr("resuming after " + std::to_string(kept) + " rows"));
  std::cerr << "killed after " << kept << " of " << kRows << " rows were written\n";

  // Every row exactly once, in order, equal to the input (identity model).
  auto reader = NpyReader::Open(out);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ((*reader)->shape(), (std::vector<int64_t>{kRows, kColumns}));
  std::string bytes;
  ASSERT_TRUE((*reader)->ReadRows(0, kRows, &bytes).ok());
  ASSERT_EQ(bytes.size(), static_cast<size_t>(kRows * kColumns * 4));
  const float* got = reinterpret_cast<const float*>(bytes.data());
  for (int64_t r = 0; r < kRows; ++r) {
    const std::vector<float> want = Row(r);
    for (int c = 0; c < kColumns; ++c) {
      ASSERT_EQ(got[r * kColumns + c], want[c]) << "row " << r << " column " << c << " (" << kept
                                                 << " rows were kept from the killed run)";
    }
  }
  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(std::chrono::seconds(30)), 0) << server->Log();
}

TEST(ChaosTest, SigkillDuringPredictLoadGivesErrorsNeverWrongAnswers) {
  TempDir dir("chaos_predict_test");
  DemoModelOptions models;
  models.models = {"identity"};
  ASSERT_TRUE(WriteModelRepository(dir.path() + "/models", models).ok());
  std::unique_ptr<ServerProcess> server(StartServer(dir.path() + "/models", 0, dir.path() + "/server1.log"));
  const int port = WaitReady(*server);
  ASSERT_GT(port, 0) << server->Log();

  // Callers reconnect quickly once the server is back. (Not
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: that is the connect timeout, and a
  // short one makes handshakes on a busy machine fail.)
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                           grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Inference::NewStub(channel);

  enum Phase { kBefore, kDown, kAfter };
  std::atomic<int> phase{kBefore};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok_before{0}, ok_after{0}, errors{0}, wrong{0};
  std::mutex error_mu;
  std::set<std::string> error_kinds;
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int64_t i = 0; !stop.load(); ++i) {
        const int64_t first = t * 1000000 + i;
        const int rows = 1 + static_cast<int>(i % 3);
        std::vector<float> values;
        for (int r = 0; r < rows; ++r) {
          const std::vector<float> row = Row(first + r);
          values.insert(values.end(), row.begin(), row.end());
        }
        v1::PredictRequest request;
        request.set_model("identity");
        *request.add_inputs() = Fp32Tensor("x", {rows, kColumns}, values);
        const int phase_at_start = phase.load();
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        v1::PredictResponse response;
        grpc::Status status = stub->Predict(&context, request, &response);
        if (status.ok()) {
          if (response.outputs_size() != 1 || Floats(response.outputs(0)) != values) ++wrong;
          if (phase_at_start == kBefore) ++ok_before;
          if (phase_at_start == kAfter) ++ok_after;
        } else {
          ++errors;
          std::lock_guard<std::mutex> lock(error_mu);
          error_kinds.insert(std::to_string(status.error_code()) + ": " + status.error_message());
          // While the server is down or loading: refused, never queued forever.
          EXPECT_THAT(status.error_code(), ::testing::AnyOf(grpc::UNAVAILABLE))
              << status.error_message();
          EXPECT_NE(phase_at_start, kAfter) << "failed after the restart: " << status.error_message();
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
    });
  }
  const auto until = [](auto predicate, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!predicate() && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return predicate();
  };
  EXPECT_TRUE(until([&] { return ok_before.load() >= 200; }, std::chrono::seconds(60)));
  server->Signal(SIGKILL);
  phase = kDown;
  EXPECT_EQ(server->Wait(std::chrono::seconds(30)), 128 + SIGKILL);
  // Down for a moment: callers see errors.
  EXPECT_TRUE(until([&] { return errors.load() >= 4; }, std::chrono::seconds(30)));

  // The same port again, so the callers' channel finds it.
  server.reset(StartServer(dir.path() + "/models", port, dir.path() + "/server2.log"));
  ASSERT_EQ(WaitReady(*server), port) << server->Log();
  // Once the callers' channel has reconnected, every new call must succeed.
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  phase = kAfter;
  EXPECT_TRUE(until([&] { return ok_after.load() >= 200; }, std::chrono::seconds(60)));
  stop = true;
  for (auto& c : callers) c.join();

  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GE(ok_before.load(), 200);
  EXPECT_GE(ok_after.load(), 200);
  EXPECT_GT(errors.load(), 0);
  for (const std::string& kind : error_kinds) std::cerr << "error seen: " << kind << "\n";
  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(std::chrono::seconds(30)), 0) << server->Log();
}

}  // namespace
}  // namespace microbatch
