// Shadow traffic (README "Model lifecycle", issue #12) with the fake backend
// (tests/service/fake_torch_backend.cc), so that it also runs under
// ThreadSanitizer: a slow shadow candidate (20 ms per run) mirrored from every
// request must not add latency to the primary's answers.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microbatch/v1/model_control.grpc.pb.h"
#include "server/service/server.h"
#include "tests/server/loopback_server.h"
#include "tests/server/metrics_text.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Floats;
using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::InferenceStub;
using ::microbatch::testing::Sample;
using ::microbatch::testing::TempDir;

// "double" v1: y = 2x (fast); v2: the same answers, 20 ms per run. Both
// served; "stable" names v1 (see SetUp).
void WriteRepository(const std::string& root) {
  std::filesystem::create_directories(root + "/double/1");
  std::filesystem::create_directories(root + "/double/2");
  std::ofstream(root + "/double/1/model.pt") << "fake";
  std::ofstream(root + "/double/2/model.pt") << "sleep:20";
  std::ofstream(root + "/double/config.pbtxt")
      << "input { name: \"x\" dtype: FP32 dims: [4] }\n"
         "output { name: \"y\" dtype: FP32 dims: [4] tuple_index: 0 }\n"
         "max_batch_size: 8\ninstance_count: 2\nintra_op_threads: 1\n"
         "warmup_batch_sizes: [1]\n"
         "version_policy { all: true }\n";
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

class ShadowLatencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>("shadow_latency_test");
    WriteRepository(dir_->path() + "/models");
    ServerOptions options = testing::LoopbackOptions(dir_->path() + "/models");
    options.http_threads = 2;
    options.model_control.mode = ControlMode::kExplicit;
    server_ = std::make_unique<InferenceServer>(options);
    ASSERT_TRUE(server_->StartListening().ok());
    ASSERT_TRUE(server_->LoadModels().ok());
    // Unpinned requests go to v1. (Set here, not with version_labels in
    // config.pbtxt: a protobuf map field crashes under ThreadSanitizer, whose
    // build of map_field.h has a layout Debian's libprotobuf does not.)
    ASSERT_TRUE(server_->models()->SetLabel("double", "stable", 1).ok());
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(10));
  }

  grpc::Status SetShadow(int64_t version, double fraction) {
    auto stub = v1::ModelControl::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->grpc_port()), grpc::InsecureChannelCredentials()));
    v1::SetShadowRequest request;
    request.set_model("double");
    request.set_version(version);
    request.set_fraction(fraction);
    v1::SetShadowResponse response;
    grpc::ClientContext context;
    return stub->SetShadow(&context, request, &response);
  }

  // kThreads callers send `per_thread` requests each; every latency in ms.
  // Every answer must be v1's, and right.
  std::vector<double> Round(int per_thread) {
    constexpr int kThreads = 4;
    std::vector<std::vector<double>> latencies(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        auto stub = InferenceStub(server_->grpc_port());
        for (int i = 0; i < per_thread; ++i) {
          const std::vector<float> x = {static_cast<float>(t), static_cast<float>(i), 1, -1};
          v1::PredictRequest request;
          request.set_model("double");
          request.set_request_id(absl::StrCat("r-", t, "-", i));
          *request.add_inputs() = Fp32Tensor("x", {1, 4}, x);
          v1::PredictResponse response;
          grpc::ClientContext context;
          context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
          const absl::Time start = absl::Now();
          grpc::Status s = stub->Predict(&context, request, &response);
          latencies[t].push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
          ASSERT_TRUE(s.ok()) << s.error_message();
          EXPECT_EQ(response.version(), 1);
          EXPECT_EQ(Floats(response.outputs(0)), (std::vector<float>{2.0f * t, 2.0f * i, 2, -2}));
        }
      });
    }
    for (auto& t : threads) t.join();
    std::vector<double> all;
    for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    return all;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<InferenceServer> server_;
};

TEST_F(ShadowLatencyTest, SlowShadowAddsNoPrimaryLatency) {
  Round(50);  // warm-up: connections, batch time estimates
  std::vector<double> off, on;
  // Rounds alternate so that both see the same machine noise.
  for (int round = 0; round < 4; ++round) {
    ASSERT_TRUE(SetShadow(0, 0).ok());
    std::vector<double> l = Round(150);
    off.insert(off.end(), l.begin(), l.end());
    ASSERT_TRUE(SetShadow(2, 1.0).ok());
    l = Round(150);
    on.insert(on.end(), l.begin(), l.end());
  }
  ASSERT_TRUE(SetShadow(0, 0).ok());

  const std::string metrics = server_->metrics().Expose();
  const double compared =
      Sample(metrics, "microbatch_shadow_requests_total{model=\"double\",version=\"2\",result=\"compared\"}");
  const double dropped =
      Sample(metrics, "microbatch_shadow_requests_total{model=\"double\",version=\"2\",result=\"dropped\"}");
  const double errors =
      Sample(metrics, "microbatch_shadow_requests_total{model=\"double\",version=\"2\",result=\"error\"}");
  EXPECT_GT(compared, 0);
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(Sample(metrics, "microbatch_shadow_argmax_mismatch_rows_total{model=\"double\",version=\"2\"}"), 0);
  // Shadow runs are not requests of the candidate.
  EXPECT_LE(Sample(metrics, "microbatch_requests_total{model=\"double\",version=\"2\",method=\"Predict\",code=\"OK\"}"),
            0);

  const double p50_off = Percentile(off, 0.5), p50_on = Percentile(on, 0.5);
  const double p99_off = Percentile(off, 0.99), p99_on = Percentile(on, 0.99);
  std::cout << "primary latency over " << off.size() << " requests each: shadow off p50 " << p50_off
            << " ms p99 " << p99_off << " ms; slow shadow on p50 " << p50_on << " ms p99 " << p99_on
            << " ms (p99 ratio " << p99_on / p99_off << "); shadow runs compared " << compared
            << ", dropped " << dropped << "\n";
  // A shadow the caller waited for would add its 20 ms to every request. The
  // absolute allowances absorb a busy machine's scheduling noise.
  EXPECT_LT(p50_on, p50_off * 1.10 + 2.0);
  EXPECT_LT(p99_on, p99_off * 1.10 + 5.0);
}

}  // namespace
}  // namespace microbatch
