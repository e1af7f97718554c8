// End-to-end tests of Predict and the metadata RPCs over a real gRPC channel,
// against real TorchScript models.
#include "server/service/server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/backend/demo_models.h"
#include "server/backend/torch_backend.h"
#include "tests/server/loopback_server.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Floats;
using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::InferenceStub;
using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("server_test");
    DemoModelOptions models;
    models.models = {"mlp", "pair", "flaky"};
    models.versions = 2;
    ASSERT_TRUE(WriteModelRepository(dir_->path(), models).ok());
    std::ofstream(dir_->path() + "/pair/config.pbtxt", std::ios::app) << "version_policy { all: true }\n";
    ServerOptions options = ::microbatch::testing::LoopbackOptions(dir_->path());
    server_ = new InferenceServer(options);
    ASSERT_TRUE(server_->StartListening().ok());
    ASSERT_TRUE(server_->LoadModels().ok());
  }
  static void TearDownTestSuite() {
    server_->Shutdown(absl::Seconds(5));
    delete server_;
    delete dir_;
  }

  grpc::Status Predict(const v1::PredictRequest& request, v1::PredictResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->Predict(&context, request, response);
  }

  static v1::PredictRequest MlpRequest(const std::vector<float>& values, int64_t rows) {
    v1::PredictRequest request;
    request.set_model("mlp");
    *request.add_inputs() = Fp32Tensor("x", {rows, 16}, values);
    return request;
  }

  static TempDir* dir_;
  static InferenceServer* server_;
  std::unique_ptr<v1::Inference::Stub> stub_ = InferenceStub(server_->grpc_port());
};

TempDir* ServerTest::dir_ = nullptr;
InferenceServer* ServerTest::server_ = nullptr;

std::vector<float> Row(int caller) {
  std::vector<float> row(16);
  for (int i = 0; i < 16; ++i) row[i] = std::sin(static_cast<float>(caller * 16 + i));
  return row;
}

TEST_F(ServerTest, ConcurrentCallersEachGetTheirOwnRow) {
  // The reference: the same model file run directly, one row at a time.
  const std::shared_ptr<ServedModel> served = *server_->models()->Find("mlp", 0);
  auto direct = LoadTorchInstance(served->plan.spec);
  ASSERT_TRUE(direct.ok()) << direct.status();

  constexpr int kCallers = 64;
  constexpr int kRounds = 5;
  std::vector<std::vector<float>> logits(kCallers), probs(kCallers);
  std::vector<grpc::Status> statuses(kCallers * kRounds);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      auto stub = InferenceStub(server_->grpc_port());
      for (int r = 0; r < kRounds; ++r) {
        v1::PredictRequest request = MlpRequest(Row(c), 1);
        request.set_request_id("caller-" + std::to_string(c));
        v1::PredictResponse response;
        grpc::ClientContext context;
        statuses[c * kRounds + r] = stub->Predict(&context, request, &response);
        if (!statuses[c * kRounds + r].ok()) continue;
        EXPECT_EQ(response.request_id(), "caller-" + std::to_string(c));
        ASSERT_EQ(response.outputs_size(), 2);
        logits[c] = Floats(response.outputs(0));
        probs[c] = Floats(response.outputs(1));
      }
    });
  }
  for (auto& t : callers) t.join();
  for (const grpc::Status& s : statuses) ASSERT_TRUE(s.ok()) << s.error_message();

  for (int c = 0; c < kCallers; ++c) {
    std::vector<float> row = Row(c);
    TensorView in{DType::kFloat32, {1, 16}, row.data(), row.size() * sizeof(float), nullptr};
    auto expected = (*direct)->Run({in});
    ASSERT_TRUE(expected.ok());
    const float* want = static_cast<const float*>((*expected)[0].data);
    ASSERT_EQ(logits[c].size(), 4u);
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(logits[c][k], want[k], 1e-5) << "caller " << c;
    float sum = 0;
    for (float p : probs[c]) sum += p;
    EXPECT_NEAR(sum, 1.0f, 1e-5);
  }
}

TEST_F(ServerTest, MultiRowRequestKeepsRowOrder) {
  std::vector<float> values;
  for (int r = 0; r < 5; ++r) {
    auto row = Row(100 + r);
    values.insert(values.end(), row.begin(), row.end());
  }
  v1::PredictRequest request = MlpRequest(values, 5);
  request.add_outputs("logits");
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "logits");
  EXPECT_THAT(response.outputs(0).shape(), ::testing::ElementsAre(5, 4));
  for (int r = 0; r < 5; ++r) {
    v1::PredictResponse single;
    ASSERT_TRUE(Predict(MlpRequest(Row(100 + r), 1), &single).ok());
    std::vector<float> all = Floats(response.outputs(0));
    std::vector<float> one = Floats(single.outputs(0));
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(all[r * 4 + k], one[k], 1e-5);
  }
}

TEST_F(ServerTest, DictOutputsAndVersions) {
  auto pair = [&](int64_t version, v1::PredictResponse* response) {
    v1::PredictRequest request;
    request.set_model("pair");
    request.set_version(version);
    *request.add_inputs() = Fp32Tensor("a", {2, 3}, {1, 2, 3, 4, 5, 6});
    *request.add_inputs() = Fp32Tensor("b", {2, 3}, {1, 1, 1, 2, 2, 2});
    return Predict(request, response);
  };
  v1::PredictResponse v1_response, latest;
  ASSERT_TRUE(pair(1, &v1_response).ok());
  ASSERT_TRUE(pair(0, &latest).ok());
  EXPECT_EQ(latest.version(), 2);
  EXPECT_THAT(Floats(v1_response.outputs(0)), ::testing::ElementsAre(2, 3, 4, 6, 7, 8));
  EXPECT_THAT(Floats(v1_response.outputs(1)), ::testing::ElementsAre(1, 2, 3, 8, 10, 12));
  EXPECT_THAT(Floats(latest.outputs(0)), ::testing::ElementsAre(4, 6, 8, 12, 14, 16));
}

struct BadCase {
  std::string label;
  std::function<void(v1::PredictRequest&)> edit;
  grpc::StatusCode code;
  std::string message;
};

TEST_F(ServerTest, BadInputsFailAloneWhileValidTrafficSucceeds) {
  std::atomic<bool> stop{false};
  std::atomic<int> valid_ok{0}, valid_failed{0};
  std::vector<std::thread> background;
  for (int t = 0; t < 4; ++t) {
    background.emplace_back([&, t] {
      auto stub = InferenceStub(server_->grpc_port());
      for (int i = 0; !stop.load() || i < 20; ++i) {
        v1::PredictResponse response;
        grpc::ClientContext context;
        grpc::Status s = stub->Predict(&context, MlpRequest(Row(t), 1), &response);
        (s.ok() && response.outputs_size() == 2 ? valid_ok : valid_failed)++;
      }
    });
  }

  const std::vector<BadCase> cases = {
      {"unknown model", [](auto& r) { r.set_model("nope"); }, grpc::NOT_FOUND,
       "model 'nope' is not served (served: flaky, mlp, pair)"},
      {"unknown version", [](auto& r) { r.set_version(7); }, grpc::NOT_FOUND,
       "model 'mlp' has no ready version 7 (ready: 2)"},
      {"missing input", [](auto& r) { r.clear_inputs(); }, grpc::INVALID_ARGUMENT,
       "missing input 'x'"},
      {"extra input",
       [](auto& r) { *r.add_inputs() = Fp32Tensor("z", {1, 16}, std::vector<float>(16)); },
       grpc::INVALID_ARGUMENT, "unknown input 'z'; the model's inputs are 'x'"},
      {"duplicate input", [](auto& r) { *r.add_inputs() = r.inputs(0); }, grpc::INVALID_ARGUMENT,
       "input 'x' is given more than once"},
      {"dtype mismatch", [](auto& r) { r.mutable_inputs(0)->set_dtype(v1::FP64); },
       grpc::INVALID_ARGUMENT, "input 'x': expected dtype FP32, got FP64"},
      {"invalid dtype", [](auto& r) { r.mutable_inputs(0)->set_dtype(static_cast<v1::DataType>(99)); },
       grpc::INVALID_ARGUMENT, "input 'x': dtype 99 is not a valid DataType"},
      {"wrong rank", [](auto& r) { r.mutable_inputs(0)->mutable_shape()->RemoveLast(); },
       grpc::INVALID_ARGUMENT, "input 'x': expected shape [-1,16], got [1]"},
      {"wrong fixed dim",
       [](auto& r) { *r.mutable_inputs(0) = Fp32Tensor("x", {1, 15}, std::vector<float>(15)); },
       grpc::INVALID_ARGUMENT, "input 'x': expected shape [-1,16], got [1,15]"},
      {"byte length", [](auto& r) { r.mutable_inputs(0)->mutable_data()->resize(60); },
       grpc::INVALID_ARGUMENT, "input 'x': shape [1,16] of FP32 needs 64 bytes, got 60"},
      {"negative dim", [](auto& r) { r.mutable_inputs(0)->set_shape(0, -1); },
       grpc::INVALID_ARGUMENT, "input 'x': shape [-1,16] has a negative dimension"},
      {"element overflow",
       [](auto& r) { r.mutable_inputs(0)->set_shape(0, int64_t{1} << 62); },
       grpc::INVALID_ARGUMENT, "has too many elements"},
      {"zero rows", [](auto& r) { *r.mutable_inputs(0) = Fp32Tensor("x", {0, 16}, {}); },
       grpc::INVALID_ARGUMENT, "input 'x': zero rows"},
      {"too many rows",
       [](auto& r) { *r.mutable_inputs(0) = Fp32Tensor("x", {65, 16}, std::vector<float>(65 * 16)); },
       grpc::INVALID_ARGUMENT, "65 rows, more than the model's max_batch_size of 64"},
      {"unknown output", [](auto& r) { r.add_outputs("nope"); }, grpc::INVALID_ARGUMENT,
       "unknown output 'nope'; the model's outputs are 'logits', 'probs'"},
  };
  for (const BadCase& bad : cases) {
    v1::PredictRequest request = MlpRequest(Row(0), 1);
    bad.edit(request);
    v1::PredictResponse response;
    grpc::Status status = Predict(request, &response);
    EXPECT_EQ(status.error_code(), bad.code) << bad.label << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(bad.message)) << bad.label;
  }
  // Rows that disagree between two inputs.
  v1::PredictRequest rows;
  rows.set_model("pair");
  *rows.add_inputs() = Fp32Tensor("a", {2, 1}, {1, 2});
  *rows.add_inputs() = Fp32Tensor("b", {3, 1}, {1, 2, 3});
  v1::PredictResponse response;
  grpc::Status status = Predict(rows, &response);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("input 'b' has 3 rows but input 'a' has 2"));

  stop = true;
  for (auto& t : background) t.join();
  EXPECT_EQ(valid_failed.load(), 0);
  EXPECT_GE(valid_ok.load(), 80);
}

TEST_F(ServerTest, ModelErrorFailsOnlyItsBatch) {
  auto flaky = [&](std::vector<float> values, v1::PredictResponse* response) {
    v1::PredictRequest request;
    request.set_model("flaky");
    request.set_version(0);
    *request.add_inputs() = Fp32Tensor("x", {1, 4}, values);
    return Predict(request, response);
  };
  v1::PredictResponse response;
  grpc::Status bad = flaky({1, -2, 3, 4}, &response);
  EXPECT_EQ(bad.error_code(), grpc::INTERNAL);
  EXPECT_THAT(bad.error_message(), HasSubstr("negative input in batch"));
  EXPECT_THAT(bad.error_message(), ::testing::Not(HasSubstr("Traceback")));

  // Concurrent good and bad requests: every good one that shared a batch with
  // a bad one fails with it, every other succeeds, and the server goes on.
  std::atomic<int> ok{0}, internal{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto stub = InferenceStub(server_->grpc_port());
      for (int i = 0; i < 20; ++i) {
        v1::PredictRequest request;
        request.set_model("flaky");
        const float sign = (t == 0 && i % 5 == 0) ? -1.0f : 1.0f;
        *request.add_inputs() = Fp32Tensor("x", {1, 4}, {sign, 1, 1, 1});
        v1::PredictResponse r;
        grpc::ClientContext context;
        grpc::Status s = stub->Predict(&context, request, &r);
        if (s.ok()) {
          ++ok;
          EXPECT_EQ(Floats(r.outputs(0))[0], 2 * 2 * sign);  // version 2 scales by 2
        } else if (s.error_code() == grpc::INTERNAL) {
          ++internal;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(internal.load(), 4);  // at least the 4 poisoned requests
  EXPECT_GE(ok.load(), 100);
  ASSERT_TRUE(flaky({1, 2, 3, 4}, &response).ok());
  EXPECT_THAT(Floats(response.outputs(0)), ::testing::ElementsAre(4, 8, 12, 16));
}

TEST_F(ServerTest, MetadataAndListModels) {
  grpc::ClientContext context;
  v1::GetModelMetadataRequest request;
  request.set_model("mlp");
  v1::ModelMetadata metadata;
  ASSERT_TRUE(stub_->GetModelMetadata(&context, request, &metadata).ok());
  EXPECT_EQ(metadata.version(), 2);
  EXPECT_THAT(metadata.versions(), ::testing::ElementsAre(2));
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_THAT(metadata.inputs(0).shape(), ::testing::ElementsAre(-1, 16));
  EXPECT_EQ(metadata.outputs(1).name(), "probs");
  EXPECT_EQ(metadata.batching().max_batch_size(), 64);
  EXPECT_EQ(metadata.batching().instance_count(), 2);

  grpc::ClientContext list_context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub_->ListModels(&list_context, v1::ListModelsRequest(), &list).ok());
  std::vector<std::string> names;
  for (const auto& m : list.models()) names.push_back(m.name() + ":" + std::to_string(m.version()));
  EXPECT_THAT(names, ::testing::ElementsAre("flaky:2", "mlp:2", "pair:1", "pair:2"));
}

TEST_F(ServerTest, ExpiredDeadlineIsNotRun) {
  v1::PredictResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() - std::chrono::milliseconds(1));
  grpc::Status status = stub_->Predict(&context, MlpRequest(Row(1), 1), &response);
  EXPECT_EQ(status.error_code(), grpc::DEADLINE_EXCEEDED);
}

// Loopback options over the demo models, written into `dir`.
ServerOptions DemoLoopbackOptions(const TempDir& dir) {
  EXPECT_TRUE(WriteModelRepository(dir.path(), DemoModelOptions()).ok());
  return ::microbatch::testing::LoopbackOptions(dir.path());
}

// One grpc.health.v1 Check of `service` at `target` ("host:port") over a new
// channel; the serving status goes to `*response` when given.
grpc::Status CheckHealth(const std::string& target, const std::string& service,
                         grpc::health::v1::HealthCheckResponse* response = nullptr) {
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse ignored;
  return health->Check(&context, request, response != nullptr ? response : &ignored);
}

TEST(HealthTest, NotServingUntilModelsAreWarm) {
  TempDir dir("health_test");
  ServerOptions options = DemoLoopbackOptions(dir);
  InferenceServer server(options);
  ASSERT_TRUE(server.StartListening().ok());
  auto check = [&](const std::string& service) {
    grpc::health::v1::HealthCheckResponse response;
    EXPECT_TRUE(
        CheckHealth("127.0.0.1:" + std::to_string(server.grpc_port()), service, &response).ok());
    return response.status();
  };
  // Every service the server registers has a status of its own; the v2
  // service and the admin service follow readiness like the v1 service.
  const std::vector<std::string> services = {"", "microbatch.v1.Inference",
                                             "inference.GRPCInferenceService",
                                             "microbatch.v1.ModelControl"};
  for (const std::string& service : services) {
    EXPECT_EQ(check(service), grpc::health::v1::HealthCheckResponse::NOT_SERVING) << service;
  }
  // Predict before the models are loaded is UNAVAILABLE, not an error of the request.
  auto stub = InferenceStub(server.grpc_port());
  v1::PredictRequest request;
  request.set_model("mlp");
  v1::PredictResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(stub->Predict(&context, request, &response).error_code(), grpc::UNAVAILABLE);

  ASSERT_TRUE(server.LoadModels().ok());
  for (const std::string& service : services) {
    EXPECT_EQ(check(service), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  server.BeginDrain();
  for (const std::string& service : services) {
    EXPECT_EQ(check(service), grpc::health::v1::HealthCheckResponse::NOT_SERVING) << service;
  }
  server.Shutdown(absl::Seconds(1));
}

TEST(ListenTest, AGrpcPortAnotherServerListensOnIsRefused) {
  // gRPC sets SO_REUSEPORT by default: a second server on the same port would
  // start and take half of the new connections from the first.
  TempDir dir("listen_test");
  ServerOptions options = DemoLoopbackOptions(dir);
  InferenceServer first(options);
  ASSERT_TRUE(first.StartListening().ok());
  options.grpc_port = first.grpc_port();
  InferenceServer second(options);
  absl::Status status = second.StartListening();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("cannot listen on"));
  first.Shutdown(absl::ZeroDuration());
}

// Whether a channel that pings every `client_ping` while idle stays connected
// (READY throughout `idle`) to a server allowing pings every `allowed`.
bool IdleChannelStaysConnected(absl::Duration allowed, int client_ping_ms, absl::Duration idle) {
  TempDir dir("keepalive_test");
  ServerOptions options = DemoLoopbackOptions(dir);
  options.min_client_ping_interval = allowed;
  InferenceServer server(options);
  EXPECT_TRUE(server.StartListening().ok());
  EXPECT_TRUE(server.LoadModels().ok());
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, client_ping_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server.grpc_port()),
                                           grpc::InsecureChannelCredentials(), args);
  EXPECT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5)));
  bool connected = true;
  const absl::Time until = absl::Now() + idle;
  while (connected && absl::Now() < until) {
    connected = channel->GetState(false) == GRPC_CHANNEL_READY;
    absl::SleepFor(absl::Milliseconds(20));
  }
  server.Shutdown(absl::ZeroDuration());
  return connected;
}

TEST(KeepaliveTest, AClientPingingWhileIdleAtTheAllowedIntervalStaysConnected) {
  // gRPC's server default (pings at most every 5 min, and only during calls)
  // sent such a client GOAWAY after its third ping.
  EXPECT_TRUE(IdleChannelStaysConnected(absl::Milliseconds(300), 1000, absl::Seconds(5)));
}

TEST(KeepaliveTest, AClientPingingMoreOftenThanAllowedIsSentAway) {
  EXPECT_FALSE(IdleChannelStaysConnected(absl::Seconds(5), 500, absl::Seconds(8)));
}

TEST(ConnectionAgeTest, AnOldConnectionIsReplacedWhileItsStreamRunsToItsEnd) {
  TempDir dir("connection_age_test");
  ServerOptions options = DemoLoopbackOptions(dir);
  options.max_connection_age = absl::Seconds(1);
  InferenceServer server(options);
  ASSERT_TRUE(server.StartListening().ok());
  ASSERT_TRUE(server.LoadModels().ok());
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server.grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  // A stream opened on the first connection.
  grpc::ClientContext watch_context;
  grpc::health::v1::HealthCheckRequest request;
  auto watch = health->Watch(&watch_context, request);
  grpc::health::v1::HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  // Past its age the connection is sent GOAWAY: the channel leaves READY.
  bool replaced = false;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!replaced && absl::Now() < give_up) {
    replaced = channel->GetState(false) != GRPC_CHANNEL_READY;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(replaced);
  // New calls go over a new connection.
  grpc::ClientContext check_context;
  grpc::health::v1::HealthCheckResponse checked;
  EXPECT_TRUE(health->Check(&check_context, request, &checked).ok());
  // The stream of the old connection still runs and sees the drain.
  server.BeginDrain();
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  watch_context.TryCancel();
  server.Shutdown(absl::ZeroDuration());
}

TEST(ListenTest, AnIpv6HostServesGrpcOverIpv6AndTheWildcardOverIpv4Too) {
  const int probe = socket(AF_INET6, SOCK_STREAM, 0);
  if (probe < 0) GTEST_SKIP() << "no IPv6 on this machine";
  close(probe);
  TempDir dir("ipv6_test");
  ASSERT_TRUE(WriteModelRepository(dir.path(), DemoModelOptions()).ok());
  auto serves = [](int port, const std::string& host) {
    return CheckHealth(host + ":" + std::to_string(port), "").ok();
  };
  for (const std::string host : {"::", "[::1]"}) {
    ServerOptions options = ::microbatch::testing::LoopbackOptions(dir.path());
    options.host = host;
    options.metrics_port = 0;
    InferenceServer server(options);
    absl::Status started = server.StartListening();
    ASSERT_TRUE(started.ok()) << host << ": " << started;
    EXPECT_TRUE(serves(server.grpc_port(), "[::1]")) << host;
    EXPECT_EQ(serves(server.grpc_port(), "127.0.0.1"), host == "::") << host;
    server.Shutdown(absl::ZeroDuration());
  }
}

TEST(HealthTest, UnknownServiceIsNotFoundAndEchoHasAStatusOnlyWhenServed) {
  TempDir dir("health_services_test");
  ASSERT_TRUE(WriteModelRepository(dir.path(), DemoModelOptions()).ok());
  for (bool echo : {false, true}) {
    ServerOptions options = ::microbatch::testing::LoopbackOptions(dir.path());
    options.enable_echo = echo;
    InferenceServer server(options);
    ASSERT_TRUE(server.StartListening().ok());
    ASSERT_TRUE(server.LoadModels().ok());
    auto check = [&](const std::string& service) {
      return CheckHealth("127.0.0.1:" + std::to_string(server.grpc_port()), service).error_code();
    };
    EXPECT_EQ(check("no.such.Service"), grpc::NOT_FOUND);
    EXPECT_EQ(check("microbatch.v1.Echo"), echo ? grpc::OK : grpc::NOT_FOUND);
    server.Shutdown(absl::Seconds(1));
  }
}

}  // namespace
}  // namespace microbatch
