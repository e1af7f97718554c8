// Memory is bounded globally: many callers sending the largest allowed
// requests at once, plus many idle BatchPredict streams, never push the
// server's peak RSS past its budget plus a fixed overhead, and small requests
// are served throughout.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/demo_models.h"
#include "tests/server/server_process.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::ServerProcess;
using ::microbatch::testing::TempDir;

// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), or -1.
int64_t StatusKib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

TEST(MemoryBoundTest, LargeRequestsAndIdleStreamsStayWithinTheBudget) {
  TempDir dir("memory_bound_test");
  DemoModelOptions models;
  models.models = {"identity", "mlp"};
  ASSERT_TRUE(WriteModelRepository(dir.path() + "/models", models).ok());
  constexpr int64_t kBudgetMib = 48;
  constexpr int kMaxMessage = 9 << 20;
  ServerProcess server(MICROBATCH_SERVER_BIN,
                       {"--model_repository=" + dir.path() + "/models", "--grpc_port=0",
                        "--host=127.0.0.1", "--metrics_port=-1",
                        "--memory_budget_mb=" + std::to_string(kBudgetMib),
                        "--max_message_bytes=" + std::to_string(kMaxMessage)},
                       dir.path() + "/server.log");
  const int port = server.WaitForGrpcPort();
  ASSERT_GT(port, 0) << server.Log();
  ASSERT_FALSE(server.WaitForLog("server_ready", std::chrono::seconds(60)).empty()) << server.Log();
  const std::string target = "127.0.0.1:" + std::to_string(port);

  // Warm the allocator with one large request, then take the baseline.
  constexpr int64_t kFloats = 2 << 20;  // 8 MiB: the largest request that fits
  const v1::Tensor large = Fp32Tensor("x", {1, kFloats}, std::vector<float>(kFloats, 1.5f));
  auto predict = [&](v1::Inference::Stub* stub, const v1::Tensor& x, const std::string& model,
                     v1::PredictResponse* response) {
    v1::PredictRequest request;
    request.set_model(model);
    *request.add_inputs() = x;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub->Predict(&context, request, response);
  };
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  {
    auto stub = v1::Inference::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    v1::PredictResponse response;
    ASSERT_TRUE(predict(stub.get(), large, "identity", &response).ok());
  }
  const int64_t baseline_kib = StatusKib(server.pid(), "VmRSS");
  ASSERT_GT(baseline_kib, 0);

  // 40 idle BatchPredict streams, each on its own connection, header only.
  std::vector<std::shared_ptr<grpc::Channel>> idle_channels;
  std::vector<std::unique_ptr<grpc::ClientContext>> idle_contexts;
  std::vector<std::unique_ptr<grpc::ClientReaderWriter<v1::BatchPredictRequest,
                                                       v1::BatchPredictResponse>>> idle_streams;
  for (int i = 0; i < 40; ++i) {
    grpc::ChannelArguments own;
    own.SetInt("grpc.channel_id", i);  // a connection of its own
    idle_channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), own));
    auto stub = v1::Inference::NewStub(idle_channels.back());
    idle_contexts.push_back(std::make_unique<grpc::ClientContext>());
    idle_streams.push_back(stub->BatchPredict(idle_contexts.back().get()));
    v1::BatchPredictRequest header;
    header.mutable_header()->set_model("mlp");
    ASSERT_TRUE(idle_streams.back()->Write(header));
  }

  // 24 callers, each on its own connection, send 8 MiB requests at once.
  std::atomic<bool> stop{false};
  std::atomic<int> large_ok{0}, large_refused{0}, large_other{0}, small_ok{0}, small_failed{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 24; ++t) {
    callers.emplace_back([&, t] {
      grpc::ChannelArguments own = args;
      own.SetInt("grpc.channel_id", 100 + t);
      auto stub = v1::Inference::NewStub(
          grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), own));
      for (int i = 0; i < 4; ++i) {
        v1::PredictResponse response;
        grpc::Status status = predict(stub.get(), large, "identity", &response);
        if (status.ok()) {
          const bool right = response.outputs_size() == 1 &&
                             response.outputs(0).data() == large.data();
          (right ? large_ok : large_other)++;
        } else if (status.error_code() == grpc::RESOURCE_EXHAUSTED ||
                   status.error_code() == grpc::UNAVAILABLE) {
          // Our budget refuses (RESOURCE_EXHAUSTED); under transport memory
          // pressure gRPC closes connections (GOAWAY: UNAVAILABLE, retriable).
          ++large_refused;
        } else {
          ++large_other;
          ADD_FAILURE() << status.error_code() << " " << status.error_message();
        }
      }
    });
  }
  // Meanwhile one caller sends small requests; every one must be served. It
  // retries UNAVAILABLE as gRPC clients should (a connection closed by GOAWAY
  // under memory pressure), via the standard retry policy.
  std::thread small([&] {
    grpc::ChannelArguments retrying;
    retrying.SetServiceConfigJSON(R"({"methodConfig": [{
        "name": [{"service": "microbatch.v1.Inference"}],
        "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.01s", "maxBackoff": "0.2s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})");
    auto stub = v1::Inference::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), retrying));
    const v1::Tensor x = Fp32Tensor("x", {1, 16}, std::vector<float>(16, 0.5f));
    while (!stop.load()) {
      v1::PredictResponse response;
      grpc::Status status = predict(stub.get(), x, "mlp", &response);
      (status.ok() ? small_ok : small_failed)++;
      if (!status.ok()) ADD_FAILURE() << status.error_code() << " " << status.error_message();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  for (auto& caller : callers) caller.join();
  stop = true;
  small.join();

  const int64_t peak_kib = StatusKib(server.pid(), "VmHWM");
  const int64_t growth_mib = (peak_kib - baseline_kib) >> 10;
  // A fixed overhead on top of the budget: gRPC's per-connection buffers
  // (64 connections), allocator slack, thread stacks.
  constexpr int64_t kOverheadMib = 128;
  EXPECT_LE(growth_mib, kBudgetMib + kOverheadMib)
      << "baseline " << (baseline_kib >> 10) << " MiB, peak " << (peak_kib >> 10) << " MiB";
  EXPECT_GT(large_ok.load(), 0);
  EXPECT_GT(large_refused.load(), 0) << "the budget never filled; the test proves nothing";
  EXPECT_EQ(large_other.load(), 0);
  EXPECT_GT(small_ok.load(), 10);
  EXPECT_EQ(small_failed.load(), 0);
  std::printf("memory bound: budget %lld MiB, baseline RSS %lld MiB, peak RSS %lld MiB (+%lld), "
              "large ok %d refused %d, small ok %d\n",
              static_cast<long long>(kBudgetMib), static_cast<long long>(baseline_kib >> 10),
              static_cast<long long>(peak_kib >> 10), static_cast<long long>(growth_mib),
              large_ok.load(), large_refused.load(), small_ok.load());
  for (auto& stream : idle_streams) stream->WritesDone();
  for (auto& context : idle_contexts) context->TryCancel();
}

}  // namespace
}  // namespace microbatch
