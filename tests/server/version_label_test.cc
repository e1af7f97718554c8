// microbatch.v1 requests name a version by label (version_label): Predict
// and GetModelMetadata follow a relabel at once; a label and a number
// together are refused.
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microbatch/v1/model_control.grpc.pb.h"
#include "server/backend/demo_models.h"
#include "server/service/server.h"
#include "tests/server/loopback_server.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::InferenceStub;
using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;

TEST(VersionLabelTest, PredictAndMetadataFollowTheLabel) {
  TempDir dir("version_label_test");
  DemoModelOptions models;
  models.models = {"mlp"};
  models.versions = 2;
  ASSERT_TRUE(WriteModelRepository(dir.path(), models).ok());
  std::ofstream(dir.path() + "/mlp/config.pbtxt", std::ios::app)
      << "version_policy { all: true }\nversion_labels { key: \"stable\" value: 1 }\n";
  ServerOptions options = ::microbatch::testing::LoopbackOptions(dir.path());
  options.model_control.mode = ControlMode::kExplicit;
  InferenceServer server(options);
  ASSERT_TRUE(server.StartListening().ok());
  absl::Status loaded = server.LoadModels();
  ASSERT_TRUE(loaded.ok()) << loaded;
  auto stub = InferenceStub(server.grpc_port());
  auto predict = [&](int64_t version, const std::string& label, v1::PredictResponse* response) {
    v1::PredictRequest request;
    request.set_model("mlp");
    request.set_version(version);
    request.set_version_label(label);
    *request.add_inputs() = Fp32Tensor("x", {1, 16}, std::vector<float>(16, 0.5f));
    grpc::ClientContext context;
    return stub->Predict(&context, request, response);
  };
  v1::PredictResponse response;
  ASSERT_TRUE(predict(0, "stable", &response).ok());
  EXPECT_EQ(response.version(), 1);
  ASSERT_TRUE(predict(0, "", &response).ok());
  EXPECT_EQ(response.version(), 1) << "unpinned requests go to the stable label";
  grpc::Status unknown = predict(0, "canary", &response);
  EXPECT_EQ(unknown.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(unknown.error_message(), HasSubstr("no version label 'canary'"));
  grpc::Status both = predict(2, "stable", &response);
  EXPECT_EQ(both.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(both.error_message(), HasSubstr("set either version (2) or version_label ('stable')"));

  // Relabel: the next request follows, and so does the metadata.
  auto control = v1::ModelControl::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server.grpc_port()), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    v1::SetLabelRequest request;
    request.set_model("mlp");
    request.set_label("stable");
    request.set_version(2);
    v1::SetLabelResponse reply;
    ASSERT_TRUE(control->SetLabel(&context, request, &reply).ok());
  }
  ASSERT_TRUE(predict(0, "stable", &response).ok());
  EXPECT_EQ(response.version(), 2);
  {
    grpc::ClientContext context;
    v1::GetModelMetadataRequest request;
    request.set_model("mlp");
    request.set_version_label("stable");
    v1::ModelMetadata metadata;
    ASSERT_TRUE(stub->GetModelMetadata(&context, request, &metadata).ok());
    EXPECT_EQ(metadata.version(), 2);
    EXPECT_THAT(metadata.versions(), ::testing::ElementsAre(1, 2));
  }
  server.Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace microbatch
