// The response cache through real gRPC: hits are byte-identical and skip the
// model, identical requests in flight run once (single flight), outputs are
// selected per request, and a reloaded version starts with an empty cache.
#include <fstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microbatch/v1/model_control.grpc.pb.h"
#include "server/backend/demo_models.h"
#include "server/service/server.h"
#include "tests/server/http_get.h"
#include "tests/server/loopback_server.h"
#include "tests/server/metrics_text.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::HttpGet;
using ::microbatch::testing::InferenceStub;
using ::microbatch::testing::Sample;
using ::microbatch::testing::TempDir;

class ResponseCacheE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DemoModelOptions models;
    models.models = {"mlp"};
    ASSERT_TRUE(WriteModelRepository(dir_.path(), models).ok());
    // Batches wait up to 300 ms for more rows: identical requests sent
    // together are all in flight at once.
    std::ofstream(dir_.path() + "/mlp/config.pbtxt", std::ios::app)
        << "response_cache { max_bytes: 1048576 }\nmax_queue_delay_microseconds: 300000\n";
    ServerOptions options = ::microbatch::testing::LoopbackOptions(dir_.path());
    options.model_control.mode = ControlMode::kExplicit;
    server_ = std::make_unique<InferenceServer>(options);
    ASSERT_TRUE(server_->StartListening().ok());
    absl::Status loaded = server_->LoadModels();
    ASSERT_TRUE(loaded.ok()) << loaded;
  }
  void TearDown() override { server_->Shutdown(absl::Seconds(5)); }

  v1::PredictRequest Request(float seed, const std::vector<std::string>& outputs = {}) {
    v1::PredictRequest request;
    request.set_model("mlp");
    std::vector<float> row(16);
    for (int i = 0; i < 16; ++i) row[i] = seed + 0.01f * static_cast<float>(i);
    *request.add_inputs() = Fp32Tensor("x", {1, 16}, row);
    for (const std::string& o : outputs) request.add_outputs(o);
    return request;
  }
  grpc::Status Predict(const v1::PredictRequest& request, v1::PredictResponse* response) {
    grpc::ClientContext context;
    return InferenceStub(server_->grpc_port())->Predict(&context, request, response);
  }
  double Metric(const std::string& series) {
    return Sample(HttpGet(server_->metrics_port(), "/metrics").body, series);
  }
  double Lookups(const std::string& result) {
    return Metric("microbatch_cache_lookups_total{model=\"mlp\",version=\"1\",result=\"" + result + "\"}");
  }
  double Rows() { return Metric("microbatch_inference_rows_total{model=\"mlp\",version=\"1\"}"); }

  TempDir dir_{"response_cache_e2e"};
  std::unique_ptr<InferenceServer> server_;
};

TEST_F(ResponseCacheE2eTest, HitIsByteIdenticalAndSkipsTheModel) {
  v1::PredictResponse first, second, other;
  ASSERT_TRUE(Predict(Request(0.5f), &first).ok());
  const double rows = Rows();
  ASSERT_TRUE(Predict(Request(0.5f), &second).ok());
  EXPECT_EQ(Rows(), rows) << "a hit ran the model";
  ASSERT_EQ(second.outputs_size(), 2);
  EXPECT_EQ(second.outputs(0).data(), first.outputs(0).data());
  EXPECT_EQ(second.outputs(1).data(), first.outputs(1).data());
  EXPECT_EQ(second.version(), 1);
  EXPECT_EQ(Lookups("hit"), 1);
  EXPECT_EQ(Lookups("miss"), 1);
  // Different bytes: a miss, a different answer.
  ASSERT_TRUE(Predict(Request(0.75f), &other).ok());
  EXPECT_NE(other.outputs(0).data(), first.outputs(0).data());
  EXPECT_EQ(Lookups("miss"), 2);
  EXPECT_GT(Metric("microbatch_cache_bytes{model=\"mlp\",version=\"1\"}"), 0);
  EXPECT_EQ(Metric("microbatch_cache_entries{model=\"mlp\",version=\"1\"}"), 2);
}

TEST_F(ResponseCacheE2eTest, AHitReturnsOnlyTheOutputsAskedFor) {
  v1::PredictResponse full, probs;
  ASSERT_TRUE(Predict(Request(1.5f), &full).ok());
  ASSERT_TRUE(Predict(Request(1.5f, {"probs"}), &probs).ok());
  EXPECT_EQ(Lookups("hit"), 1);
  ASSERT_EQ(probs.outputs_size(), 1);
  EXPECT_EQ(probs.outputs(0).name(), "probs");
  EXPECT_EQ(probs.outputs(0).data(), full.outputs(1).data());
}

TEST_F(ResponseCacheE2eTest, IdenticalRequestsInFlightRunOnce) {
  const double rows = std::max(0.0, Rows());
  constexpr int kCallers = 8;
  std::vector<std::thread> callers;
  std::vector<v1::PredictResponse> responses(kCallers);
  std::vector<grpc::Status> statuses(kCallers);
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] { statuses[i] = Predict(Request(2.5f), &responses[i]); });
  }
  for (auto& t : callers) t.join();
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_EQ(responses[i].outputs(0).data(), responses[0].outputs(0).data());
  }
  // One row ran; the others joined it or hit the cache after it.
  EXPECT_EQ(Rows() - rows, 1);
  EXPECT_EQ(Lookups("miss"), 1);
  EXPECT_EQ(Lookups("joined") + Lookups("hit"), kCallers - 1);
}

TEST_F(ResponseCacheE2eTest, AReloadedVersionStartsEmpty) {
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(Request(3.5f), &response).ok());
  ASSERT_TRUE(Predict(Request(3.5f), &response).ok());
  EXPECT_EQ(Lookups("hit"), 1);
  auto control = v1::ModelControl::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server_->grpc_port()), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    v1::UnloadModelRequest request;
    request.set_model("mlp");
    v1::UnloadModelResponse unloaded;
    grpc::Status status = control->UnloadModel(&context, request, &unloaded);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  {
    grpc::ClientContext context;
    v1::LoadModelRequest request;
    request.set_model("mlp");
    v1::LoadModelResponse loaded;
    grpc::Status status = control->LoadModel(&context, request, &loaded);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const double misses = Lookups("miss");
  ASSERT_TRUE(Predict(Request(3.5f), &response).ok());
  EXPECT_EQ(Lookups("miss"), misses + 1) << "the reloaded version answered from an old cache";
}

}  // namespace
}  // namespace microbatch
