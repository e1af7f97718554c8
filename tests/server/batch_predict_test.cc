// BatchPredict: the server's stream protocol and the client's batch command,
// through real gRPC on loopback.
#include <cstdio>
#include <fstream>
#include <thread>

#include "client/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/demo_models.h"
#include "server/backend/torch_backend.h"
#include "server/service/server.h"
#include "tests/client/run_cli.h"
#include "tests/server/server_process.h"
#include "tests/server/loopback_server.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Floats;
using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::InferenceStub;
using ::microbatch::testing::ServerProcess;
using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;

constexpr int kFeatures = 16;

// Deterministic input row values.
float Value(int64_t row, int col) { return static_cast<float>(((row * 31 + col * 7) % 1000) / 500.0 - 1.0); }

std::vector<float> Rows(int64_t first, int64_t count) {
  std::vector<float> values(count * kFeatures);
  for (int64_t r = 0; r < count; ++r) {
    for (int c = 0; c < kFeatures; ++c) values[r * kFeatures + c] = Value(first + r, c);
  }
  return values;
}

using ::microbatch::testing::CliRun;
using ::microbatch::testing::RunCli;

// What a CLI run printed, stdout then stderr.
std::string Printed(const CliRun& run) { return run.out + run.err; }

class BatchPredictTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("batch_predict_test");
    DemoModelOptions models;
    models.models = {"mlp", "pair"};
    ASSERT_TRUE(WriteModelRepository(dir_->path() + "/models", models).ok());
    ServerOptions options = ::microbatch::testing::LoopbackOptions(dir_->path() + "/models");
    options.metrics_port = -1;
    server_ = new InferenceServer(options);
    ASSERT_TRUE(server_->StartListening().ok());
    ASSERT_TRUE(server_->LoadModels().ok());
    auto direct = LoadTorchInstance((*server_->models()->Find("mlp", 0))->plan.spec);
    ASSERT_TRUE(direct.ok());
    direct_ = direct->release();
  }
  static void TearDownTestSuite() {
    server_->Shutdown(absl::Seconds(5));
    delete server_;
    delete direct_;
    delete dir_;
  }

  // The mlp's logits for `rows`, computed in-process without the server.
  static std::vector<float> DirectLogits(const std::vector<float>& rows) {
    const int64_t n = static_cast<int64_t>(rows.size()) / kFeatures;
    TensorView in{DType::kFloat32, {n, kFeatures}, rows.data(), rows.size() * sizeof(float), nullptr};
    auto out = direct_->Run({in});
    EXPECT_TRUE(out.ok());
    const float* f = static_cast<const float*>((*out)[0].data);
    return std::vector<float>(f, f + n * 4);
  }

  static void WriteInput(const std::string& path, int64_t rows) {
    auto writer = NpyWriter::Create(path, DType::kFloat32, {kFeatures});
    ASSERT_TRUE(writer.ok());
    constexpr int64_t kBlock = 65536;
    for (int64_t first = 0; first < rows; first += kBlock) {
      std::vector<float> block = Rows(first, std::min(kBlock, rows - first));
      ASSERT_TRUE((*writer)->WriteRows({reinterpret_cast<const char*>(block.data()), block.size() * 4}).ok());
    }
    ASSERT_TRUE((*writer)->Finish().ok());
  }

  // Checks that `path` holds the logits of input rows [0, rows).
  static void ExpectLogits(const std::string& path, int64_t rows) {
    auto reader = NpyReader::Open(path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    ASSERT_EQ((*reader)->rows(), rows);
    constexpr int64_t kBlock = 8192;
    std::string bytes;
    for (int64_t first = 0; first < rows; first += kBlock) {
      const int64_t n = std::min(kBlock, rows - first);
      ASSERT_TRUE((*reader)->ReadRows(first, n, &bytes).ok());
      std::vector<float> want = DirectLogits(Rows(first, n));
      const float* got = reinterpret_cast<const float*>(bytes.data());
      for (int64_t i = 0; i < n * 4; ++i) {
        ASSERT_NEAR(got[i], want[i], 1e-4) << "row " << first + i / 4;
      }
    }
  }

  static std::string Target() { return "127.0.0.1:" + std::to_string(server_->grpc_port()); }

  static TempDir* dir_;
  static InferenceServer* server_;
  static ModelInstance* direct_;
};

TempDir* BatchPredictTest::dir_ = nullptr;
InferenceServer* BatchPredictTest::server_ = nullptr;
ModelInstance* BatchPredictTest::direct_ = nullptr;

TEST_F(BatchPredictTest, MillionRowsEqualDirectForwardInOrder) {
  const std::string in = dir_->path() + "/million.npy";
  const std::string out = dir_->path() + "/million_out.npy";
  WriteInput(in, 1000000);
  CliRun result = RunCli("batch --target " + Target() + " --model mlp --input " + in +
                            " --output " + out + " --outputs logits --chunk-rows 5000");
  ASSERT_EQ(result.code, 0) << Printed(result);
  EXPECT_THAT(Printed(result), HasSubstr("done: 1000000 rows"));
  ExpectLogits(out, 1000000);
}

// A Kubernetes Job writes to a fresh volume: missing directories of --output
// are created; a parent that is a file is a clear error.
TEST_F(BatchPredictTest, OutputParentDirectoriesAreCreated) {
  const std::string in = dir_->path() + "/fresh_in.npy";
  const std::string out = dir_->path() + "/fresh/volume/out.npy";
  WriteInput(in, 100);
  CliRun result = RunCli("batch --target " + Target() + " --model mlp --input " + in + " --output " + out +
                            " --outputs logits --chunk-rows 30");
  ASSERT_EQ(result.code, 0) << Printed(result);
  ExpectLogits(out, 100);
  std::ofstream(dir_->path() + "/plain_file") << "not a directory";
  result = RunCli("batch --target " + Target() + " --model mlp --input " + in + " --output " + dir_->path() +
                  "/plain_file/out.npy");
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(Printed(result), HasSubstr("cannot create directory " + dir_->path() + "/plain_file"));
}

// A raw stream: header, then chunks of `rows` rows each.
class RawStream {
 public:
  RawStream(int port, const std::string& model, int64_t start_offset = 0) : stub_(InferenceStub(port)) {
    rw_ = stub_->BatchPredict(&context_);
    v1::BatchPredictRequest header;
    header.mutable_header()->set_model(model);
    header.mutable_header()->set_start_offset(start_offset);
    header.mutable_header()->add_outputs("logits");
    rw_->Write(header);
  }
  bool Send(int64_t sequence, const v1::Tensor& tensor) {
    v1::BatchPredictRequest request;
    request.mutable_chunk()->set_sequence(sequence);
    *request.mutable_chunk()->add_inputs() = tensor;
    return rw_->Write(request);
  }
  bool Receive(v1::BatchChunkResult* result) {
    v1::BatchPredictResponse response;
    if (!rw_->Read(&response)) return false;
    *result = response.result();
    return true;
  }
  grpc::Status Close() {
    rw_->WritesDone();
    v1::BatchPredictResponse ignored;
    while (rw_->Read(&ignored)) {
    }
    return rw_->Finish();
  }
  grpc::ClientContext& context() { return context_; }

 private:
  std::unique_ptr<v1::Inference::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::BatchPredictRequest, v1::BatchPredictResponse>> rw_;
};

// Opens an mlp stream, sends 4 chunks of 5,000 rows, cancels it at once and
// returns how it ended.
grpc::Status SendAndCancel(int port) {
  RawStream stream(port, "mlp");
  for (int s = 0; s < 4; ++s) stream.Send(s, Fp32Tensor("x", {5000, kFeatures}, Rows(0, 5000)));
  stream.context().TryCancel();
  return stream.Close();
}

// A new stream's 3-row chunk is answered without an error, and the stream
// ends OK.
void ExpectANewStreamIsAnswered(int port) {
  RawStream other(port, "mlp");
  ASSERT_TRUE(other.Send(0, Fp32Tensor("x", {3, kFeatures}, Rows(7, 3))));
  v1::BatchChunkResult result;
  ASSERT_TRUE(other.Receive(&result));
  EXPECT_FALSE(result.has_error());
  EXPECT_TRUE(other.Close().ok());
}

TEST_F(BatchPredictTest, InvalidChunkGetsInBandErrorAndTheStreamGoesOn) {
  RawStream stream(server_->grpc_port(), "mlp", 100);
  for (int s = 0; s < 8; ++s) {
    v1::Tensor tensor = Fp32Tensor("x", {10, kFeatures}, Rows(100 + s * 10, 10));
    if (s == 3) tensor.set_dtype(v1::FP64);
    if (s == 5) tensor.mutable_data()->resize(12);
    ASSERT_TRUE(stream.Send(s, tensor));
  }
  for (int s = 0; s < 8; ++s) {
    v1::BatchChunkResult result;
    ASSERT_TRUE(stream.Receive(&result));
    EXPECT_EQ(result.sequence(), s);
    EXPECT_EQ(result.offset(), 100 + s * 10);
    EXPECT_EQ(result.rows(), 10);
    if (s == 3 || s == 5) {
      EXPECT_EQ(result.error().code(), static_cast<int>(grpc::INVALID_ARGUMENT));
      EXPECT_THAT(result.error().message(), HasSubstr(s == 3 ? "expected dtype FP32, got FP64" : "needs 640 bytes, got 12"));
      EXPECT_EQ(result.outputs_size(), 0);
    } else {
      EXPECT_FALSE(result.has_error()) << result.error().message();
      ASSERT_EQ(result.outputs_size(), 1);
      std::vector<float> want = DirectLogits(Rows(100 + s * 10, 10));
      std::vector<float> got = Floats(result.outputs(0));
      for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5);
    }
  }
  EXPECT_TRUE(stream.Close().ok());
}

TEST_F(BatchPredictTest, ChunksLargerThanMaxBatchSizeAreSplitAndReassembled) {
  RawStream stream(server_->grpc_port(), "mlp");
  ASSERT_TRUE(stream.Send(0, Fp32Tensor("x", {1000, kFeatures}, Rows(0, 1000))));  // max_batch_size 64
  v1::BatchChunkResult result;
  ASSERT_TRUE(stream.Receive(&result));
  ASSERT_FALSE(result.has_error()) << result.error().message();
  EXPECT_THAT(result.outputs(0).shape(), ::testing::ElementsAre(1000, 4));
  std::vector<float> want = DirectLogits(Rows(0, 1000));
  std::vector<float> got = Floats(result.outputs(0));
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << i;
  EXPECT_TRUE(stream.Close().ok());
}

// Bulk chunks are cut into parts wherever a batch has room, next to Predict
// rows: every Predict row and every chunk row still reaches its own caller.
TEST_F(BatchPredictTest, LivePredictsShareBatchesWithAStreamAndEveryRowIsItsOwn) {
  constexpr int kChunks = 8;
  constexpr int64_t kChunkRows = 300;  // not a multiple of max_batch_size (64)
  std::thread bulk([] {
    RawStream stream(server_->grpc_port(), "mlp");
    for (int c = 0; c < kChunks; ++c) {
      ASSERT_TRUE(stream.Send(c, Fp32Tensor("x", {kChunkRows, kFeatures}, Rows(c * kChunkRows, kChunkRows))));
    }
    for (int c = 0; c < kChunks; ++c) {
      v1::BatchChunkResult result;
      ASSERT_TRUE(stream.Receive(&result));
      ASSERT_FALSE(result.has_error()) << result.error().message();
      ASSERT_EQ(result.sequence(), c);
      const std::vector<float> want = DirectLogits(Rows(c * kChunkRows, kChunkRows));
      const std::vector<float> got = Floats(result.outputs(0));
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4) << "chunk " << c << " " << i;
    }
    EXPECT_TRUE(stream.Close().ok());
  });
  std::vector<std::thread> live;
  for (int t = 0; t < 3; ++t) {
    live.emplace_back([t] {
      auto stub = InferenceStub(server_->grpc_port());
      for (int i = 0; i < 60; ++i) {
        const int64_t rows = 1 + (i + t) % 3;
        const int64_t first = 100000 + (t * 60 + i) * 4;
        v1::PredictRequest request;
        request.set_model("mlp");
        *request.add_inputs() = Fp32Tensor("x", {rows, kFeatures}, Rows(first, rows));
        request.add_outputs("logits");
        v1::PredictResponse response;
        grpc::ClientContext context;
        const grpc::Status status = stub->Predict(&context, request, &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        const std::vector<float> want = DirectLogits(Rows(first, rows));
        const std::vector<float> got = Floats(response.outputs(0));
        ASSERT_EQ(got.size(), want.size());
        for (size_t k = 0; k < want.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-4);
      }
    });
  }
  bulk.join();
  for (std::thread& thread : live) thread.join();
}

TEST_F(BatchPredictTest, ProtocolViolationsEndTheStream) {
  {
    auto stub = InferenceStub(server_->grpc_port());
    grpc::ClientContext context;
    auto rw = stub->BatchPredict(&context);
    v1::BatchPredictRequest chunk;
    chunk.mutable_chunk()->set_sequence(0);
    rw->Write(chunk);
    rw->WritesDone();
    grpc::Status status = rw->Finish();
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("first BatchPredict message must be a BatchJobHeader"));
  }
  {
    RawStream stream(server_->grpc_port(), "mlp");
    stream.Send(0, Fp32Tensor("x", {1, kFeatures}, Rows(0, 1)));
    stream.Send(2, Fp32Tensor("x", {1, kFeatures}, Rows(1, 1)));
    grpc::Status status = stream.Close();
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("chunk sequence 2, expected 1"));
  }
  {
    RawStream stream(server_->grpc_port(), "no_such_model");
    grpc::Status status = stream.Close();
    EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  }
}

TEST_F(BatchPredictTest, ClientCancelFreesTheStreamAndOthersKeepWorking) {
  EXPECT_EQ(SendAndCancel(server_->grpc_port()).error_code(), grpc::CANCELLED);
  // The cancelled stream's queued work drains away. The client sees the
  // cancel before the server has read (and queued) what was sent: only once
  // the stream is done on the server can no task be added any more.
  // (Regression: the test polled the queue at once, found it still empty,
  // and failed when a chunk was queued 1 ms later.)
  for (int i = 0; i < 200 && server_->batch_streams() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(server_->batch_streams(), 0);
  DynamicBatcher* batcher = (*server_->models()->Find("mlp", 0))->batcher.get();
  for (int i = 0; i < 200 && batcher->Stats().tasks > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(batcher->Stats().tasks, 0);
  ExpectANewStreamIsAnswered(server_->grpc_port());
}

// Regression: a part of a chunk that was not the chunk's last called Pump()
// after releasing the reactor's lock, holding no reference; the chunk's last
// part (dropped after the cancel on another executor thread) released the
// chunk's reference, gRPC ran OnDone, and the reactor was freed under the
// first part (ASan: heap-use-after-free in Pump, about 1 run in 12 of the
// test above).
TEST_F(BatchPredictTest, ManyCancelledStreamsNeverFreeTheReactorUnderARunningPart) {
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(SendAndCancel(server_->grpc_port()).error_code(), grpc::CANCELLED) << "stream " << i;
  }
  ExpectANewStreamIsAnswered(server_->grpc_port());
}

TEST_F(BatchPredictTest, ResumedJobEqualsUninterruptedRun) {
  const std::string in = dir_->path() + "/resume.npy";
  const std::string full = dir_->path() + "/full.npy";
  const std::string resumed = dir_->path() + "/resumed.npy";
  WriteInput(in, 20000);
  ASSERT_EQ(RunCli("batch --target " + Target() + " --model mlp --input " + in + " --output " + full +
                   " --outputs logits --chunk-rows 1000").code, 0);
  // An interrupted job: 7,300 complete rows and a torn row, header not final.
  {
    std::ifstream src(full, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(src)), {});
    auto reader = NpyReader::Open(full);
    const size_t header = bytes.size() - 20000 * 16;
    auto writer = NpyWriter::Create(resumed, DType::kFloat32, {4});
    ASSERT_TRUE((*writer)->WriteRows(absl::string_view(bytes.data() + header, 7300 * 16)).ok());
    writer->reset();
    std::ofstream(resumed, std::ios::app | std::ios::binary) << "torn";
  }
  CliRun result = RunCli("batch --target " + Target() + " --model mlp --input " + in +
                            " --output " + resumed + " --outputs logits --chunk-rows 1000 --resume");
  ASSERT_EQ(result.code, 0) << Printed(result);
  EXPECT_THAT(Printed(result), HasSubstr("resuming after 7300 rows"));
  // Row for row the same as the uninterrupted run. Equal up to float
  // rounding, not bitwise: BLAS results depend on how rows are grouped into
  // batches, and the resumed job's chunks start at another row.
  auto full_reader = NpyReader::Open(full);
  auto resumed_reader = NpyReader::Open(resumed);
  ASSERT_TRUE(full_reader.ok() && resumed_reader.ok());
  ASSERT_EQ((*resumed_reader)->shape(), (*full_reader)->shape());
  std::string want, got;
  ASSERT_TRUE((*full_reader)->ReadRows(0, 20000, &want).ok());
  ASSERT_TRUE((*resumed_reader)->ReadRows(0, 20000, &got).ok());
  const float* w = reinterpret_cast<const float*>(want.data());
  const float* g = reinterpret_cast<const float*>(got.data());
  for (int i = 0; i < 20000 * 4; ++i) {
    if (i < 7300 * 4) {
      ASSERT_EQ(g[i], w[i]) << "kept row " << i / 4 << " changed";
    } else {
      ASSERT_NEAR(g[i], w[i], 1e-5) << "row " << i / 4;
    }
  }

  // The server's offsets on a stream opened at an offset.
  RawStream stream(server_->grpc_port(), "mlp", 7300);
  ASSERT_TRUE(stream.Send(0, Fp32Tensor("x", {100, kFeatures}, Rows(7300, 100))));
  v1::BatchChunkResult chunk;
  ASSERT_TRUE(stream.Receive(&chunk));
  EXPECT_EQ(chunk.offset(), 7300);
  EXPECT_TRUE(stream.Close().ok());
}

TEST_F(BatchPredictTest, CsvRoundTripAndMultipleTargets) {
  const std::string in = dir_->path() + "/in.csv";
  {
    std::ofstream csv(in);
    for (int c = 0; c < kFeatures; ++c) csv << (c ? "," : "") << "f" << c;
    csv << "\n";
    for (int r = 0; r < 2500; ++r) {
      for (int c = 0; c < kFeatures; ++c) csv << (c ? "," : "") << Value(r, c);
      csv << "\n";
    }
  }
  const std::string out = dir_->path() + "/out.csv";
  CliRun result = RunCli("batch --target " + Target() + " --target " + Target() +
                            " --model mlp --input " + in + " --output " + out +
                            " --outputs logits --chunk-rows 300");
  ASSERT_EQ(result.code, 0) << Printed(result);
  std::ifstream csv(out);
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "logits_0,logits_1,logits_2,logits_3");
  std::vector<float> want = DirectLogits(Rows(0, 2500));
  int rows = 0;
  while (std::getline(csv, line)) {
    float v[4];
    ASSERT_EQ(std::sscanf(line.c_str(), "%f,%f,%f,%f", &v[0], &v[1], &v[2], &v[3]), 4);
    for (int k = 0; k < 4; ++k) ASSERT_NEAR(v[k], want[rows * 4 + k], 1e-4) << "row " << rows;
    ++rows;
  }
  EXPECT_EQ(rows, 2500);
}

TEST_F(BatchPredictTest, MalformedInputsFailClearlyAndWriteNothing) {
  struct Case {
    std::string file;
    std::string content;
    std::string message;
  };
  const std::string header = "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\n";
  const std::string row = "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\n";
  const std::vector<Case> cases = {
      {"ragged.csv", header + row + "1,2,3\n", "ragged.csv:3: expected 16 fields, got 3"},
      {"text.csv", header + row + "1,2,3,4,5,x,7,8,9,10,11,12,13,14,15,16\n", "text.csv:3: column 6 ('f'): 'x' is not a number"},
      {"dup.csv", "a,a\n1,2\n", "dup.csv:1: column 'a' appears twice"},
      {"narrow.csv", "a,b\n1,2\n", "narrow.csv:1: 2 columns, but input 'x' has shape [-1,16]"},
      {"empty.csv", "", "empty.csv:1: empty file"},
      {"bad.npy", "not numpy", "bad.npy: byte 0: not a .npy file"},
  };
  for (const Case& c : cases) {
    const std::string in = dir_->path() + "/" + c.file;
    std::ofstream(in) << c.content;
    const std::string out = dir_->path() + "/never_" + c.file + ".npy";
    CliRun result = RunCli("batch --target " + Target() + " --model mlp --input " + in + " --output " + out);
    EXPECT_NE(result.code, 0) << c.file;
    EXPECT_THAT(Printed(result), HasSubstr(c.message)) << c.file;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.file;
    EXPECT_FALSE(std::filesystem::exists(dir_->path() + "/never_" + c.file + ".logits.npy")) << c.file;
  }
  // A .npy of the wrong dtype.
  const std::string f64 = dir_->path() + "/f64.npy";
  auto writer = NpyWriter::Create(f64, DType::kFloat64, {kFeatures});
  ASSERT_TRUE((*writer)->WriteRows(std::string(8 * kFeatures, '\0')).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  CliRun result = RunCli("batch --target " + Target() + " --model mlp --input " + f64 + " --output " + dir_->path() + "/x.npy");
  EXPECT_NE(result.code, 0);
  EXPECT_THAT(Printed(result), HasSubstr("f64.npy: dtype FP64 but input 'x' is FP32"));
}

TEST(BatchPredictDrainTest, SigtermAnswersAcceptedChunksThenUnavailableWithOffset) {
  TempDir dir("batch_drain_test");
  DemoModelOptions models;
  models.models = {"mlp"};
  ASSERT_TRUE(WriteModelRepository(dir.path() + "/models", models).ok());
  ServerProcess server(MICROBATCH_SERVER_BIN,
                       {"--model_repository=" + dir.path() + "/models", "--grpc_port=0",
                        "--metrics_port=-1", "--host=127.0.0.1", "--drain_seconds=1"},
                       dir.path() + "/server.log");
  const int port = server.WaitForGrpcPort();
  ASSERT_GT(port, 0) << server.Log();
  ASSERT_FALSE(server.WaitForLog("server_ready", std::chrono::seconds(60)).empty());

  // The client's channel lives in this scope only: an idle sync channel that
  // nobody polls does not answer the server's shutdown GOAWAY/PING, which
  // would hold the server's exit for ~10 s.
  {
  auto stub = InferenceStub(port);
  grpc::ClientContext context;
  auto rw = stub->BatchPredict(&context);
  v1::BatchPredictRequest header;
  header.mutable_header()->set_model("mlp");
  header.mutable_header()->set_start_offset(500);
  ASSERT_TRUE(rw->Write(header));
  std::atomic<bool> stop{false};
  std::atomic<int64_t> answered{0};
  std::thread sender([&] {
    // Like the real client: at most 4 chunks unanswered, so no Write blocks.
    for (int s = 0; !stop.load(); ++s) {
      while (s - answered.load() >= 4 && !stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (stop.load()) break;
      v1::BatchPredictRequest request;
      request.mutable_chunk()->set_sequence(s);
      *request.mutable_chunk()->add_inputs() = Fp32Tensor("x", {100, kFeatures}, Rows(0, 100));
      if (!rw->Write(request)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  int64_t expected_offset = 500;
  v1::BatchPredictResponse response;
  bool signalled = false;
  while (rw->Read(&response)) {
    EXPECT_FALSE(response.result().has_error()) << response.result().error().message();
    EXPECT_EQ(response.result().offset(), expected_offset);
    expected_offset += response.result().rows();
    if (++answered == 20 && !signalled) {
      server.Signal(SIGTERM);
      signalled = true;
    }
  }
  stop = true;
  sender.join();
  grpc::Status status = rw->Finish();
  EXPECT_EQ(status.error_code(), grpc::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("resume the job at offset " + std::to_string(expected_offset)));
  auto trailer = context.GetServerTrailingMetadata().find("microbatch-resume-offset");
  ASSERT_NE(trailer, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(trailer->second.data(), trailer->second.size()), std::to_string(expected_offset));
  EXPECT_GE(answered, 20);
  }
  EXPECT_EQ(server.Wait(std::chrono::seconds(30)), 0) << server.Log();
}

}  // namespace
}  // namespace microbatch
