// The KServe v2 REST API through real HTTP on loopback: every endpoint,
// every datatype in JSON and binary, the status and message of every bad
// input, and health probes answered while infer calls are in flight on a
// single HTTP thread.
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/tensor/float16.h"
#include "nlohmann/json.hpp"
#include "server/http/content_coding.h"
#include "tests/server/metrics_text.h"
#include "tests/v2/v2_server.h"
#include "tests/v2/v2_test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Http;
using ::microbatch::testing::HttpResult;
using ::microbatch::testing::Sample;
using ::microbatch::testing::V2Server;
using ::testing::HasSubstr;
using json = nlohmann::json;

class V2RestTest : public ::testing::Test {
 protected:
  // One HTTP thread: infer calls in flight must not hold it.
  static void SetUpTestSuite() { server_ = new V2Server("v2_rest_test", 1); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static HttpResult Get(const std::string& path) { return Http(server_->http_port(), "GET", path); }
  static HttpResult Post(const std::string& path, const std::string& body,
                         const std::vector<std::string>& headers = {}) {
    return Http(server_->http_port(), "POST", path, body, headers);
  }
  // Expects `status` and an {"error": ...} body holding `text`.
  static void ExpectError(const HttpResult& result, long status, const std::string& text) {
    EXPECT_EQ(result.status, status) << result.body;
    json body = json::parse(result.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << result.body;
    ASSERT_TRUE(body.contains("error")) << result.body;
    EXPECT_THAT(body["error"].get<std::string>(), HasSubstr(text));
  }

  static V2Server* server_;
};

V2Server* V2RestTest::server_ = nullptr;

const std::string kMlpRow =
    "[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.4,1.5,1.6]";

TEST_F(V2RestTest, ServerEndpoints) {
  HttpResult meta = Get("/v2");
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(meta.headers["content-type"], "application/json");
  json body = json::parse(meta.body);
  EXPECT_EQ(body["name"], "microbatch");
  EXPECT_TRUE(body["version"].is_string());
  EXPECT_THAT(body["extensions"].get<std::vector<std::string>>(),
              ::testing::IsSupersetOf({"binary_tensor_data", "model_repository", "model_configuration",
                                       "statistics"}));
  // Health answers carry the Open Inference Protocol's JSON objects.
  HttpResult live = Get("/v2/health/live");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.headers["content-type"], "application/json");
  EXPECT_EQ(json::parse(live.body, nullptr, false), json({{"live", true}})) << live.body;
  HttpResult ready = Get("/v2/health/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(json::parse(ready.body, nullptr, false), json({{"ready", true}})) << ready.body;
  EXPECT_EQ(Get("/v2/").status, 200);
  ExpectError(Get("/v2/nothing"), 404, "no such endpoint");
  ExpectError(Post("/v2/health/ready", "{}"), 405, "use GET");
  // The operational endpoints still work next to /v2.
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
}

TEST_F(V2RestTest, ModelMetadataAndReadiness) {
  HttpResult meta = Get("/v2/models/mlp");
  ASSERT_EQ(meta.status, 200) << meta.body;
  json body = json::parse(meta.body);
  EXPECT_EQ(body["name"], "mlp");
  EXPECT_EQ(body["versions"], json::array({"1"}));
  EXPECT_EQ(body["platform"], "pytorch_libtorch");
  EXPECT_EQ(body["inputs"][0]["name"], "x");
  EXPECT_EQ(body["inputs"][0]["datatype"], "FP32");
  EXPECT_EQ(body["inputs"][0]["shape"], json::array({-1, 16}));
  EXPECT_EQ(body["outputs"][1]["name"], "probs");
  EXPECT_EQ(Get("/v2/models/mlp/versions/1").status, 200);
  ExpectError(Get("/v2/models/mlp/versions/9"), 404, "has no ready version 9");
  ExpectError(Get("/v2/models/nope"), 404, "'nope' is not served");
  ExpectError(Get("/v2/models/mlp/versions/0"), 400, "neither a positive version number");
  for (const char* path : {"/v2/models/mlp/ready", "/v2/models/mlp/versions/1/ready"}) {
    HttpResult ready = Get(path);
    EXPECT_EQ(ready.status, 200) << path;
    EXPECT_EQ(json::parse(ready.body, nullptr, false), json({{"name", "mlp"}, {"ready", true}}))
        << path << ": " << ready.body;
  }
  ExpectError(Get("/v2/models/nope/ready"), 404, "'nope' is not served");
  ExpectError(Get("/v2/models/mlp/versions/2/ready"), 404, "has no ready version 2");
  ExpectError(Get("/v2/models/mlp/infer"), 405, "use POST");
  // Triton's model configuration endpoint: proto field names, numbers as
  // numbers, and fields at their defaults written too (as Triton does).
  HttpResult config = Get("/v2/models/mlp/config");
  ASSERT_EQ(config.status, 200) << config.body;
  json c = json::parse(config.body);
  EXPECT_EQ(c["name"], "mlp");
  EXPECT_EQ(c["platform"], "pytorch_libtorch");
  EXPECT_EQ(c["max_batch_size"], 64);
  EXPECT_EQ(c["input"], json::parse(R"([{"name":"x","data_type":"TYPE_FP32","dims":[16],
      "is_shape_tensor":false,"allow_ragged_batch":false,"optional":false}])"));
  EXPECT_EQ(c["output"][0]["is_shape_tensor"], false);
  EXPECT_FALSE(c["output"][0].contains("reshape"));  // a message not set is left out
  EXPECT_EQ(c["instance_group"][0]["passive"], false);
  EXPECT_EQ(c["instance_group"][0]["count"], 2);
  EXPECT_EQ(c["instance_group"][0]["kind"], "KIND_CPU");
  EXPECT_EQ(c["dynamic_batching"]["default_queue_policy"]["max_queue_size"], 1024);
  EXPECT_EQ(c["parameters"]["INTRA_OP_THREAD_COUNT"]["string_value"], "1");
  EXPECT_EQ(Get("/v2/models/mlp/versions/1/config").status, 200);
  ExpectError(Get("/v2/models/nope/config"), 404, "'nope' is not served");
  ExpectError(Post("/v2/models/mlp/config", "{}"), 405, "use GET");
  // Triton's statistics extension: every field present, zeros too.
  HttpResult stats = Get("/v2/models/pair/versions/1/stats");
  ASSERT_EQ(stats.status, 200) << stats.body;
  json s = json::parse(stats.body);
  ASSERT_EQ(s["model_stats"].size(), 1u) << stats.body;
  EXPECT_EQ(s["model_stats"][0]["name"], "pair");
  EXPECT_EQ(s["model_stats"][0]["version"], "1");
  for (const char* key : {"success", "fail", "queue", "compute_input", "compute_infer", "compute_output"}) {
    EXPECT_TRUE(s["model_stats"][0]["inference_stats"][key]["count"].is_number_unsigned()) << key << stats.body;
    EXPECT_TRUE(s["model_stats"][0]["inference_stats"][key]["ns"].is_number_unsigned()) << key << stats.body;
  }
  EXPECT_TRUE(s["model_stats"][0]["inference_count"].is_number_unsigned()) << stats.body;
  EXPECT_TRUE(s["model_stats"][0]["batch_stats"].is_array()) << stats.body;
  HttpResult all = Get("/v2/models/stats");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_GE(json::parse(all.body)["model_stats"].size(), 3u);
  EXPECT_EQ(json::parse(Get("/v2/models/mlp/stats").body)["model_stats"][0]["name"], "mlp");
  ExpectError(Get("/v2/models/nope/stats"), 404, "'nope' is not served");
  ExpectError(Get("/v2/models/mlp/bogus"), 404, "no such endpoint");
}

TEST_F(V2RestTest, InferFlatAndNestedDataAgree) {
  const std::string flat = R"({"id":"q1","inputs":[{"name":"x","shape":[2,16],"datatype":"FP32","data":)" +
                           kMlpRow.substr(0, kMlpRow.size() - 1) + "," + kMlpRow.substr(1) + "}]}";
  const std::string nested = R"({"inputs":[{"name":"x","shape":[2,16],"datatype":"FP32","data":[)" +
                             kMlpRow + "," + kMlpRow + "]}]}";
  HttpResult a = Post("/v2/models/mlp/infer", flat);
  HttpResult b = Post("/v2/models/mlp/versions/1/infer", nested);
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  json ja = json::parse(a.body), jb = json::parse(b.body);
  EXPECT_EQ(ja["model_name"], "mlp");
  EXPECT_EQ(ja["model_version"], "1");
  EXPECT_EQ(ja["id"], "q1");
  EXPECT_FALSE(jb.contains("id"));
  ASSERT_EQ(ja["outputs"].size(), 2u);
  EXPECT_EQ(ja["outputs"][0]["name"], "logits");
  EXPECT_EQ(ja["outputs"][0]["datatype"], "FP32");
  EXPECT_EQ(ja["outputs"][0]["shape"], json::array({2, 4}));
  EXPECT_EQ(ja["outputs"][0]["data"].size(), 8u);
  EXPECT_EQ(ja["outputs"], jb["outputs"]);
}

// tritonclient.http with request_compression_algorithm="gzip" (or
// "deflate") sends the body compressed; the answer is the same.
TEST_F(V2RestTest, CompressedRequestBodiesGiveTheSameAnswer) {
  const std::string body = R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":)" + kMlpRow + "}]}";
  HttpResult plain = Post("/v2/models/mlp/infer", body);
  ASSERT_EQ(plain.status, 200) << plain.body;
  for (ContentCoding coding : {ContentCoding::kGzip, ContentCoding::kDeflate}) {
    HttpResult compressed = Post("/v2/models/mlp/infer", *EncodeBody(coding, body),
                                 {std::string("Content-Encoding: ") + ContentCodingName(coding)});
    ASSERT_EQ(compressed.status, 200) << ContentCodingName(coding) << ": " << compressed.body;
    EXPECT_EQ(json::parse(compressed.body)["outputs"], json::parse(plain.body)["outputs"]);
  }
  ExpectError(Post("/v2/models/mlp/infer", "not gzip", {"Content-Encoding: gzip"}), 400, "not valid gzip data");
}

TEST_F(V2RestTest, JsonMatchesGrpcBitForBit) {
  // The same row through ModelInfer (raw bytes) and REST (JSON numbers):
  // every float comes back identical.
  std::vector<float> row = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f,
                            0.9f, 1.0f, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f, 1.6f};
  inference::ModelInferRequest request;
  request.set_model_name("mlp");
  auto* input = request.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(16);
  request.add_raw_input_contents(reinterpret_cast<const char*>(row.data()), 64);
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(::microbatch::testing::V2Stub(server_->grpc_port())->ModelInfer(&context, request, &response).ok());
  HttpResult rest = Post("/v2/models/mlp/infer", R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":)" + kMlpRow + "}]}");
  ASSERT_EQ(rest.status, 200) << rest.body;
  json body = json::parse(rest.body);
  for (int k = 0; k < 2; ++k) {
    std::vector<float> grpc_values(4);
    std::memcpy(grpc_values.data(), response.raw_output_contents(k).data(), 16);
    for (int i = 0; i < 4; ++i) {
      const float rest_value = body["outputs"][k]["data"][i].get<float>();
      EXPECT_EQ(std::memcmp(&rest_value, &grpc_values[i], 4), 0) << rest_value << " vs " << grpc_values[i];
    }
  }
}

TEST_F(V2RestTest, EveryDatatypeRoundTripsInJson) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"FP32", "[1.5,-0.25,3.4028234663852886e38,1e-45,0.1,-0.0]"},
      {"FP64", "[1e300,-2.5,0.1,5e-324,123456789.123,-0.0]"},
      {"FP16", "[1.5,-0.25,65504,0.0999755859375,6e-08,-2]"},
      {"BF16", "[1.5,-0.25,3.3895313892515355e38,0.10009765625,1,-2]"},
      {"INT64", "[9223372036854775807,-9223372036854775808,0,1,-1,42]"},
      {"INT32", "[2147483647,-2147483648,0,1,-1,42]"},
      {"INT16", "[32767,-32768,0,1,-1,42]"},
      {"INT8", "[127,-128,0,1,-1,42]"},
      {"UINT8", "[255,0,1,2,128,42]"},
      {"BOOL", "[true,false,true,true,false,false]"},
  };
  for (const auto& [dtype, data] : cases) {
    SCOPED_TRACE(dtype);
    const std::string body = R"({"inputs":[{"name":"x","shape":[2,3],"datatype":")" + dtype +
                             R"(","data":)" + data + "}]}";
    HttpResult result = Post("/v2/models/id_" + absl::AsciiStrToLower(dtype) + "/infer", body);
    ASSERT_EQ(result.status, 200) << result.body;
    json answer = json::parse(result.body);
    EXPECT_EQ(answer["outputs"][0]["datatype"], dtype);
    EXPECT_EQ(answer["outputs"][0]["shape"], json::array({2, 3}));
    json sent = json::parse(data);
    json got = answer["outputs"][0]["data"];
    ASSERT_EQ(got.size(), sent.size());
    for (size_t i = 0; i < sent.size(); ++i) {
      if (dtype == "BOOL") {
        EXPECT_EQ(got[i], sent[i]);
      } else if (dtype.rfind("INT", 0) == 0 || dtype == "UINT8") {
        EXPECT_EQ(got[i].dump(), sent[i].dump());
      } else if (dtype == "FP64") {
        EXPECT_EQ(got[i].get<double>(), sent[i].get<double>()) << got[i].dump();
      } else {
        // The value the model saw (the sent number rounded to the datatype),
        // printed so that it parses back to exactly that value.
        const float f = sent[i].get<float>();
        const float seen = dtype == "FP32"   ? f
                           : dtype == "FP16" ? HalfToFloat(FloatToHalf(f))
                                             : BFloat16ToFloat(FloatToBFloat16(f));
        const float back = got[i].get<float>();
        if (seen == 0) {
          EXPECT_EQ(back, 0.0f);  // nlohmann reads "-0" as integer 0: sign checked elsewhere
        } else {
          EXPECT_EQ(std::memcmp(&back, &seen, 4), 0) << got[i].dump() << " vs " << seen;
        }
      }
    }
  }
}

TEST_F(V2RestTest, NonFiniteFloatsAndSignedZeroSurvive) {
  HttpResult result = Post("/v2/models/id_fp32/infer",
                           R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[NaN,Infinity,-Infinity,-0.0]}]})");
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_THAT(result.body, HasSubstr("\"data\":[NaN,Infinity,-Infinity,-0]"));
  // A number beyond FP32 is refused, not turned into infinity.
  ExpectError(Post("/v2/models/id_fp32/infer",
                   R"({"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1e39]}]})"),
              400, "element 0: 1e39 does not fit FP32");
}

TEST_F(V2RestTest, BinaryTensorDataBothWays) {
  const float values[] = {1.25f, -2.5f, 3.0f};
  const std::string header =
      R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}}],)"
      R"("outputs":[{"name":"y","parameters":{"binary_data":true}}]})";
  const std::string body = header + std::string(reinterpret_cast<const char*>(values), sizeof(values));
  HttpResult result = Post("/v2/models/id_fp32/infer", body,
                           {"Inference-Header-Content-Length: " + std::to_string(header.size()),
                            "Content-Type: application/octet-stream"});
  ASSERT_EQ(result.status, 200) << result.body;
  ASSERT_TRUE(result.headers.count("inference-header-content-length"));
  const size_t json_bytes = std::stoul(result.headers["inference-header-content-length"]);
  ASSERT_EQ(result.body.size(), json_bytes + sizeof(values));
  json answer = json::parse(result.body.substr(0, json_bytes));
  EXPECT_EQ(answer["outputs"][0]["parameters"]["binary_data_size"], 12);
  EXPECT_FALSE(answer["outputs"][0].contains("data"));
  EXPECT_EQ(result.body.substr(json_bytes), std::string(reinterpret_cast<const char*>(values), 12));

  // Binary in, JSON out.
  const std::string header2 =
      R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}}]})";
  HttpResult json_out =
      Post("/v2/models/id_fp32/infer", header2 + std::string(reinterpret_cast<const char*>(values), 12),
           {"Inference-Header-Content-Length: " + std::to_string(header2.size())});
  ASSERT_EQ(json_out.status, 200) << json_out.body;
  EXPECT_EQ(json::parse(json_out.body)["outputs"][0]["data"], json::array({1.25, -2.5, 3.0}));

  ExpectError(Post("/v2/models/id_fp32/infer", header2 + "short",
                   {"Inference-Header-Content-Length: " + std::to_string(header2.size())}),
              400, "binary_data_size 12 runs past the 5 bytes");
  ExpectError(Post("/v2/models/id_fp32/infer", header2,
                   {"Inference-Header-Content-Length: 99999"}),
              400, "Inference-Header-Content-Length");
}

TEST_F(V2RestTest, BadRequestsGetStatusAndMessage) {
  const std::string path = "/v2/models/mlp/infer";
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":[1,2}]})"),
              400, "malformed JSON at byte offset 67");
  ExpectError(Post(path, "[1,2]"), 400, "must be a JSON object");
  ExpectError(Post(path, "{}"), 400, "\"inputs\" must be a non-empty array");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FLOAT","data":)" + kMlpRow + "}]}"),
              400, "unknown datatype 'FLOAT'");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"BYTES","data":)" + kMlpRow + "}]}"),
              400, "datatype BYTES is not taken");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"INT64","data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}]})"),
              400, "expected dtype FP32, got INT64");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":[1,2,3]}]})"),
              400, "shape [1,16] has 16 elements, \"data\" has 3");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]})"),
              400, "input 'x'");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,"a"]}]})"),
              400, "element 1 is not a number");
  ExpectError(Post("/v2/models/id_int8/infer", R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"INT8","data":[1,300]}]})"),
              400, "element 1: 300 does not fit INT8");
  ExpectError(Post("/v2/models/id_int8/infer", R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"INT8","data":[1,2.5]}]})"),
              400, "element 1 is not an integer");
  ExpectError(Post("/v2/models/id_bool/infer", R"({"inputs":[{"name":"x","shape":[1,1],"datatype":"BOOL","data":[1]}]})"),
              400, "is not true or false");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":)" + kMlpRow +
                             R"(}],"outputs":[{"name":"nope"}]})"),
              400, "nope");
  // JSON is UTF-8: an id that is not is refused, never echoed back as
  // invalid JSON.
  ExpectError(Post(path, "{\"id\":\"a\xff\",\"inputs\":[{\"name\":\"x\",\"shape\":[1,16],\"datatype\":\"FP32\","
                         "\"data\":" + kMlpRow + "}]}"),
              400, "\"id\" is not UTF-8 (byte 2); JSON text is UTF-8");
  // A name in the path that is not UTF-8 comes back as U+FFFD, so that the
  // error body is still JSON.
  ExpectError(Get("/v2/models/a%FFb"), 404, "model 'a\xef\xbf\xbd" "b' (default version) is not served");
  // Extensions not served are refused, never ignored.
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":)" + kMlpRow +
                             R"(}],"outputs":[{"name":"logits","parameters":{"shared_memory_region":"out0"}}]})"),
              400, "output 'logits': shared memory (parameters.shared_memory_region) is not supported");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32",)"
                         R"("parameters":{"shared_memory_region":"in0","shared_memory_byte_size":64}}]})"),
              400, "input 'x': shared memory (parameters.shared_memory_region) is not supported");
  ExpectError(Post("/v2/models/nope/infer", R"({"inputs":[]})"), 404, "'nope' is not served");
  ExpectError(Post("/v2/models/mlp/versions/7/infer", R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":)" + kMlpRow + "}]}"),
              404, "has no ready version 7");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,-16],"datatype":"FP32","data":[]}]})"),
              400, "non-negative integers");
  ExpectError(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32"}]})"), 400,
              "\"data\" is missing");
  // Deeply nested brackets: refused, not a crashed stack.
  ExpectError(Post(path, std::string(100000, '[') + std::string(100000, ']')), 400, "");
  // Over the 1 MiB body limit of this server.
  ExpectError(Post(path, std::string(2 << 20, ' ')), 413, "exceeds the server's limit of 1048576 bytes");
  // After all that, a good request still works.
  EXPECT_EQ(Post(path, R"({"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":)" + kMlpRow + "}]}").status, 200);
  const std::string metrics = Get("/metrics").body;
  EXPECT_GE(Sample(metrics, "microbatch_requests_total{model=\"mlp\",version=\"1\",method=\"RestInfer\",code=\"OK\"}"), 1);
  EXPECT_GE(Sample(metrics, "microbatch_requests_total{model=\"mlp\",version=\"1\",method=\"RestInfer\",code=\"INVALID_ARGUMENT\"}"), 5);
}

// Triton's request parameter timeout (microseconds): REST's only deadline.
// Triton's classification extension: "<value>:<index>[:<label>]", highest
// first, as a BYTES tensor [rows, count], labels from label_filename.
TEST_F(V2RestTest, ClassificationAnswersTheTopClassesWithTheirLabels) {
  EXPECT_THAT(json::parse(Get("/v2").body)["extensions"].get<std::vector<std::string>>(),
              ::testing::Contains("classification"));
  const std::string two_rows =
      R"({"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[[0.5,2,-1,0.25],[3,1,2.5,0]]}],)";
  HttpResult result = Post("/v2/models/labelled/infer",
                           two_rows + R"("outputs":[{"name":"y","parameters":{"classification":3}}]})");
  ASSERT_EQ(result.status, 200) << result.body;
  json output = json::parse(result.body)["outputs"][0];
  EXPECT_EQ(output["name"], "y");
  EXPECT_EQ(output["datatype"], "BYTES");
  EXPECT_EQ(output["shape"], json::array({2, 3}));
  // Line 2 of labels.txt ends in CRLF; element 3 has no label.
  EXPECT_EQ(output["data"], json::array({"2.000000:1:dog", "0.500000:0:cat", "0.250000:3",
                                         "3.000000:0:cat", "2.500000:2:bird", "1.000000:1:dog"}));

  // Binary: each element as a 4-byte little-endian length and its bytes.
  result = Post("/v2/models/labelled/infer",
                two_rows + R"("outputs":[{"name":"y","parameters":{"classification":1,"binary_data":true}}]})");
  ASSERT_EQ(result.status, 200) << result.body;
  const size_t json_bytes = std::stoul(result.headers["inference-header-content-length"]);
  json header = json::parse(result.body.substr(0, json_bytes));
  EXPECT_EQ(header["outputs"][0]["datatype"], "BYTES");
  EXPECT_EQ(header["outputs"][0]["shape"], json::array({2, 1}));
  const std::string expected = std::string("\x0e\x00\x00\x00" "2.000000:1:dog", 18) +
                               std::string("\x0e\x00\x00\x00" "3.000000:0:cat", 18);
  EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], expected.size());
  EXPECT_EQ(result.body.substr(json_bytes), expected);

  // More classes than a row has: the whole row. Integers print exactly.
  result = Post("/v2/models/id_int64/infer",
                R"({"inputs":[{"name":"x","shape":[1,3],"datatype":"INT64","data":[7,-2,9007199254740993]}],)"
                R"("outputs":[{"name":"y","parameters":{"classification":10}}]})");
  ASSERT_EQ(result.status, 200) << result.body;
  output = json::parse(result.body)["outputs"][0];
  EXPECT_EQ(output["shape"], json::array({1, 3}));
  EXPECT_EQ(output["data"], json::array({"9007199254740993:2", "7:0", "-2:1"}));

  // Bad counts and an output with no order: a clear error for that request.
  const std::string one_row = R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],)";
  for (const char* count : {"0", "-1", "1.5", "true", "[2]"}) {
    ExpectError(Post("/v2/models/labelled/infer",
                     one_row + R"("outputs":[{"name":"y","parameters":{"classification":)" + count + "}}]}"),
                400, "output 'y': parameters.classification must be an integer >= 1");
  }
  ExpectError(Post("/v2/models/id_bool/infer",
                   R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"BOOL","data":[true,false]}],)"
                   R"("outputs":[{"name":"y","parameters":{"classification":1}}]})"),
              400, "output 'y': a BOOL output cannot be classified");
  // The same model still answers values to requests that do not classify.
  result = Post("/v2/models/labelled/infer", one_row + R"("outputs":[{"name":"y"}]})");
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(json::parse(result.body)["outputs"][0]["data"], json::array({1.0, 2.0, 3.0, 4.0}));
}

TEST_F(V2RestTest, TimeoutParameterBoundsTheRequest) {
  const std::string path = "/v2/models/mlp/infer";
  auto body = [](const std::string& timeout) {
    return R"({"parameters":{"timeout":)" + timeout + R"(},"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":)" +
           kMlpRow + "}]}";
  };
  ExpectError(Post(path, body("1")), 504, "the deadline passed");
  EXPECT_EQ(Post(path, body("60000000")).status, 200);
  EXPECT_EQ(Post(path, body("0")).status, 200);  // none
  // Regression: a 3 ms timeout on an idle server was refused for the 5 ms
  // margin kept for the answer's way back, though the model needs
  // microseconds (Triton serves it). Refused here only if the machine stalls.
  int served = 0;
  for (int i = 0; i < 5; ++i) served += Post(path, body("3000")).status == 200;
  EXPECT_GE(served, 3);
  ExpectError(Post(path, body("\"soon\"")), 400, "parameters.timeout must be a whole number of microseconds");
  ExpectError(Post(path, body("-5")), 400, "parameters.timeout");
}

TEST_F(V2RestTest, ProbesAnsweredWhileInferCallsWait) {
  // "slow" holds a batch up to 1 s waiting for more rows; 8 infer calls sit
  // in it while the server's only HTTP thread answers the probes.
  std::atomic<int> finished{0};
  std::vector<std::thread> callers;
  std::vector<long> statuses(8);
  for (int i = 0; i < 8; ++i) {
    callers.emplace_back([&, i] {
      statuses[i] = Post("/v2/models/slow/infer",
                         R"({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]})")
                        .status;
      finished++;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int probes_during = 0;
  for (int i = 0; i < 3; ++i) {
    if (finished.load() > 0) break;
    if (Get("/healthz").status == 200 && Get("/readyz").status == 200 &&
        Get("/metrics").status == 200 && finished.load() == 0) {
      probes_during++;
    }
  }
  for (auto& t : callers) t.join();
  EXPECT_GE(probes_during, 1) << "probes were not answered while infer calls were in flight";
  for (long s : statuses) EXPECT_EQ(s, 200);
}

}  // namespace
}  // namespace microbatch
