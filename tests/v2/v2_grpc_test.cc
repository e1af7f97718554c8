// inference.GRPCInferenceService (KServe v2) through a real gRPC channel:
// every RPC, every datatype byte-exact, raw and typed contents, v1 and v2
// requests in one batch, and every bad input with its code and message.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include <grpcpp/generic/generic_stub.h>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/http_get.h"
#include "tests/server/metrics_text.h"
#include "tests/v2/v2_server.h"
#include "tests/v2/v2_test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::HttpGet;
using ::microbatch::testing::InferenceStub;
using ::microbatch::testing::Sample;
using ::microbatch::testing::V2Datatypes;
using ::microbatch::testing::V2Server;
using ::microbatch::testing::V2Stub;
using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

std::vector<float> Floats(const std::string& bytes) {
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

size_t SizeOf(const std::string& dtype) {
  if (dtype == "FP64" || dtype == "INT64") return 8;
  if (dtype == "FP32" || dtype == "INT32") return 4;
  if (dtype == "FP16" || dtype == "BF16" || dtype == "INT16") return 2;
  return 1;
}

// Random bytes that are valid values of `dtype` (BOOL: 0 or 1).
std::string RandomBytes(const std::string& dtype, size_t elements, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(elements * SizeOf(dtype), '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  if (dtype == "BOOL") {
    for (char& c : bytes) c = static_cast<char>(c & 1);
  }
  return bytes;
}

class V2GrpcTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new V2Server("v2_grpc_test", 4); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static grpc::Status Infer(const inference::ModelInferRequest& request,
                            inference::ModelInferResponse* response) {
    auto stub = V2Stub(server_->grpc_port());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub->ModelInfer(&context, request, response);
  }

  static inference::ModelInferRequest MlpRequest(const std::vector<float>& values, int64_t rows) {
    inference::ModelInferRequest request;
    request.set_model_name("mlp");
    auto* input = request.add_inputs();
    input->set_name("x");
    input->set_datatype("FP32");
    input->add_shape(rows);
    input->add_shape(16);
    request.add_raw_input_contents(reinterpret_cast<const char*>(values.data()),
                                   values.size() * sizeof(float));
    return request;
  }

  // The call's status, expected non-OK with `code` and a message holding
  // `text`.
  static void ExpectError(const inference::ModelInferRequest& request, grpc::StatusCode code,
                          const std::string& text) {
    inference::ModelInferResponse response;
    grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(text));
  }

  static V2Server* server_;
};

V2Server* V2GrpcTest::server_ = nullptr;

std::vector<float> Values(size_t n, float scale) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = std::sin(static_cast<float>(i) * scale);
  return values;
}

TEST_F(V2GrpcTest, HealthAndServerMetadata) {
  auto stub = V2Stub(server_->grpc_port());
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse response;
    ASSERT_TRUE(stub->ServerLive(&context, {}, &response).ok());
    EXPECT_TRUE(response.live());
  }
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse response;
    ASSERT_TRUE(stub->ServerReady(&context, {}, &response).ok());
    EXPECT_TRUE(response.ready());
  }
  {
    grpc::ClientContext context;
    inference::ServerMetadataResponse response;
    ASSERT_TRUE(stub->ServerMetadata(&context, {}, &response).ok());
    EXPECT_EQ(response.name(), "microbatch");
    EXPECT_FALSE(response.version().empty());
    EXPECT_THAT(response.extensions(),
                ::testing::UnorderedElementsAre("classification", "model_repository", "model_configuration",
                                                "statistics"));
  }
}

TEST_F(V2GrpcTest, ModelReadyForKnownAndUnknownModelsAndVersions) {
  auto stub = V2Stub(server_->grpc_port());
  auto ready = [&](const std::string& name, const std::string& version) {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    grpc::Status status = stub->ModelReady(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.ready();
  };
  EXPECT_TRUE(ready("mlp", ""));
  EXPECT_TRUE(ready("mlp", "1"));
  EXPECT_FALSE(ready("mlp", "2"));
  EXPECT_FALSE(ready("nope", ""));
  EXPECT_FALSE(ready("mlp", "stable"));  // no such label
}

TEST_F(V2GrpcTest, ModelMetadataDescribesTensorsInV2Terms) {
  auto stub = V2Stub(server_->grpc_port());
  grpc::ClientContext context;
  inference::ModelMetadataRequest request;
  request.set_name("mlp");
  inference::ModelMetadataResponse response;
  ASSERT_TRUE(stub->ModelMetadata(&context, request, &response).ok());
  EXPECT_EQ(response.name(), "mlp");
  EXPECT_THAT(response.versions(), ElementsAre("1"));
  EXPECT_EQ(response.platform(), "pytorch_libtorch");
  ASSERT_EQ(response.inputs_size(), 1);
  EXPECT_EQ(response.inputs(0).name(), "x");
  EXPECT_EQ(response.inputs(0).datatype(), "FP32");
  EXPECT_THAT(response.inputs(0).shape(), ElementsAre(-1, 16));
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "logits");
  EXPECT_THAT(response.outputs(1).shape(), ElementsAre(-1, 4));

  grpc::ClientContext unknown_context;
  request.set_name("nope");
  grpc::Status status = stub->ModelMetadata(&unknown_context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("'nope' is not served"));

  grpc::ClientContext int8_context;
  request.set_name("id_int8");
  ASSERT_TRUE(stub->ModelMetadata(&int8_context, request, &response).ok());
  EXPECT_EQ(response.inputs(0).datatype(), "INT8");
}

// Triton's ModelConfig call (tritonclient's get_model_config, perf_analyzer):
// the demo mlp's config.pbtxt in Triton's terms.
TEST_F(V2GrpcTest, ModelConfigDescribesTheModelAsTritonDoes) {
  auto stub = V2Stub(server_->grpc_port());
  grpc::ClientContext context;
  inference::ModelConfigRequest request;
  request.set_name("mlp");
  inference::ModelConfigResponse response;
  grpc::Status status = stub->ModelConfig(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const microbatch::triton::ModelConfig& c = response.config();
  EXPECT_EQ(c.name(), "mlp");
  EXPECT_EQ(c.platform(), "pytorch_libtorch");
  EXPECT_EQ(c.backend(), "pytorch");
  EXPECT_EQ(c.max_batch_size(), 64);
  ASSERT_EQ(c.input_size(), 1);
  EXPECT_EQ(c.input(0).name(), "x");
  EXPECT_EQ(c.input(0).data_type(), microbatch::triton::TYPE_FP32);
  EXPECT_THAT(c.input(0).dims(), ::testing::ElementsAre(16));
  ASSERT_EQ(c.output_size(), 2);
  EXPECT_EQ(c.output(1).name(), "probs");
  EXPECT_THAT(c.output(1).dims(), ::testing::ElementsAre(4));
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).count(), 2);
  EXPECT_EQ(c.instance_group(0).kind(), microbatch::triton::ModelInstanceGroup::KIND_CPU);
  EXPECT_TRUE(c.has_dynamic_batching());
  EXPECT_EQ(c.dynamic_batching().default_queue_policy().max_queue_size(), 1024);
  EXPECT_EQ(c.version_policy().latest().num_versions(), 1u);
  EXPECT_EQ(c.parameters().at("INTRA_OP_THREAD_COUNT").string_value(), "1");

  grpc::ClientContext unknown_context;
  request.set_name("nope");
  status = stub->ModelConfig(&unknown_context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("'nope' is not served"));
}

// Triton's statistics extension: what perf_analyzer reads for its
// server-side split. Counts are compared before and after (other tests in
// the suite use the same server).
TEST_F(V2GrpcTest, ModelStatisticsCountRequestsRowsAndBatches) {
  auto stub = V2Stub(server_->grpc_port());
  auto statistics = [&](const std::string& name, const std::string& version) {
    grpc::ClientContext context;
    inference::ModelStatisticsRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelStatisticsResponse response;
    grpc::Status status = stub->ModelStatistics(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  };
  inference::ModelStatisticsResponse before = statistics("mlp", "1");
  ASSERT_EQ(before.model_stats_size(), 1);
  const uint64_t started_ms = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
  for (int i = 0; i < 3; ++i) {
    inference::ModelInferResponse response;
    ASSERT_TRUE(Infer(MlpRequest(std::vector<float>(32, 0.25f), 2), &response).ok());
  }
  inference::ModelInferResponse refused;
  EXPECT_FALSE(Infer(MlpRequest(std::vector<float>(15, 0.25f), 1), &refused).ok());  // 15 of 16 values
  inference::ModelStatisticsResponse after = statistics("mlp", "1");
  ASSERT_EQ(after.model_stats_size(), 1);
  const inference::ModelStatistics& a = after.model_stats(0);
  const inference::ModelStatistics& b = before.model_stats(0);
  EXPECT_EQ(a.name(), "mlp");
  EXPECT_EQ(a.version(), "1");
  EXPECT_GE(a.last_inference(), started_ms);
  EXPECT_EQ(a.inference_stats().success().count() - b.inference_stats().success().count(), 3u);
  EXPECT_GT(a.inference_stats().success().ns(), b.inference_stats().success().ns());
  EXPECT_EQ(a.inference_stats().fail().count() - b.inference_stats().fail().count(), 1u);
  EXPECT_EQ(a.inference_stats().queue().count() - b.inference_stats().queue().count(), 3u);
  EXPECT_EQ(a.inference_stats().compute_infer().count() - b.inference_stats().compute_infer().count(), 3u);
  EXPECT_GT(a.inference_stats().compute_infer().ns(), b.inference_stats().compute_infer().ns());
  EXPECT_EQ(a.inference_count() - b.inference_count(), 6u);  // rows
  EXPECT_GE(a.execution_count() - b.execution_count(), 1u);  // batches: 1 to 3
  EXPECT_LE(a.execution_count() - b.execution_count(), 3u);
  uint64_t batches = 0;
  for (const auto& batch : a.batch_stats()) {
    EXPECT_GE(batch.batch_size(), 1u);
    batches += batch.compute_infer().count();
  }
  EXPECT_EQ(batches, a.execution_count());

  // Every served version, ordered; one model's versions; errors.
  inference::ModelStatisticsResponse all = statistics("", "");
  std::vector<std::string> names;
  for (const auto& m : all.model_stats()) names.push_back(m.name());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_THAT(names, ::testing::IsSupersetOf({"mlp", "pair", "identity"}));
  EXPECT_EQ(statistics("pair", "").model_stats_size(), 1);
  grpc::ClientContext unknown;
  inference::ModelStatisticsRequest request;
  request.set_name("nope");
  inference::ModelStatisticsResponse response;
  EXPECT_EQ(stub->ModelStatistics(&unknown, request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext malformed;
  request.set_name("mlp");
  request.set_version("0");
  EXPECT_EQ(stub->ModelStatistics(&malformed, request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// gRPC clients may compress their messages (grpc-encoding: gzip, deflate)
// and ask for compressed answers; both front ends take the message bytes
// raw, so this checks that they see them decompressed.
TEST_F(V2GrpcTest, CompressedRequestsAndAnswersGiveTheSameResult) {
  const std::vector<float> values(32, 0.5f);
  inference::ModelInferResponse plain;
  ASSERT_TRUE(Infer(MlpRequest(values, 2), &plain).ok());
  for (grpc_compression_algorithm algorithm : {GRPC_COMPRESS_GZIP, GRPC_COMPRESS_DEFLATE}) {
    auto stub = V2Stub(server_->grpc_port());
    grpc::ClientContext context;
    context.set_compression_algorithm(algorithm);
    inference::ModelInferResponse compressed;
    grpc::Status status = stub->ModelInfer(&context, MlpRequest(values, 2), &compressed);
    ASSERT_TRUE(status.ok()) << algorithm << ": " << status.error_message();
    ASSERT_EQ(compressed.raw_output_contents_size(), plain.raw_output_contents_size());
    for (int i = 0; i < plain.raw_output_contents_size(); ++i) {
      EXPECT_EQ(compressed.raw_output_contents(i), plain.raw_output_contents(i)) << algorithm;
    }
  }
  // microbatch.v1 Predict too.
  auto v1 = InferenceStub(server_->grpc_port());
  grpc::ClientContext context;
  context.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  v1::PredictRequest request;
  request.set_model("mlp");
  *request.add_inputs() = Fp32Tensor("x", {2, 16}, values);
  v1::PredictResponse response;
  grpc::Status status = v1->Predict(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.outputs(0).data(), plain.raw_output_contents(0));
}

// Triton's ModelStreamInfer: more requests than the server keeps in flight
// per stream (flow control), two bad ones among them; each id answered
// once, the bad ones with error_message, the good ones as ModelInfer
// answers them, and the stream ends OK.
TEST_F(V2GrpcTest, StreamInferAnswersEveryRequestOnce) {
  auto stub = V2Stub(server_->grpc_port());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->ModelStreamInfer(&context);
  constexpr int kRequests = 150;  // > StreamInferReactor::kMaxPendingRequests
  std::map<std::string, inference::ModelInferRequest> sent;
  for (int i = 0; i < kRequests; ++i) {
    inference::ModelInferRequest request = MlpRequest(std::vector<float>(16, 0.01f * static_cast<float>(i)), 1);
    request.set_id("r" + std::to_string(i));
    if (i == 5) request = MlpRequest(std::vector<float>(15, 1.0f), 1);  // 15 of 16 values
    if (i == 7) request.set_model_name("nope");
    request.set_id("r" + std::to_string(i));
    sent[request.id()] = request;
    ASSERT_TRUE(stream->Write(request)) << i;
  }
  ASSERT_TRUE(stream->WritesDone());
  std::map<std::string, inference::ModelStreamInferResponse> answers;
  inference::ModelStreamInferResponse response;
  while (stream->Read(&response)) {
    const std::string id = response.infer_response().id();
    EXPECT_TRUE(answers.emplace(id, response).second) << "answered twice: " << id;
  }
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(answers.size(), static_cast<size_t>(kRequests));
  EXPECT_THAT(answers["r5"].error_message(), HasSubstr("needs 64 bytes, got 60"));
  EXPECT_THAT(answers["r7"].error_message(), HasSubstr("'nope' is not served"));
  EXPECT_EQ(answers["r7"].infer_response().model_name(), "nope");
  for (int i : {0, 1, 64, 149}) {
    const std::string id = "r" + std::to_string(i);
    ASSERT_TRUE(answers[id].error_message().empty()) << id << ": " << answers[id].error_message();
    inference::ModelInferResponse unary;
    ASSERT_TRUE(Infer(sent[id], &unary).ok());
    EXPECT_EQ(answers[id].infer_response().model_name(), "mlp");
    // Equal up to rounding: in the stream the row ran in a larger batch,
    // and BLAS kernels round differently per batch size.
    EXPECT_THAT(Floats(answers[id].infer_response().raw_output_contents(0)),
                Pointwise(FloatNear(1e-5f), Floats(unary.raw_output_contents(0))))
        << id;
    EXPECT_EQ(answers[id].infer_response().outputs_size(), 2);
  }
}

TEST_F(V2GrpcTest, StreamInferCancelledByTheClientLeavesTheServerServing) {
  for (int round = 0; round < 3; ++round) {
    auto stub = V2Stub(server_->grpc_port());
    grpc::ClientContext context;
    auto stream = stub->ModelStreamInfer(&context);
    for (int i = 0; i < 10; ++i) {
      inference::ModelInferRequest request = MlpRequest(std::vector<float>(16, 0.5f), 1);
      request.set_id(std::to_string(i));
      if (!stream->Write(request)) break;
    }
    inference::ModelStreamInferResponse response;
    if (round > 0) {  // round 0 cancels before any answer
      EXPECT_TRUE(stream->Read(&response));
    }
    context.TryCancel();
    while (stream->Read(&response)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // An empty stream ends OK at once.
  {
    auto stub = V2Stub(server_->grpc_port());
    grpc::ClientContext context;
    auto stream = stub->ModelStreamInfer(&context);
    ASSERT_TRUE(stream->WritesDone());
    inference::ModelStreamInferResponse response;
    EXPECT_FALSE(stream->Read(&response));
    EXPECT_TRUE(stream->Finish().ok());
  }
  inference::ModelInferResponse unary;
  EXPECT_TRUE(Infer(MlpRequest(std::vector<float>(16, 0.5f), 1), &unary).ok());
}

// The BYTES elements of a raw_output_contents buffer (4-byte little-endian
// length, then the bytes, per element).
std::vector<std::string> BytesElements(const std::string& raw) {
  std::vector<std::string> elements;
  size_t at = 0;
  while (at + 4 <= raw.size()) {
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data() + at);
    const size_t n = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<size_t>(p[3]) << 24);
    elements.push_back(raw.substr(at + 4, n));
    at += 4 + n;
  }
  EXPECT_EQ(at, raw.size()) << "trailing bytes";
  return elements;
}

// Triton's classification extension over gRPC, unary and streamed: a BYTES
// output in raw_output_contents, as Triton's clients read it.
TEST_F(V2GrpcTest, ClassificationAnswersTheTopClassesAsBytes) {
  inference::ServerMetadataResponse metadata;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(V2Stub(server_->grpc_port())->ServerMetadata(&context, {}, &metadata).ok());
  }
  EXPECT_THAT(metadata.extensions(), ::testing::Contains("classification"));

  inference::ModelInferRequest request;
  request.set_model_name("labelled");
  request.set_id("c1");
  auto* input = request.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(2);
  input->add_shape(4);
  const std::vector<float> values = {0.5f, 2.0f, -1.0f, 0.25f, 3.0f, 1.0f, 2.5f, 0.0f};
  request.add_raw_input_contents(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  auto* output = request.add_outputs();
  output->set_name("y");
  (*output->mutable_parameters())["classification"].set_int64_param(2);

  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "c1");
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).datatype(), "BYTES");
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(2, 2));
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  const std::vector<std::string> expected = {"2.000000:1:dog", "0.500000:0:cat", "3.000000:0:cat",
                                             "2.500000:2:bird"};
  EXPECT_EQ(BytesElements(response.raw_output_contents(0)), expected);

  // The same through ModelStreamInfer.
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto stream = V2Stub(server_->grpc_port())->ModelStreamInfer(&context);
    ASSERT_TRUE(stream->Write(request));
    ASSERT_TRUE(stream->WritesDone());
    inference::ModelStreamInferResponse streamed;
    ASSERT_TRUE(stream->Read(&streamed));
    EXPECT_EQ(streamed.error_message(), "");
    EXPECT_EQ(streamed.infer_response().outputs(0).datatype(), "BYTES");
    EXPECT_EQ(BytesElements(streamed.infer_response().raw_output_contents(0)), expected);
    EXPECT_TRUE(stream->Finish().ok());
  }

  // A count that is not an int64_param >= 1: INVALID_ARGUMENT naming it.
  inference::ModelInferRequest bad = request;
  (*bad.mutable_outputs(0)->mutable_parameters())["classification"].set_int64_param(0);
  ExpectError(bad, grpc::StatusCode::INVALID_ARGUMENT,
              "output 'y': parameter 'classification' must be an int64_param >= 1");
  (*bad.mutable_outputs(0)->mutable_parameters())["classification"].set_string_param("2");
  ExpectError(bad, grpc::StatusCode::INVALID_ARGUMENT,
              "output 'y': parameter 'classification' must be an int64_param >= 1");
}

TEST_F(V2GrpcTest, ModelInferMatchesPredictExactlyAndEchoesId) {
  const std::vector<float> values = Values(3 * 16, 0.37f);
  inference::ModelInferRequest request = MlpRequest(values, 3);
  request.set_id("request-7");
  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model_name(), "mlp");
  EXPECT_EQ(response.model_version(), "1");
  EXPECT_EQ(response.id(), "request-7");
  ASSERT_EQ(response.outputs_size(), 2);
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "logits");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(3, 4));
  EXPECT_EQ(response.raw_output_contents(0).size(), 3 * 4 * sizeof(float));

  v1::PredictRequest v1_request;
  v1_request.set_model("mlp");
  *v1_request.add_inputs() = Fp32Tensor("x", {3, 16}, values);
  v1::PredictResponse v1_response;
  grpc::ClientContext context;
  ASSERT_TRUE(InferenceStub(server_->grpc_port())->Predict(&context, v1_request, &v1_response).ok());
  EXPECT_EQ(response.raw_output_contents(0), v1_response.outputs(0).data());
  EXPECT_EQ(response.raw_output_contents(1), v1_response.outputs(1).data());
}

TEST_F(V2GrpcTest, TypedContentsGiveTheSameAnswerAsRaw) {
  const std::vector<float> values = Values(2 * 16, 1.3f);
  inference::ModelInferRequest raw = MlpRequest(values, 2);
  inference::ModelInferRequest typed = raw;
  typed.clear_raw_input_contents();
  for (float v : values) typed.mutable_inputs(0)->mutable_contents()->add_fp32_contents(v);
  inference::ModelInferResponse raw_response, typed_response;
  ASSERT_TRUE(Infer(raw, &raw_response).ok());
  grpc::Status status = Infer(typed, &typed_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(raw_response.raw_output_contents(0), typed_response.raw_output_contents(0));
  EXPECT_EQ(raw_response.raw_output_contents(1), typed_response.raw_output_contents(1));
}

TEST_F(V2GrpcTest, EveryDatatypeRoundTripsByteExactRaw) {
  for (const std::string& dtype : V2Datatypes()) {
    SCOPED_TRACE(dtype);
    const std::string bytes = RandomBytes(dtype, 3 * 5, 7);
    inference::ModelInferRequest request;
    request.set_model_name("id_" + absl::AsciiStrToLower(dtype));
    auto* input = request.add_inputs();
    input->set_name("x");
    input->set_datatype(dtype);
    input->add_shape(3);
    input->add_shape(5);
    request.add_raw_input_contents(bytes);
    inference::ModelInferResponse response;
    grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.outputs_size(), 1);
    EXPECT_EQ(response.outputs(0).datatype(), dtype);
    EXPECT_THAT(response.outputs(0).shape(), ElementsAre(3, 5));
    EXPECT_EQ(response.raw_output_contents(0), bytes);
  }
}

TEST_F(V2GrpcTest, EveryTypedFieldDecodesToTheSameBytes) {
  struct Case {
    std::string dtype;
    std::function<void(inference::InferTensorContents*)> fill;
    std::string expected;  // little-endian bytes
  };
  auto bytes_of = [](auto... v) {
    std::string out;
    ((out.append(reinterpret_cast<const char*>(&v), sizeof(v))), ...);
    return out;
  };
  const std::vector<Case> cases = {
      {"FP32", [](auto* c) { c->add_fp32_contents(1.5f); c->add_fp32_contents(-0.25f); },
       bytes_of(1.5f, -0.25f)},
      {"FP64", [](auto* c) { c->add_fp64_contents(1e300); c->add_fp64_contents(-2.0); },
       bytes_of(1e300, -2.0)},
      {"INT64", [](auto* c) { c->add_int64_contents(int64_t{1} << 40); c->add_int64_contents(-3); },
       bytes_of(int64_t{1} << 40, int64_t{-3})},
      {"INT32", [](auto* c) { c->add_int_contents(-70000); c->add_int_contents(5); },
       bytes_of(int32_t{-70000}, int32_t{5})},
      {"INT16", [](auto* c) { c->add_int_contents(-300); c->add_int_contents(32767); },
       bytes_of(int16_t{-300}, int16_t{32767})},
      {"INT8", [](auto* c) { c->add_int_contents(-128); c->add_int_contents(127); },
       bytes_of(int8_t{-128}, int8_t{127})},
      {"UINT8", [](auto* c) { c->add_uint_contents(255); c->add_uint_contents(0); },
       bytes_of(uint8_t{255}, uint8_t{0})},
      {"BOOL", [](auto* c) { c->add_bool_contents(true); c->add_bool_contents(false); },
       bytes_of(uint8_t{1}, uint8_t{0})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dtype);
    inference::ModelInferRequest request;
    request.set_model_name("id_" + absl::AsciiStrToLower(c.dtype));
    auto* input = request.add_inputs();
    input->set_name("x");
    input->set_datatype(c.dtype);
    input->add_shape(1);
    input->add_shape(2);
    c.fill(input->mutable_contents());
    inference::ModelInferResponse response;
    grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.raw_output_contents(0), c.expected);
  }
}

TEST_F(V2GrpcTest, RequestedOutputsComeBackInTheAskedOrder) {
  inference::ModelInferRequest request;
  request.set_model_name("pair");
  for (const char* name : {"a", "b"}) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype("FP32");
    input->add_shape(1);
    input->add_shape(2);
  }
  const float a[] = {1, 2}, b[] = {3, 4};
  request.add_raw_input_contents(reinterpret_cast<const char*>(a), sizeof(a));
  request.add_raw_input_contents(reinterpret_cast<const char*>(b), sizeof(b));
  request.add_outputs()->set_name("product");
  request.add_outputs()->set_name("sum");
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "product");
  EXPECT_EQ(response.outputs(1).name(), "sum");
  const float product[] = {3, 8}, sum[] = {4, 6};
  EXPECT_EQ(response.raw_output_contents(0), std::string(reinterpret_cast<const char*>(product), 8));
  EXPECT_EQ(response.raw_output_contents(1), std::string(reinterpret_cast<const char*>(sum), 8));
}

TEST_F(V2GrpcTest, VersionStringsSelectVersions) {
  inference::ModelInferRequest request = MlpRequest(Values(16, 1.0f), 1);
  inference::ModelInferResponse response;
  request.set_model_version("1");
  ASSERT_TRUE(Infer(request, &response).ok());
  EXPECT_EQ(response.model_version(), "1");
  request.set_model_version("2");
  ExpectError(request, grpc::StatusCode::NOT_FOUND, "has no ready version 2");
  request.set_model_version("0");
  ExpectError(request, grpc::StatusCode::INVALID_ARGUMENT, "neither a positive version number");
  request.set_model_version("-1");
  ExpectError(request, grpc::StatusCode::INVALID_ARGUMENT, "neither a positive version number");
  request.set_model_version("canary");
  ExpectError(request, grpc::StatusCode::NOT_FOUND, "no version label 'canary'");
}

TEST_F(V2GrpcTest, BadInputsGetClearErrors) {
  const std::vector<float> row = Values(16, 0.5f);
  inference::ModelInferRequest good = MlpRequest(row, 1);

  inference::ModelInferRequest r = good;
  r.mutable_inputs(0)->set_datatype("FLOAT");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "input 'x': unknown datatype 'FLOAT'");

  r = good;
  r.mutable_inputs(0)->set_datatype("UINT32");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "datatype UINT32 is not taken");

  r = good;
  r.mutable_inputs(0)->set_datatype("BYTES");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "datatype BYTES is not taken");

  r = good;
  r.mutable_inputs(0)->set_datatype("INT32");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "input 'x': expected dtype FP32, got INT32");

  r = good;
  r.mutable_inputs(0)->set_shape(1, 15);
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "input 'x'");

  r = good;  // shape right, bytes short
  r.mutable_raw_input_contents(0)->resize(15 * sizeof(float));
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "input 'x'");

  r = good;  // raw and typed both
  r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT,
              "both raw_input_contents and contents are set");

  r = good;  // two raw buffers for one input
  r.add_raw_input_contents("xxxx");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "raw_input_contents has 2 buffers for 1 inputs");

  r = good;  // typed, wrong field
  r.clear_raw_input_contents();
  for (int i = 0; i < 16; ++i) r.mutable_inputs(0)->mutable_contents()->add_int64_contents(i);
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT,
              "datatype FP32 takes its values in contents.fp32_contents, got contents.int64_contents");

  r = good;  // no data at all
  r.clear_raw_input_contents();
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "input 'x'");

  r = good;
  r.set_model_name("nope");
  ExpectError(r, grpc::StatusCode::NOT_FOUND, "model 'nope' is not served");

  r = good;
  r.add_outputs()->set_name("nope");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "nope");

  r = good;
  r.mutable_inputs(0)->set_name("y");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT, "'y'");

  // Extensions not served are refused, never ignored (an ignored
  // shared-memory output would be a wrong answer).
  r = good;
  auto* to_shm = r.add_outputs();
  to_shm->set_name("logits");
  (*to_shm->mutable_parameters())["shared_memory_region"].set_string_param("out0");
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT,
              "output 'logits': shared memory (parameter shared_memory_region) is not supported");

  r = good;
  r.clear_raw_input_contents();
  (*r.mutable_inputs(0)->mutable_parameters())["shared_memory_region"].set_string_param("in0");
  (*r.mutable_inputs(0)->mutable_parameters())["shared_memory_byte_size"].set_int64_param(64);
  ExpectError(r, grpc::StatusCode::INVALID_ARGUMENT,
              "input 'x': shared memory (parameter shared_memory_region) is not supported");

  inference::ModelInferRequest int8;
  int8.set_model_name("id_int8");
  auto* input = int8.add_inputs();
  input->set_name("x");
  input->set_datatype("INT8");
  input->add_shape(1);
  input->add_shape(1);
  input->mutable_contents()->add_int_contents(300);
  ExpectError(int8, grpc::StatusCode::INVALID_ARGUMENT, "value 300 at index 0 does not fit INT8");

  inference::ModelInferRequest fp16;
  fp16.set_model_name("id_fp16");
  input = fp16.add_inputs();
  input->set_name("x");
  input->set_datatype("FP16");
  input->add_shape(1);
  input->add_shape(1);
  input->mutable_contents()->add_fp32_contents(1.0f);
  ExpectError(fp16, grpc::StatusCode::INVALID_ARGUMENT,
              "FP16 has no typed contents field; send its bytes in raw_input_contents");
}

// Triton's request parameter timeout (microseconds) bounds the request as
// a gRPC deadline does; the shorter of the two holds.
TEST_F(V2GrpcTest, TimeoutParameterBoundsTheRequest) {
  inference::ModelInferRequest request = MlpRequest(Values(16, 0.5f), 1);
  (*request.mutable_parameters())["timeout"].set_int64_param(1);
  ExpectError(request, grpc::StatusCode::DEADLINE_EXCEEDED, "the deadline passed");
  (*request.mutable_parameters())["timeout"].set_int64_param(60'000'000);
  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  (*request.mutable_parameters())["timeout"].set_int64_param(0);  // none
  EXPECT_TRUE(Infer(request, &response).ok());
  (*request.mutable_parameters())["timeout"].set_string_param("soon");
  ExpectError(request, grpc::StatusCode::INVALID_ARGUMENT, "parameter 'timeout' must be an int64_param");
}

TEST_F(V2GrpcTest, UndecodableBodyIsInvalidArgument) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  const std::string junk = "\xff\xff\xff\xff not a message";
  grpc::Slice slice(junk);
  grpc::ByteBuffer request(&slice, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&context, "/inference.GRPCInferenceService/ModelInfer", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = s;
                   done = true;
                   cv.notify_one();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(V2GrpcTest, BadRequestsDoNotDisturbGoodOnesInTheSameBatch) {
  constexpr int kCallers = 16;
  std::vector<std::thread> threads;
  std::atomic<int> good_ok{0}, bad_refused{0};
  for (int c = 0; c < kCallers; ++c) {
    threads.emplace_back([&, c] {
      const std::vector<float> row = Values(16, 0.1f * static_cast<float>(c + 1));
      for (int round = 0; round < 10; ++round) {
        inference::ModelInferRequest request = MlpRequest(row, 1);
        if (c % 2 == 1) request.mutable_raw_input_contents(0)->resize(7);
        inference::ModelInferResponse response;
        grpc::Status status = Infer(request, &response);
        if (c % 2 == 0 && status.ok() && response.raw_output_contents_size() == 2) good_ok++;
        if (c % 2 == 1 && status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) bad_refused++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good_ok.load(), kCallers / 2 * 10);
  EXPECT_EQ(bad_refused.load(), kCallers / 2 * 10);
}

TEST_F(V2GrpcTest, V1AndV2RequestsShareOneBatch) {
  // "mixed" closes a batch at 2 rows or after 5 s: a v1 and a v2 request
  // sent together make one batch of 2.
  const std::string series = "microbatch_batches_total{model=\"mixed\",version=\"1\"}";
  const std::string rows = "microbatch_inference_rows_total{model=\"mixed\",version=\"1\"}";
  const std::string before = HttpGet(server_->http_port(), "/metrics").body;
  const double batches_before = std::max(0.0, Sample(before, series));
  const double rows_before = std::max(0.0, Sample(before, rows));
  const float a[] = {1, 2, 3}, b[] = {4, 5, 6};
  v1::PredictResponse v1_response;
  grpc::Status v1_status;
  std::thread v1_call([&] {
    v1::PredictRequest request;
    request.set_model("mixed");
    *request.add_inputs() = Fp32Tensor("x", {1, 3}, {a[0], a[1], a[2]});
    grpc::ClientContext context;
    v1_status = InferenceStub(server_->grpc_port())->Predict(&context, request, &v1_response);
  });
  inference::ModelInferRequest request;
  request.set_model_name("mixed");
  auto* input = request.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(3);
  request.add_raw_input_contents(reinterpret_cast<const char*>(b), sizeof(b));
  inference::ModelInferResponse response;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = Infer(request, &response);
  v1_call.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(v1_status.ok()) << v1_status.error_message();
  EXPECT_EQ(response.raw_output_contents(0), std::string(reinterpret_cast<const char*>(b), sizeof(b)));
  EXPECT_EQ(v1_response.outputs(0).data(), std::string(reinterpret_cast<const char*>(a), sizeof(a)));
  // Both answered well before the 5 s timeout: the batch closed on size.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  const std::string after = HttpGet(server_->http_port(), "/metrics").body;
  EXPECT_EQ(Sample(after, series) - batches_before, 1);
  EXPECT_EQ(Sample(after, rows) - rows_before, 2);
  EXPECT_GE(Sample(after, "microbatch_requests_total{model=\"mixed\",version=\"1\",method=\"ModelInfer\",code=\"OK\"}"), 1);
  EXPECT_GE(Sample(after, "microbatch_requests_total{model=\"mixed\",version=\"1\",method=\"Predict\",code=\"OK\"}"), 1);
}

}  // namespace
}  // namespace microbatch
