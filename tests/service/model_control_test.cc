// microbatch.v1.ModelControl with the fake backend (so that it also runs
// under ThreadSanitizer): admin calls that wait for slow loads must not hold
// up the calls that do not wait.
#include <algorithm>
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
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::TempDir;

// `name`/1/model.pt with `content` (see fake_torch_backend.cc).
void WriteModel(const std::string& root, const std::string& name, const std::string& content) {
  std::filesystem::create_directories(root + "/" + name + "/1");
  std::ofstream(root + "/" + name + "/1/model.pt") << content;
  std::ofstream(root + "/" + name + "/config.pbtxt")
      << "input { name: \"x\" dtype: FP32 dims: [4] }\n"
         "output { name: \"y\" dtype: FP32 dims: [4] }\n"
         "max_batch_size: 8\ninstance_count: 1\nintra_op_threads: 1\nwarmup_batch_sizes: [1]\n";
}

TEST(ModelControlServiceTest, IndexAnswersWhileLoadsWait) {
  TempDir dir("model_control_test");
  const std::string root = dir.path() + "/models";
  WriteModel(root, "double", "fake");
  // Their warm-up runs take 1.5 s: LoadModel waits that long.
  WriteModel(root, "slow_a", "sleep:3000");
  WriteModel(root, "slow_b", "sleep:3000");
  ServerOptions options = testing::LoopbackOptions(root);
  options.metrics_port = -1;
  options.model_control.mode = ControlMode::kExplicit;
  options.model_control.startup_models = {"double"};
  InferenceServer server(options);
  ASSERT_TRUE(server.StartListening().ok());
  ASSERT_TRUE(server.LoadModels().ok());
  auto stub = v1::ModelControl::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server.grpc_port()), grpc::InsecureChannelCredentials()));

  std::vector<grpc::Status> loads(2);
  std::vector<std::thread> loaders;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 2; ++i) {
    loaders.emplace_back([&, i] {
      v1::LoadModelRequest request;
      request.set_model(i == 0 ? "slow_a" : "slow_b");
      v1::LoadModelResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      loads[i] = stub->LoadModel(&context, request, &response);
    });
  }
  // While the loads wait, the index keeps answering (and shows them).
  absl::Duration slowest;
  bool saw_both_loading = false;
  for (absl::Time end = start + absl::Milliseconds(2800); absl::Now() < end;) {
    v1::RepositoryIndexRequest request;
    v1::RepositoryIndexResponse index;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    const absl::Time asked = absl::Now();
    grpc::Status s = stub->RepositoryIndex(&context, request, &index);
    slowest = std::max(slowest, absl::Now() - asked);
    ASSERT_TRUE(s.ok()) << s.error_message();
    int loading = 0;
    for (const auto& row : index.versions()) {
      if (row.state() == v1::VERSION_STATE_LOADING) ++loading;
    }
    saw_both_loading = saw_both_loading || loading == 2;
    absl::SleepFor(absl::Milliseconds(50));
  }
  // The loads take 3 s: an index that waited for them would take seconds.
  // The bound leaves room for a loaded machine under ThreadSanitizer.
  EXPECT_LT(slowest, absl::Milliseconds(1500)) << "the index waited for the loads";
  EXPECT_TRUE(saw_both_loading);
  for (auto& t : loaders) t.join();
  for (const grpc::Status& load : loads) EXPECT_TRUE(load.ok()) << load.error_message();
  std::cout << "RepositoryIndex answered within " << absl::FormatDuration(slowest)
            << " while two LoadModel calls waited; the loads took "
            << absl::FormatDuration(absl::Now() - start) << "\n";
  server.Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace microbatch
