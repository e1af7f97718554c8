// The real `microbatch` binary against a real microbatch-server on loopback
// (the demo models, an identity model per datatype as tests/v2/v2_server.h
// writes them, and "labelled": identity versions 1 and 2, label stable -> 1)
// through its three front ends: predict prints the same JSON, byte for byte,
// for v1, v2 and rest with every datatype; errors carry the server's message;
// bench loads v1, v2 and rest in one run.
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/npy.h"
#include "client/tensor_json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/run_cli.h"
#include "tests/v2/v2_server.h"

namespace microbatch::testing {

class ClientE2EServer {
 public:
  ClientE2EServer() : dir_("client_e2e_test") {
    namespace fs = std::filesystem;
    DemoModelOptions models;
    models.models = {"mlp", "pair", "identity"};
    EXPECT_TRUE(WriteModelRepository(dir_.path(), models).ok());
    for (const std::string& dtype : V2Datatypes()) {
      WriteIdentityModel(dir_.path(), "id_" + absl::AsciiStrToLower(dtype), dtype, "max_batch_size: 128\n");
    }
    WriteIdentityModel(dir_.path(), "unbatched", "FP32", "no_batch_dimension: true\n");
    WriteIdentityModel(dir_.path(), "labelled", "FP32",
                       "max_batch_size: 128\nversion_policy { all: true }\n"
                       "version_labels { key: \"stable\" value: 1 }\n");
    WriteIdentityModel(dir_.path(), "classes", "FP32", "max_batch_size: 8\n", "label_filename: \"labels.txt\" ");
    std::ofstream(fs::path(dir_.path()) / "classes" / "labels.txt") << "cat\ndog\nbird\n";
    fs::create_directories(fs::path(dir_.path()) / "labelled" / "2");
    fs::copy_file(fs::path(dir_.path()) / "identity" / "1" / "model.pt",
                  fs::path(dir_.path()) / "labelled" / "2" / "model.pt");
    ServerOptions options = LoopbackOptions(dir_.path());
    options.enable_echo = true;  // bench --with-echo
    server_ = std::make_unique<InferenceServer>(options);
    absl::Status status = server_->StartListening();
    EXPECT_TRUE(status.ok()) << status;
    status = server_->LoadModels();
    EXPECT_TRUE(status.ok()) << status;
  }
  ~ClientE2EServer() { server_->Shutdown(absl::Seconds(5)); }

  int grpc_port() const { return server_->grpc_port(); }
  int http_port() const { return server_->metrics_port(); }

 private:
  TempDir dir_;
  std::unique_ptr<InferenceServer> server_;
};

}  // namespace microbatch::testing

namespace microbatch {
namespace {

using ::microbatch::testing::ClientE2EServer;
using ::microbatch::testing::CliRun;
using ::microbatch::testing::RunCli;
using ::testing::HasSubstr;

// predict's JSON without what differs by design (protocol, latency).
nlohmann::json Comparable(const std::string& out) {
  nlohmann::json json = nlohmann::json::parse(out, nullptr, false);
  if (json.is_discarded()) return json;
  json.erase("protocol");
  json.erase("latency_ms");
  return json;
}

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// Six edge values of each datatype the .npy format has (BF16 has none).
std::string EdgeBytes(const std::string& datatype) {
  const float fmax = std::numeric_limits<float>::max();
  if (datatype == "FP32") {
    return Bytes<float>({0.1f, -0.0f, fmax, std::numeric_limits<float>::denorm_min(),
                         std::numeric_limits<float>::infinity(), -1.0f / 3});
  }
  if (datatype == "FP64") {
    return Bytes<double>({0.1, -0.0, std::numeric_limits<double>::max(), std::numeric_limits<double>::denorm_min(),
                          -std::numeric_limits<double>::infinity(), 1.0 / 3});
  }
  if (datatype == "FP16") return Bytes<uint16_t>({0x3c00, 0x8000, 0x7bff, 0x0001, 0x7c00, 0x3555});
  if (datatype == "INT64") return Bytes<int64_t>({INT64_MIN, INT64_MAX, 9007199254740993LL, -1, 0, 42});
  if (datatype == "INT32") return Bytes<int32_t>({INT32_MIN, INT32_MAX, 16777217, -1, 0, 42});
  if (datatype == "INT16") return Bytes<int16_t>({INT16_MIN, INT16_MAX, 300, -1, 0, 42});
  if (datatype == "INT8") return Bytes<int8_t>({INT8_MIN, INT8_MAX, 3, -1, 0, 42});
  if (datatype == "UINT8") return Bytes<uint8_t>({0, 255, 128, 127, 1, 42});
  return Bytes<uint8_t>({1, 0, 0, 1, 1, 0});  // BOOL
}

class ClientE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ClientE2EServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static std::string Endpoints() {
    return absl::StrCat(" --target 127.0.0.1:", server_->grpc_port(), " --http 127.0.0.1:", server_->http_port());
  }
  static std::string Flags() { return Endpoints() + " --timeout_ms 20000"; }

  // predict through v1, v2 and rest: the (comparable) JSON of each must be
  // the same; returns v1's.
  static nlohmann::json PredictEverywhere(const std::string& args) {
    nlohmann::json first;
    for (const char* protocol : {"v1", "v2", "rest"}) {
      const CliRun run = RunCli(std::string("predict --protocol ") + protocol + Flags() + " " + args);
      EXPECT_EQ(run.code, 0) << protocol << " " << args << ": " << run.err;
      const nlohmann::json full = nlohmann::json::parse(run.out, nullptr, false);
      EXPECT_TRUE(full.is_object() && full["protocol"] == protocol) << run.out;
      const nlohmann::json json = Comparable(run.out);
      if (first.is_null()) {
        first = json;
      } else {
        // dump(): -0.0 and 0.0 compare equal as numbers, not as text.
        EXPECT_EQ(json.dump(), first.dump()) << protocol << " vs v1, " << args;
      }
    }
    return first;
  }

  static ClientE2EServer* server_;
};

ClientE2EServer* ClientE2ETest::server_ = nullptr;

TEST_F(ClientE2ETest, EveryDatatypeComesBackTheSameThroughEveryProtocol) {
  for (const std::string& datatype : testing::V2Datatypes()) {
    const std::string model = "id_" + absl::AsciiStrToLower(datatype);
    if (datatype == "BF16") {  // no .npy dtype: JSON, values exact in BF16
      const nlohmann::json json = PredictEverywhere("--model " + model + " --input 'x=[0.5,-3,1.5,-0.0,65280,0]'");
      EXPECT_EQ(json["outputs"]["y"]["data"].dump(), "[[0.5,-3.0,1.5,-0.0,65280.0,0.0]]");
      continue;
    }
    const DType dtype = *DTypeFromName(datatype);
    const std::string bytes = EdgeBytes(datatype);
    const std::string path = ::testing::TempDir() + "/client_e2e_" + model + "." + std::to_string(::getpid()) + ".npy";
    {
      auto writer = NpyWriter::Create(path, dtype, {6});  // one row of 6
      ASSERT_TRUE(writer.ok()) << writer.status();
      ASSERT_TRUE((*writer)->WriteRows(bytes).ok());
      ASSERT_TRUE((*writer)->Finish().ok());
    }
    const nlohmann::json json = PredictEverywhere("--model " + model + " --input x=" + path);
    v1::Tensor expected;
    expected.set_dtype(static_cast<v1::DataType>(dtype));
    expected.add_shape(1);
    expected.add_shape(6);
    expected.set_data(bytes);
    EXPECT_EQ(json["outputs"]["y"].dump(), TensorToJson(expected).dump()) << datatype;
    EXPECT_EQ(json["model"], model);
    EXPECT_EQ(json["version"], 1);
    std::remove(path.c_str());
  }
}

TEST_F(ClientE2ETest, JsonInputsTakeTheMetadataOfEachProtocol) {
  // One row of mlp (one dimension short of its rank), a request id, and a
  // chosen output of pair.
  nlohmann::json json = PredictEverywhere(
      "--model mlp --request_id e2e --input 'x=[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.4,1.5,1.6]'");
  EXPECT_EQ(json["request_id"], "e2e");
  EXPECT_FALSE(json["outputs"].empty());
  json = PredictEverywhere("--model pair --version 1 --output product --input 'a=[[1,2,3]]' --input 'b=[[4,5,6]]'");
  EXPECT_EQ(json["outputs"].size(), 1u);
  EXPECT_EQ(json["outputs"]["product"]["data"].dump(), "[[4.0,10.0,18.0]]");
}

TEST_F(ClientE2ETest, VersionsByNumberOrLabel) {
  // Unpinned: the default version, the one labelled stable.
  EXPECT_EQ(PredictEverywhere("--model labelled --input 'x=[1,2]'")["version"], 1);
  EXPECT_EQ(PredictEverywhere("--model labelled --version 2 --input 'x=[1,2]'")["version"], 2);
  // A label, through every protocol (v1: PredictRequest.version_label).
  for (const char* protocol : {"v1", "v2", "rest"}) {
    const CliRun run = RunCli(std::string("predict --protocol ") + protocol + Flags() +
                              " --model labelled --version stable --input 'x=[1,2]'");
    ASSERT_EQ(run.code, 0) << protocol << ": " << run.err;
    EXPECT_EQ(Comparable(run.out)["version"], 1) << protocol;
  }
  const CliRun run = RunCli("predict" + Flags() + " --model labelled --version nope --input 'x=[1,2]'");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("no version label 'nope'"));
}

// predict --classification: the classification extension through v2 and
// rest, printed as BYTES strings nested by the shape.
TEST_F(ClientE2ETest, ClassificationPrintsTheTopClassesThroughV2AndRest) {
  const nlohmann::json expected = {
      {"dtype", "BYTES"},
      {"shape", {2, 2}},
      {"data", nlohmann::json::array({nlohmann::json::array({"2.000000:1:dog", "0.500000:0:cat"}),
                                      nlohmann::json::array({"3.000000:0:cat", "2.500000:2:bird"})})}};
  for (const char* protocol : {"v2", "rest"}) {
    const CliRun run = RunCli(std::string("predict --protocol ") + protocol + Flags() +
                              " --model classes --input 'x=[[0.5,2,-1,0.25],[3,1,2.5,0]]' --output y"
                              " --classification 2");
    ASSERT_EQ(run.code, 0) << protocol << ": " << run.err;
    EXPECT_EQ(Comparable(run.out)["outputs"]["y"], expected) << protocol << ": " << run.out;
  }
}

TEST_F(ClientE2ETest, ErrorsCarryTheServersMessage) {
  CliRun run = RunCli("predict --protocol rest" + Flags() + " --model nope --input 'x=[[1]]'");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("NOT_FOUND: HTTP 404: "));
  EXPECT_THAT(run.err, HasSubstr("nope"));
  run = RunCli("predict --protocol v2" + Flags() + " --model nope --input 'x=[[1]]'");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("NOT_FOUND: "));
  EXPECT_THAT(run.err, HasSubstr("nope"));
  // A label the model does not have: the server says so, through both front ends.
  for (const char* protocol : {"v2", "rest"}) {
    run = RunCli(std::string("predict --protocol ") + protocol + Flags() +
                 " --model labelled --version nightly --input 'x=[1]'");
    EXPECT_EQ(run.code, 1) << protocol;
    EXPECT_THAT(run.err, HasSubstr("NOT_FOUND")) << protocol;
    EXPECT_THAT(run.err, HasSubstr("nightly")) << protocol;
  }
  // A value that does not fit: the server's INVALID_ARGUMENT (400 over REST).
  const std::string path = ::testing::TempDir() + "/client_e2e_bad." + std::to_string(::getpid()) + ".npy";
  {
    auto writer = NpyWriter::Create(path, DType::kInt32, {3});
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->WriteRows(Bytes<int32_t>({1, 2, 3})).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
  }
  run = RunCli("predict --protocol rest" + Flags() + " --model id_fp32 --input x=" + path);
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("INVALID_ARGUMENT: HTTP 400: "));
  run = RunCli("predict --protocol v2" + Flags() + " --model id_fp32 --input x=" + path);
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("INVALID_ARGUMENT: "));
  std::remove(path.c_str());
}

TEST_F(ClientE2ETest, BenchLoadsTheThreeFrontEndsInOneRun) {
  const CliRun run = RunCli("bench --protocol v1,v2,rest --model id_fp32 --rows 4 --concurrency 1,4 --format json"
                            " --window-ms 300 --warmup-ms 100 --max-windows 2 --stable-windows 1 --metrics-url 127.0.0.1:" +
                            std::to_string(server_->http_port()) + Endpoints());
  ASSERT_EQ(run.code, 0) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  ASSERT_EQ(report["protocols"].size(), 3u);
  ASSERT_EQ(report["levels"].size(), 6u);
  const char* order[] = {"v1", "v2", "rest"};
  for (size_t i = 0; i < 6; ++i) {
    const nlohmann::json& level = report["levels"][i];
    EXPECT_EQ(level["protocol"], order[i % 3]);
    EXPECT_GT(level["ok"].get<int64_t>(), 0) << order[i % 3];
    EXPECT_EQ(level["errors"], 0) << order[i % 3] << " " << level["errors_by_code"].dump();
    // The server-side split sees every front end's requests (same batcher).
    ASSERT_TRUE(level.contains("server")) << order[i % 3];
    EXPECT_GT(level["server"]["requests"].get<double>(), 0) << order[i % 3];
    // request_ms from the front end's own method label (Predict, ModelInfer, RestInfer).
    EXPECT_TRUE(level["server"].contains("request_ms")) << order[i % 3] << " " << level["server"].dump();
  }
}

// Regression: without v1 in the run, bench could not tell a model without a
// batch dimension (max_batch_size 0) and sent [rows, ...] payloads, all
// refused; it now reads Triton's model configuration (ModelConfig, GET
// .../config).
TEST_F(ClientE2ETest, BenchOverV2OrRestAloneSeesAModelWithoutABatchDimension) {
  for (const char* protocol : {"v2", "rest"}) {
    const CliRun run = RunCli(absl::StrCat("bench --protocol ", protocol, " --model unbatched --shape x=5",
                                           " --concurrency 2 --format json --window-ms 300 --warmup-ms 100",
                                           " --max-windows 2 --stable-windows 1", Endpoints()));
    ASSERT_EQ(run.code, 0) << protocol << ": " << run.err;
    const nlohmann::json report = nlohmann::json::parse(run.out);
    ASSERT_EQ(report["levels"].size(), 1u) << protocol;
    EXPECT_GT(report["levels"][0]["ok"].get<int64_t>(), 0) << protocol;
    EXPECT_EQ(report["levels"][0]["errors"], 0) << protocol << " " << report["levels"][0]["errors_by_code"].dump();
  }
}

TEST_F(ClientE2ETest, BenchWithEchoRunsEchoBeforeEachLevel) {
  const CliRun run = RunCli("bench --with-echo --model id_fp32 --concurrency 1,2 --format json"
                            " --window-ms 200 --warmup-ms 50 --max-windows 1 --stable-windows 1" +
                            Endpoints());
  ASSERT_EQ(run.code, 0) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  ASSERT_EQ(report["protocols"].size(), 2u);
  EXPECT_EQ(report["protocols"][0]["method"], "Echo");
  EXPECT_EQ(report["protocols"][1]["method"], "Predict");
  // Same payload: Echo sends the v1 Predict request.
  EXPECT_EQ(report["protocols"][0]["payload_bytes"], report["protocols"][1]["payload_bytes"]);
  ASSERT_EQ(report["levels"].size(), 4u);
  const char* order[] = {"echo", "v1"};
  for (size_t i = 0; i < 4; ++i) {
    const nlohmann::json& level = report["levels"][i];
    EXPECT_EQ(level["protocol"], order[i % 2]);
    EXPECT_EQ(level["level"].get<double>(), i < 2 ? 1 : 2);
    EXPECT_GT(level["ok"].get<int64_t>(), 0) << order[i % 2];
    EXPECT_EQ(level["errors"], 0) << order[i % 2] << " " << level["errors_by_code"].dump();
  }
  // The table run prints each level's throughput relative to Echo.
  const CliRun table = RunCli("bench --with-echo --model id_fp32 --window-ms 100 --warmup-ms 20"
                              " --max-windows 1 --stable-windows 1" + Endpoints());
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("v1/echo"));
}

}  // namespace
}  // namespace microbatch
