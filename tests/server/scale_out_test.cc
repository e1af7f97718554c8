// Scale-out on one machine: three server processes, one `microbatch batch`
// job split across them by client-side round-robin. Every row is answered
// exactly once, and every server took a share.
#include <fstream>

#include "client/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/demo_models.h"
#include "tests/server/http_get.h"
#include "tests/server/server_process.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::HttpGet;
using ::microbatch::testing::ServerProcess;
using ::microbatch::testing::TempDir;

double RowsServed(int metrics_port) {
  const std::string body = HttpGet(metrics_port, "/metrics").body;
  const std::string series = "microbatch_inference_rows_total{model=\"identity\",version=\"1\"} ";
  const size_t at = body.find(series);
  return at == std::string::npos ? -1 : std::stod(body.substr(at + series.size()));
}

TEST(ScaleOutTest, OneJobAcrossThreeServersAnswersEveryRowOnce) {
  TempDir dir("scale_out_test");
  DemoModelOptions models;
  models.models = {"identity"};
  ASSERT_TRUE(WriteModelRepository(dir.path() + "/models", models).ok());

  std::vector<std::unique_ptr<ServerProcess>> servers;
  std::vector<int> grpc_ports, metrics_ports;
  for (int i = 0; i < 3; ++i) {
    servers.push_back(std::make_unique<ServerProcess>(
        MICROBATCH_SERVER_BIN,
        std::vector<std::string>{"--model_repository=" + dir.path() + "/models", "--grpc_port=0",
                                 "--metrics_port=0", "--host=127.0.0.1", "--drain_seconds=0"},
        dir.path() + "/server" + std::to_string(i) + ".log"));
  }
  for (auto& server : servers) {
    grpc_ports.push_back(server->WaitForGrpcPort());
    const std::string port =
        server->WaitForLog("metrics_listening address=[^ ]*:([0-9]+)", std::chrono::seconds(60));
    ASSERT_FALSE(port.empty()) << server->Log();
    metrics_ports.push_back(std::stoi(port));
    ASSERT_FALSE(server->WaitForLog("server_ready", std::chrono::seconds(60)).empty()) << server->Log();
  }

  // Row r is the row index itself, so the identity model's output says which
  // row each output row came from.
  constexpr int64_t kRows = 30000;
  const std::string in = dir.path() + "/rows.npy";
  const std::string out = dir.path() + "/out.npy";
  {
    auto writer = NpyWriter::Create(in, DType::kFloat32, {2});
    std::vector<float> values;
    for (int64_t r = 0; r < kRows; ++r) {
      values.push_back(static_cast<float>(r));
      values.push_back(-static_cast<float>(r));
    }
    ASSERT_TRUE((*writer)->WriteRows({reinterpret_cast<const char*>(values.data()), values.size() * 4}).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
  }
  std::string command = std::string(MICROBATCH_CLI_BIN) + " batch --model identity --input " + in +
                        " --output " + out + " --chunk-rows 500";
  for (int port : grpc_ports) command += " --target 127.0.0.1:" + std::to_string(port);
  ASSERT_EQ(std::system((command + " 2>" + dir.path() + "/cli.log").c_str()), 0);

  auto reader = NpyReader::Open(out);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ((*reader)->rows(), kRows);
  std::string bytes;
  ASSERT_TRUE((*reader)->ReadRows(0, kRows, &bytes).ok());
  const float* f = reinterpret_cast<const float*>(bytes.data());
  for (int64_t r = 0; r < kRows; ++r) {
    ASSERT_EQ(f[2 * r], static_cast<float>(r)) << "output row " << r;
    ASSERT_EQ(f[2 * r + 1], -static_cast<float>(r));
  }
  double total = 0;
  for (int i = 0; i < 3; ++i) {
    const double rows = RowsServed(metrics_ports[i]);
    EXPECT_GT(rows, kRows / 10) << "server " << i << " took no fair share";
    total += rows;
  }
  // Exactly once: the servers together ran every row, and no row twice.
  EXPECT_EQ(total, kRows);
  for (auto& server : servers) {
    server->Signal(SIGTERM);
    EXPECT_EQ(server->Wait(std::chrono::seconds(30)), 0);
  }
}

}  // namespace
}  // namespace microbatch
