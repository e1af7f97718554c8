// The gRPC service layer (InferenceService, BatchPredict reactors, drain and
// shutdown, the metrics port) under concurrent load, in process, with the
// fake backend (tests/service/fake_torch_backend.cc) instead of LibTorch so
// that it runs meaningfully under ThreadSanitizer. Every answer is checked.
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/service/server.h"
#include "tests/server/http_get.h"
#include "tests/server/loopback_server.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Floats;
using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::HttpGet;
using ::microbatch::testing::InferenceStub;
using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;

constexpr int kFeatures = 4;

// A model "double" (y = 2x, z = 3x with the fake backend), small batches so
// that BatchPredict chunks split into several pieces, two instances.
void WriteRepository(const std::string& root) {
  std::filesystem::create_directories(root + "/double/1");
  std::ofstream(root + "/double/1/model.pt") << "fake";
  std::ofstream(root + "/double/config.pbtxt")
      << "input { name: \"x\" dtype: FP32 dims: [4] }\n"
         "output { name: \"y\" dtype: FP32 dims: [4] tuple_index: 0 }\n"
         "output { name: \"z\" dtype: FP32 dims: [4] tuple_index: 1 }\n"
         "max_batch_size: 8\ninstance_count: 2\nintra_op_threads: 1\n";
}

float Value(int64_t row, int col) { return static_cast<float>((row * 13 + col) % 97) - 48.0f; }

std::vector<float> Rows(int64_t first, int64_t count) {
  std::vector<float> values;
  for (int64_t r = first; r < first + count; ++r) {
    for (int c = 0; c < kFeatures; ++c) values.push_back(Value(r, c));
  }
  return values;
}

std::vector<float> Times(std::vector<float> values, float k) {
  for (float& v : values) v *= k;
  return values;
}

class ServiceConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>("service_concurrency_test");
    WriteRepository(dir_->path() + "/models");
    ServerOptions options = testing::LoopbackOptions(dir_->path() + "/models");
    options.http_threads = 2;
    options.batch_window_chunks = 3;
    options.inline_max_compute = InlineMaxCompute();
    server_ = std::make_unique<InferenceServer>(options);
    ASSERT_TRUE(server_->StartListening().ok());
    ASSERT_TRUE(server_->LoadModels().ok());
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(10));
  }
  virtual absl::Duration InlineMaxCompute() const { return absl::ZeroDuration(); }

  // Predict callers, BatchPredict jobs and /metrics scrapes at once; checks
  // every answer.
  void RunMixedLoad();

  // Runs one BatchPredict job of `chunks` chunks of `rows` rows starting at
  // row `first`; checks every answer. Returns the final status.
  grpc::Status RunJob(int64_t first, int chunks, int rows, grpc::ClientContext* context,
                      int* answered) {
    auto stub = InferenceStub(server_->grpc_port());
    auto rw = stub->BatchPredict(context);
    v1::BatchPredictRequest header;
    header.mutable_header()->set_model("double");
    header.mutable_header()->set_start_offset(first);
    header.mutable_header()->add_outputs("z");
    rw->Write(header);
    std::thread sender([&] {
      for (int s = 0; s < chunks; ++s) {
        v1::BatchPredictRequest request;
        request.mutable_chunk()->set_sequence(s);
        *request.mutable_chunk()->add_inputs() =
            Fp32Tensor("x", {rows, kFeatures}, Rows(first + s * rows, rows));
        if (!rw->Write(request)) break;
      }
      rw->WritesDone();
    });
    v1::BatchPredictResponse response;
    int64_t expected_offset = first;
    while (rw->Read(&response)) {
      const v1::BatchChunkResult& result = response.result();
      EXPECT_FALSE(result.has_error()) << result.error().message();
      EXPECT_EQ(result.offset(), expected_offset);
      EXPECT_EQ(result.rows(), rows);
      if (result.outputs_size() == 1) {
        EXPECT_EQ(result.outputs(0).name(), "z");
        EXPECT_EQ(Floats(result.outputs(0)), Times(Rows(expected_offset, rows), 3))
            << "chunk at offset " << expected_offset;
      } else {
        ADD_FAILURE() << "chunk at offset " << expected_offset << " has "
                      << result.outputs_size() << " outputs";
      }
      expected_offset += result.rows();
      ++*answered;
    }
    sender.join();
    return rw->Finish();
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<InferenceServer> server_;
};

// Predict requests that find the model idle run on the gRPC thread that
// received them (ServerOptions::inline_max_compute).
class ServiceConcurrencyInlineTest : public ServiceConcurrencyTest {
 protected:
  absl::Duration InlineMaxCompute() const override { return absl::Seconds(1); }
};

TEST_F(ServiceConcurrencyTest, PredictBatchPredictAndScrapesConcurrently) { RunMixedLoad(); }

TEST_F(ServiceConcurrencyInlineTest, PredictBatchPredictAndScrapesConcurrently) { RunMixedLoad(); }

void ServiceConcurrencyTest::RunMixedLoad() {
  std::atomic<bool> stop_scraping{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    while (!stop_scraping.load()) {
      EXPECT_EQ(HttpGet(server_->metrics_port(), "/metrics").status, 200);
      ++scrapes;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([this, t] {
      auto stub = InferenceStub(server_->grpc_port());
      std::mt19937 rng(t);
      for (int i = 0; i < 40; ++i) {
        const int64_t rows = 1 + rng() % 4;
        const int64_t first = t * 1000 + i * 5;
        v1::PredictRequest request;
        request.set_model("double");
        request.set_request_id(std::to_string(first));
        *request.add_inputs() = Fp32Tensor("x", {rows, kFeatures}, Rows(first, rows));
        v1::PredictResponse response;
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        grpc::Status status = stub->Predict(&context, request, &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        ASSERT_EQ(response.outputs_size(), 2);
        EXPECT_EQ(response.request_id(), request.request_id());
        EXPECT_EQ(Floats(response.outputs(0)), Times(Rows(first, rows), 2));
        EXPECT_EQ(Floats(response.outputs(1)), Times(Rows(first, rows), 3));
      }
    });
  }
  for (int j = 0; j < 2; ++j) {
    clients.emplace_back([this, j] {
      grpc::ClientContext context;
      int answered = 0;
      grpc::Status status = RunJob(100000 * (j + 1), 12, 20, &context, &answered);
      EXPECT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(answered, 12);
    });
  }
  for (auto& c : clients) c.join();
  stop_scraping = true;
  scraper.join();
  EXPECT_GT(scrapes.load(), 0);
}

// Triton's ModelStreamInfer from several clients at once (one of them
// cancelling halfway): every request of a finished stream is answered once
// and right, bad ones with their error. Run under ThreadSanitizer.
TEST_F(ServiceConcurrencyTest, InferenceStreamsConcurrently) {
  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
          "127.0.0.1:" + std::to_string(server_->grpc_port()), grpc::InsecureChannelCredentials()));
      grpc::ClientContext context;
      auto stream = stub->ModelStreamInfer(&context);
      constexpr int kRequests = 100;
      std::thread reader([&] {
        inference::ModelStreamInferResponse response;
        int got = 0;
        while (stream->Read(&response)) {
          const int i = std::stoi(response.infer_response().id());
          if (i % 10 == 3) {
            EXPECT_THAT(response.error_message(), HasSubstr("needs")) << i;
          } else {
            EXPECT_TRUE(response.error_message().empty()) << response.error_message();
            EXPECT_EQ(response.infer_response().raw_output_contents_size(), 2);
            const std::string& y = response.infer_response().raw_output_contents(0);
            std::vector<float> values(y.size() / sizeof(float));
            std::memcpy(values.data(), y.data(), y.size());
            EXPECT_EQ(values, Times(Rows(i, 1), 2.0f)) << i;
          }
          ++got;
          answered.fetch_add(1);
          if (t == 0 && got == kRequests / 2) context.TryCancel();
        }
        if (t != 0) {
          EXPECT_EQ(got, kRequests);
        }
      });
      for (int i = 0; i < kRequests; ++i) {
        inference::ModelInferRequest request;
        request.set_model_name("double");
        request.set_id(std::to_string(i));
        auto* input = request.add_inputs();
        input->set_name("x");
        input->set_datatype("FP32");
        input->add_shape(1);
        input->add_shape(kFeatures);
        std::vector<float> row = Rows(i, 1);
        if (i % 10 == 3) row.pop_back();  // 3 of 4 values
        request.add_raw_input_contents(reinterpret_cast<const char*>(row.data()), row.size() * sizeof(float));
        if (!stream->Write(request)) break;
      }
      stream->WritesDone();
      reader.join();
      const grpc::Status status = stream->Finish();
      if (t == 0) {  // OK when every answer and the status arrived before the cancel
        EXPECT_TRUE(status.error_code() == grpc::StatusCode::CANCELLED || status.ok()) << status.error_message();
      } else {
        EXPECT_TRUE(status.ok()) << status.error_message();
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_GE(answered.load(), 3 * 100 + 50);
}

TEST_F(ServiceConcurrencyTest, CancelledStreamsFreeTheirReactors) {
  std::vector<std::thread> jobs;
  for (int j = 0; j < 3; ++j) {
    jobs.emplace_back([this, j] {
      grpc::ClientContext context;
      std::thread canceller([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(5 + 10 * j));
        context.TryCancel();
      });
      int answered = 0;
      grpc::Status status = RunJob(0, 50, 20, &context, &answered);
      canceller.join();
      // Cancelled midway, or (rarely) finished before the cancel.
      EXPECT_TRUE(status.error_code() == grpc::CANCELLED || (status.ok() && answered == 50))
          << status.error_message();
    });
  }
  for (auto& j : jobs) j.join();
  // The server still serves, and every cancelled stream is gone.
  grpc::ClientContext context;
  int answered = 0;
  EXPECT_TRUE(RunJob(0, 3, 20, &context, &answered).ok());
  EXPECT_EQ(answered, 3);
  // No cancelled stream is left behind: Shutdown waits for live streams, so
  // it returns at once.
  const absl::Time start = absl::Now();
  server_->Shutdown(absl::Seconds(10));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  server_.reset();
}

TEST_F(ServiceConcurrencyTest, ShutdownDuringStreamsAndPredictEndsEveryCallCleanly) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  std::atomic<int> predict_ok{0};
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([&, t] {
      auto stub = InferenceStub(server_->grpc_port());
      for (int i = 0; !stop.load() && i < 100000; ++i) {
        const int64_t first = t * 100000 + i;
        v1::PredictRequest request;
        request.set_model("double");
        *request.add_inputs() = Fp32Tensor("x", {1, kFeatures}, Rows(first, 1));
        v1::PredictResponse response;
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
        grpc::Status status = stub->Predict(&context, request, &response);
        if (status.ok()) {
          ++predict_ok;
          ASSERT_EQ(response.outputs_size(), 2);
          EXPECT_EQ(Floats(response.outputs(0)), Times(Rows(first, 1), 2));
        } else {
          // Refused or cut off by the shutdown: never a wrong answer.
          EXPECT_THAT(status.error_code(), ::testing::AnyOf(grpc::UNAVAILABLE, grpc::CANCELLED))
              << status.error_message();
          return;
        }
      }
    });
  }
  for (int j = 0; j < 2; ++j) {
    clients.emplace_back([&, j] {
      grpc::ClientContext context;
      int answered = 0;
      grpc::Status status = RunJob(0, 100000, 8, &context, &answered);
      EXPECT_THAT(status.error_code(), ::testing::AnyOf(grpc::UNAVAILABLE, grpc::CANCELLED))
          << status.error_message();
      // The server's own end of the stream names the offset to resume from;
      // a stream still open when the grace period ends is cut by the
      // transport ("Broken pipe", "Socket closed"), and the client resumes
      // from the rows it was answered.
      if (status.error_code() == grpc::UNAVAILABLE &&
          status.error_message().find("resume") != std::string::npos) {
        EXPECT_THAT(status.error_message(),
                    HasSubstr("resume the job at offset " + std::to_string(answered * 8)));
      }
    });
  }
  // Let traffic flow, then shut down under it.
  const absl::Time end = absl::Now() + absl::Seconds(20);
  while (predict_ok.load() < 20 && absl::Now() < end) absl::SleepFor(absl::Milliseconds(5));
  server_->Shutdown(absl::Seconds(2));
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_GE(predict_ok.load(), 20);
  server_.reset();
}

TEST_F(ServiceConcurrencyTest, InvalidChunksAndProtocolErrorsUnderLoad) {
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([this, t] {
      auto stub = InferenceStub(server_->grpc_port());
      grpc::ClientContext context;
      auto rw = stub->BatchPredict(&context);
      v1::BatchPredictRequest header;
      header.mutable_header()->set_model("double");
      rw->Write(header);
      for (int s = 0; s < 6; ++s) {
        v1::BatchPredictRequest request;
        request.mutable_chunk()->set_sequence(s);
        // Odd chunks have a wrong row width: an in-band error.
        const int width = s % 2 ? 3 : kFeatures;
        std::vector<float> values(10 * width, 1.0f);
        *request.mutable_chunk()->add_inputs() = Fp32Tensor("x", {10, width}, values);
        rw->Write(request);
      }
      // Then a sequence gap: the stream ends.
      v1::BatchPredictRequest gap;
      gap.mutable_chunk()->set_sequence(7 + t);
      rw->Write(gap);
      rw->WritesDone();
      v1::BatchPredictResponse response;
      int answered = 0;
      while (rw->Read(&response)) {
        EXPECT_EQ(response.result().has_error(), answered % 2 == 1);
        ++answered;
      }
      grpc::Status status = rw->Finish();
      EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT) << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("chunk sequence " + std::to_string(7 + t)));
    });
  }
  for (auto& c : clients) c.join();
}

}  // namespace
}  // namespace microbatch
