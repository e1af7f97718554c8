// The Open Inference Protocol (v2) on the client, without a server: the
// protocol names, ModelInferRequest and REST bodies built from tensors, and
// ModelInferResponse / REST answers decoded back, byte-exact for every
// datatype, with clear errors for what does not decode.
#include "client/open_inference.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "absl/time/time.h"
#include "client/http_client.h"
#include "client/predict.h"
#include "client/tensor_json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename T>
v1::Tensor MakeTensor(const std::string& name, DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  v1::Tensor tensor;
  tensor.set_name(name);
  tensor.set_dtype(static_cast<v1::DataType>(dtype));
  for (int64_t d : shape) tensor.add_shape(d);
  tensor.set_data(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  return tensor;
}

uint16_t Bits16(float f, bool bf16) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (bf16) return static_cast<uint16_t>(bits >> 16);
  // FP16 of values that are exact in it (the tests use such values only).
  std::string out(2, '\0');
  StoreElement(DType::kFloat16, f, out.data(), 0);
  uint16_t h;
  std::memcpy(&h, out.data(), 2);
  return h;
}

// For every datatype, a 2x3 tensor of edge values (each exactly
// representable in JSON as the client writes it).
std::vector<v1::Tensor> EdgeTensors() {
  const float nan_free_min = std::numeric_limits<float>::denorm_min();
  return {
      MakeTensor<float>("fp32", DType::kFloat32, {2, 3},
                        {0.1f, -0.0f, std::numeric_limits<float>::max(), -std::numeric_limits<float>::min(),
                         nan_free_min, 16777217.0f}),
      MakeTensor<double>("fp64", DType::kFloat64, {2, 3},
                         {0.1, -0.0, std::numeric_limits<double>::max(), std::numeric_limits<double>::denorm_min(),
                          1.0 / 3.0, -1e-300}),
      MakeTensor<uint16_t>("fp16", DType::kFloat16, {2, 3},
                           {Bits16(0.5f, false), Bits16(-2.0f, false), 0x7bff /*65504*/, 0x0001 /*subnormal*/,
                            0x8000 /*-0*/, Bits16(0.333251953125f, false)}),
      MakeTensor<uint16_t>("bf16", DType::kBFloat16, {2, 3},
                           {Bits16(0.5f, true), Bits16(-3.0f, true), 0x7f7f /*max*/, 0x0001, 0x8000, 0x3eab}),
      MakeTensor<int64_t>("int64", DType::kInt64, {2, 3},
                          {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
                           9007199254740993LL /*2^53+1*/, -1, 0, 42}),
      MakeTensor<int32_t>("int32", DType::kInt32, {2, 3}, {INT32_MIN, INT32_MAX, -1, 0, 1, 16777217}),
      MakeTensor<int16_t>("int16", DType::kInt16, {2, 3}, {INT16_MIN, INT16_MAX, -1, 0, 1, 300}),
      MakeTensor<int8_t>("int8", DType::kInt8, {2, 3}, {INT8_MIN, INT8_MAX, -1, 0, 1, 7}),
      MakeTensor<uint8_t>("uint8", DType::kUInt8, {2, 3}, {0, 255, 1, 128, 127, 9}),
      MakeTensor<uint8_t>("bool", DType::kBool, {2, 3}, {1, 0, 0, 1, 1, 0}),
  };
}

// ---------------------------------------------------------------------------
// Protocol names.

TEST(ProtocolTest, NamesAndLists) {
  EXPECT_EQ(*ParseProtocol("v1"), Protocol::kV1);
  EXPECT_EQ(*ParseProtocol("v2"), Protocol::kV2);
  EXPECT_EQ(*ParseProtocol("rest"), Protocol::kRest);
  EXPECT_EQ(ProtocolName(Protocol::kRest), "rest");
  EXPECT_THAT(ParseProtocol("grpc").status().message(), HasSubstr("'grpc' is not a protocol"));
  EXPECT_THAT(*ParseProtocolList("v1,v2,rest"), ElementsAre(Protocol::kV1, Protocol::kV2, Protocol::kRest));
  EXPECT_THAT(*ParseProtocolList("rest"), ElementsAre(Protocol::kRest));
  EXPECT_THAT(ParseProtocolList("v1,v1").status().message(), HasSubstr("listed twice"));
  EXPECT_FALSE(ParseProtocolList("v1,").ok());
  EXPECT_FALSE(ParseProtocolList("").ok());
  EXPECT_EQ(V2Version(0), "");
  EXPECT_EQ(V2Version(7), "7");
}

// ---------------------------------------------------------------------------
// gRPC.

TEST(ModelInferRequestTest, RawContentsInInputOrderWithDatatypes) {
  InferRequestSpec spec;
  spec.model = "m";
  spec.version = "3";
  spec.id = "req-1";
  spec.inputs = EdgeTensors();
  spec.outputs = {"y", "z"};
  absl::StatusOr<inference::ModelInferRequest> request = BuildModelInferRequest(spec);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model_name(), "m");
  EXPECT_EQ(request->model_version(), "3");
  EXPECT_EQ(request->id(), "req-1");
  ASSERT_EQ(request->inputs_size(), 10);
  ASSERT_EQ(request->raw_input_contents_size(), 10);
  const std::vector<std::string> datatypes = {"FP32",  "FP64",  "FP16", "BF16",  "INT64",
                                              "INT32", "INT16", "INT8", "UINT8", "BOOL"};
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(request->inputs(i).name(), spec.inputs[i].name());
    EXPECT_EQ(request->inputs(i).datatype(), datatypes[i]);
    EXPECT_THAT(request->inputs(i).shape(), ElementsAre(2, 3));
    EXPECT_FALSE(request->inputs(i).has_contents());
    EXPECT_EQ(request->raw_input_contents(i), spec.inputs[i].data()) << datatypes[i];
  }
  ASSERT_EQ(request->outputs_size(), 2);
  EXPECT_EQ(request->outputs(0).name(), "y");
  EXPECT_EQ(request->outputs(1).name(), "z");
}

TEST(ModelInferRequestTest, RefusesDataThatDoesNotMatchTheShape) {
  InferRequestSpec spec;
  spec.inputs = {MakeTensor<float>("x", DType::kFloat32, {2, 3}, {1, 2, 3})};
  EXPECT_THAT(BuildModelInferRequest(spec).status().message(), HasSubstr("input 'x': 12 bytes of data for shape [2,3]"));
  spec.inputs = {MakeTensor<float>("x", DType::kInvalid, {1}, {1})};
  EXPECT_THAT(BuildModelInferRequest(spec).status().message(), HasSubstr("input 'x': invalid dtype"));
}

inference::ModelInferResponse ResponseOf(const std::vector<v1::Tensor>& tensors, bool raw) {
  inference::ModelInferResponse response;
  response.set_model_name("m");
  response.set_model_version("2");
  response.set_id("r");
  for (const v1::Tensor& t : tensors) {
    auto* out = response.add_outputs();
    out->set_name(t.name());
    out->set_datatype(DTypeName(static_cast<DType>(t.dtype())));
    *out->mutable_shape() = t.shape();
    if (raw) response.add_raw_output_contents(t.data());
  }
  return response;
}

TEST(ModelInferResponseTest, RawContentsAreByteExactForEveryDatatype) {
  std::vector<v1::Tensor> tensors = EdgeTensors();
  // Raw bytes pass through untouched, NaN payloads included.
  const uint32_t nan_bits = 0x7fc12345;
  float nan;
  std::memcpy(&nan, &nan_bits, 4);
  tensors.push_back(MakeTensor<float>("nan", DType::kFloat32, {1}, {nan}));
  absl::StatusOr<InferResult> result = ParseModelInferResponse(ResponseOf(tensors, /*raw=*/true));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model, "m");
  EXPECT_EQ(result->version, "2");
  EXPECT_EQ(result->id, "r");
  ASSERT_EQ(result->outputs.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(result->outputs[i].name(), tensors[i].name());
    EXPECT_EQ(result->outputs[i].dtype(), tensors[i].dtype());
    EXPECT_THAT(result->outputs[i].shape(), ::testing::ElementsAreArray(tensors[i].shape()));
    EXPECT_EQ(result->outputs[i].data(), tensors[i].data()) << tensors[i].name();
  }
}

TEST(ModelInferResponseTest, TypedContentsAreByteExactForEveryDatatypeThatHasThem) {
  std::vector<v1::Tensor> tensors = EdgeTensors();
  tensors.erase(tensors.begin() + 2, tensors.begin() + 4);  // FP16 and BF16 have no typed field
  inference::ModelInferResponse response = ResponseOf(tensors, /*raw=*/false);
  for (int i = 0; i < response.outputs_size(); ++i) {
    auto* contents = response.mutable_outputs(i)->mutable_contents();
    const std::string& bytes = tensors[i].data();
    const DType dtype = static_cast<DType>(tensors[i].dtype());
    for (size_t e = 0; e < 6; ++e) {
      switch (dtype) {
        case DType::kFloat32: { float v; std::memcpy(&v, bytes.data() + 4 * e, 4); contents->add_fp32_contents(v); break; }
        case DType::kFloat64: { double v; std::memcpy(&v, bytes.data() + 8 * e, 8); contents->add_fp64_contents(v); break; }
        case DType::kInt64: { int64_t v; std::memcpy(&v, bytes.data() + 8 * e, 8); contents->add_int64_contents(v); break; }
        case DType::kInt32: { int32_t v; std::memcpy(&v, bytes.data() + 4 * e, 4); contents->add_int_contents(v); break; }
        case DType::kInt16: { int16_t v; std::memcpy(&v, bytes.data() + 2 * e, 2); contents->add_int_contents(v); break; }
        case DType::kInt8: contents->add_int_contents(static_cast<int8_t>(bytes[e])); break;
        case DType::kUInt8: contents->add_uint_contents(static_cast<uint8_t>(bytes[e])); break;
        case DType::kBool: contents->add_bool_contents(bytes[e] != 0); break;
        default: FAIL() << "unexpected dtype";
      }
    }
  }
  absl::StatusOr<InferResult> result = ParseModelInferResponse(response);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->outputs.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(result->outputs[i].data(), tensors[i].data()) << tensors[i].name();
  }
}

TEST(ModelInferResponseTest, ErrorsNameTheOutput) {
  auto parse_error = [](const inference::ModelInferResponse& response) {
    absl::StatusOr<InferResult> result = ParseModelInferResponse(response);
    EXPECT_FALSE(result.ok());
    return std::string(result.status().message());
  };
  const v1::Tensor x = MakeTensor<float>("y", DType::kFloat32, {2}, {1, 2});
  inference::ModelInferResponse response = ResponseOf({x}, true);
  response.set_raw_output_contents(0, "abc");
  EXPECT_THAT(parse_error(response), HasSubstr("output 'y': 3 bytes of raw_output_contents, the shape needs 8"));
  response = ResponseOf({x, x}, true);
  response.mutable_raw_output_contents()->RemoveLast();
  EXPECT_THAT(parse_error(response), HasSubstr("2 outputs but 1 raw_output_contents"));
  response = ResponseOf({x}, false);
  response.mutable_outputs(0)->mutable_contents()->add_fp32_contents(1);
  EXPECT_THAT(parse_error(response), HasSubstr("output 'y': fp32_contents has 1 values, the shape needs 2"));
  response = ResponseOf({MakeTensor<int8_t>("i", DType::kInt8, {1}, {0})}, false);
  response.mutable_outputs(0)->mutable_contents()->add_int_contents(200);
  EXPECT_THAT(parse_error(response), HasSubstr("output 'i': value 200 does not fit INT8"));
  response = ResponseOf({MakeTensor<uint8_t>("u", DType::kUInt8, {1}, {0})}, false);
  response.mutable_outputs(0)->mutable_contents()->add_uint_contents(256);
  EXPECT_THAT(parse_error(response), HasSubstr("output 'u': value 256 does not fit UINT8"));
  response = ResponseOf({MakeTensor<uint16_t>("h", DType::kFloat16, {1}, {0})}, false);
  EXPECT_THAT(parse_error(response), HasSubstr("output 'h': FP16 has no typed contents"));
  response = ResponseOf({x}, true);
  response.mutable_outputs(0)->set_datatype("UINT16");
  EXPECT_THAT(parse_error(response), HasSubstr("output 'y': unsupported datatype 'UINT16'"));
  response = ResponseOf({x}, true);
  response.mutable_outputs(0)->set_shape(0, -1);
  EXPECT_THAT(parse_error(response), HasSubstr("output 'y': bad shape [-1]"));
}

TEST(ModelInferResponseTest, SignatureFromMetadata) {
  inference::ModelMetadataResponse metadata;
  metadata.set_name("m");
  metadata.add_versions("1");
  auto* in = metadata.add_inputs();
  in->set_name("x");
  in->set_datatype("INT32");
  in->add_shape(-1);
  in->add_shape(4);
  auto* odd = metadata.add_inputs();
  odd->set_name("s");
  odd->set_datatype("BYTES");
  const ModelInfo info = SignatureFromV2(metadata);
  EXPECT_EQ(info.name, "m");
  EXPECT_THAT(info.versions, ElementsAre("1"));
  ASSERT_EQ(info.inputs.size(), 2u);
  EXPECT_EQ(info.inputs[0].dtype, DType::kInt32);
  EXPECT_THAT(info.inputs[0].shape, ElementsAre(-1, 4));
  EXPECT_EQ(info.inputs[1].dtype, DType::kInvalid);
  EXPECT_EQ(info.inputs[1].datatype, "BYTES");
}

// ---------------------------------------------------------------------------
// REST.

TEST(RestTest, PathsArePercentEncoded) {
  EXPECT_EQ(RestInferPath("m", ""), "/v2/models/m/infer");
  EXPECT_EQ(RestInferPath("m", "3"), "/v2/models/m/versions/3/infer");
  EXPECT_EQ(RestInferPath("my model/x", "a b"), "/v2/models/my%20model%2Fx/versions/a%20b/infer");
  EXPECT_EQ(RestModelPath("r_1.v-2~", ""), "/v2/models/r_1.v-2~");
}

TEST(RestTest, BodyHasTheDocumentedShape) {
  InferRequestSpec spec;
  spec.model = "m";
  spec.id = "abc";
  spec.inputs = {MakeTensor<float>("x", DType::kFloat32, {2, 3}, {1, 2, 3, 4, 5, 6}),
                 MakeTensor<uint8_t>("b", DType::kBool, {2}, {1, 0})};
  spec.outputs = {"y"};
  absl::StatusOr<std::string> body = BuildRestInferBody(spec);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(nlohmann::json::parse(*body), nlohmann::json::parse(R"({"id":"abc","inputs":[
      {"name":"x","shape":[2,3],"datatype":"FP32","data":[1.0,2.0,3.0,4.0,5.0,6.0]},
      {"name":"b","shape":[2],"datatype":"BOOL","data":[true,false]}],"outputs":[{"name":"y"}]})"));
  // Without an id or requested outputs, neither key.
  spec.id.clear();
  spec.outputs.clear();
  const nlohmann::json bare = nlohmann::json::parse(*BuildRestInferBody(spec));
  EXPECT_FALSE(bare.contains("id"));
  EXPECT_FALSE(bare.contains("outputs"));
}

TEST(RestTest, NumbersAreWrittenExactly) {
  InferRequestSpec spec;
  spec.inputs = EdgeTensors();
  const std::string body = *BuildRestInferBody(spec);
  // Integers as integers (no double rounding), floats as the shortest text
  // of their own type (FP16 and BF16: of the float they equal), -0 signed.
  EXPECT_THAT(body, HasSubstr("[-9223372036854775808,9223372036854775807,9007199254740993,-1,0,42]"));
  EXPECT_THAT(body, HasSubstr("[0.1,-0.0,3.4028235e+38,-1.1754944e-38,1e-45,16777216]"));
  EXPECT_THAT(body, HasSubstr("[0.1,-0.0,1.7976931348623157e+308,5e-324,0.3333333333333333,-1e-300]"));
  EXPECT_THAT(body, HasSubstr("[0.5,-2,65504,5.9604645e-08,-0.0,0.33325195]"));
  EXPECT_THAT(body, HasSubstr("[0.5,-3,3.3895314e+38,9.1835e-41,-0.0,0.33398438]"));
  EXPECT_THAT(body, HasSubstr("[0,255,1,128,127,9]"));
  EXPECT_THAT(body, HasSubstr("[true,false,false,true,true,false]"));
}

TEST(RestTest, EveryDatatypeRoundTripsByteExact) {
  // Body -> (a server echoing each input's JSON as an output) -> result.
  InferRequestSpec spec;
  spec.inputs = EdgeTensors();
  const nlohmann::json body = nlohmann::json::parse(*BuildRestInferBody(spec));
  nlohmann::json answer = {{"model_name", "m"}, {"model_version", "1"}, {"outputs", body["inputs"]}};
  absl::StatusOr<InferResult> result = ParseRestInferResponse(200, answer.dump());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model, "m");
  EXPECT_EQ(result->version, "1");
  ASSERT_EQ(result->outputs.size(), spec.inputs.size());
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    EXPECT_EQ(result->outputs[i].dtype(), spec.inputs[i].dtype()) << spec.inputs[i].name();
    EXPECT_EQ(result->outputs[i].data(), spec.inputs[i].data()) << spec.inputs[i].name();
  }
}

TEST(RestTest, RandomFloatsRoundTripByteExact) {
  std::mt19937 rng(7);
  std::vector<float> f32(2000);
  std::vector<double> f64(2000);
  for (size_t i = 0; i < f32.size(); ++i) {
    uint32_t bits = rng();
    std::memcpy(&f32[i], &bits, 4);
    if (!std::isfinite(f32[i])) f32[i] = static_cast<float>(i);
    const uint64_t wide = (static_cast<uint64_t>(rng()) << 32) | rng();
    std::memcpy(&f64[i], &wide, 8);
    if (!std::isfinite(f64[i])) f64[i] = static_cast<double>(i);
  }
  InferRequestSpec spec;
  spec.inputs = {MakeTensor<float>("a", DType::kFloat32, {2000}, f32),
                 MakeTensor<double>("b", DType::kFloat64, {2000}, f64)};
  const nlohmann::json body = nlohmann::json::parse(*BuildRestInferBody(spec));
  absl::StatusOr<InferResult> result = ParseRestInferResponse(200, nlohmann::json{{"outputs", body["inputs"]}}.dump());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->outputs[0].data(), spec.inputs[0].data());
  EXPECT_EQ(result->outputs[1].data(), spec.inputs[1].data());
}

TEST(RestTest, NonFiniteFloatsTravelAsBareTokens) {
  const float inf = std::numeric_limits<float>::infinity();
  InferRequestSpec spec;
  spec.inputs = {MakeTensor<float>("x", DType::kFloat32, {4}, {1, std::numeric_limits<float>::quiet_NaN(), inf, -inf}),
                 MakeTensor<double>("d", DType::kFloat64, {1}, {-std::numeric_limits<double>::infinity()})};
  const std::string body = *BuildRestInferBody(spec);
  EXPECT_THAT(body, HasSubstr(R"("data":[1,NaN,Infinity,-Infinity])"));
  EXPECT_THAT(body, HasSubstr(R"("data":[-Infinity])"));
  // The same tokens come back in answers (as microbatch-server writes them),
  // also next to strings that hold them.
  std::string answer = body;
  answer.replace(answer.find("\"inputs\""), 8, "\"outputs\"");
  answer.insert(1, R"("id":"NaN \" Infinity",)");
  absl::StatusOr<InferResult> result = ParseRestInferResponse(200, answer);
  ASSERT_TRUE(result.ok()) << result.status() << "\n" << answer;
  EXPECT_EQ(result->id, "NaN \" Infinity");
  float x[4];
  std::memcpy(x, result->outputs[0].data().data(), 16);
  EXPECT_EQ(x[0], 1.0f);
  EXPECT_TRUE(std::isnan(x[1]));
  EXPECT_EQ(x[2], inf);
  EXPECT_EQ(x[3], -inf);
  EXPECT_EQ(result->outputs[1].data(), spec.inputs[1].data());
}

TEST(RestTest, Fp16AndBf16RoundOnceStraightFromTheText) {
  // 1 + 2^-11 + 2^-30 is above the FP16 midpoint between 1 and 1 + 2^-10 by
  // less than an FP32 step: through FP32 it would land on the midpoint and
  // round (to even) down to 1.
  absl::StatusOr<InferResult> result = ParseRestInferResponse(
      200, R"({"outputs":[{"name":"h","datatype":"FP16","shape":[2],"data":[1.000488281250001,1.00048828125]},
                          {"name":"b","datatype":"BF16","shape":[1],"data":[1.00390625000001]}]})");
  ASSERT_TRUE(result.ok()) << result.status();
  uint16_t h[2];
  std::memcpy(h, result->outputs[0].data().data(), 4);
  EXPECT_EQ(h[0], 0x3c01);  // 1 + 2^-10: above the midpoint
  EXPECT_EQ(h[1], 0x3c00);  // exactly the midpoint: to even
  uint16_t b;
  std::memcpy(&b, result->outputs[1].data().data(), 2);
  EXPECT_EQ(b, 0x3f81);  // 1 + 2^-7: above the midpoint 1 + 2^-8
}

TEST(RestTest, AnswersDecodeNestedDataAndSpecialFloats) {
  absl::StatusOr<InferResult> result = ParseRestInferResponse(200, R"({"model_name":"m","model_version":"4","id":"q",
      "outputs":[{"name":"y","datatype":"FP32","shape":[2,2],"data":[[1.5,"NaN"],["Infinity",-0]]},
                 {"name":"i","datatype":"INT32","shape":[2],"data":[3.0,-7]},
                 {"name":"b","datatype":"BOOL","shape":[3],"data":[true,0,1]}]})");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->id, "q");
  ASSERT_EQ(result->outputs.size(), 3u);
  float y[4];
  std::memcpy(y, result->outputs[0].data().data(), 16);
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_TRUE(std::isnan(y[1]));
  EXPECT_EQ(y[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_TRUE(std::signbit(y[3]));  // microbatch-server writes -0.0f as -0
  int32_t i[2];
  std::memcpy(i, result->outputs[1].data().data(), 8);
  EXPECT_EQ(i[0], 3);
  EXPECT_EQ(i[1], -7);
  EXPECT_EQ(result->outputs[2].data(), std::string("\x01\x00\x01", 3));
}

// The classification extension: the count goes out as each requested
// output's parameter; BYTES answers come back as strings (REST JSON, gRPC
// length-prefixed raw contents or bytes_contents).
TEST(ClassificationTest, RequestsCarryTheCountAndBytesAnswersDecode) {
  InferRequestSpec spec;
  spec.model = "m";
  spec.outputs = {"probs"};
  spec.classification = 3;
  absl::StatusOr<inference::ModelInferRequest> request = BuildModelInferRequest(spec);
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->outputs_size(), 1);
  EXPECT_EQ(request->outputs(0).parameters().at("classification").int64_param(), 3);
  absl::StatusOr<std::string> body = BuildRestInferBody(spec);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr(R"("outputs":[{"name":"probs","parameters":{"classification":3}}])"));
  spec.outputs.clear();
  EXPECT_EQ(BuildModelInferRequest(spec).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BuildRestInferBody(spec).status().code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<InferResult> rest = ParseRestInferResponse(200, R"({"model_name":"m","model_version":"1",
      "outputs":[{"name":"probs","datatype":"BYTES","shape":[1,2],"data":["0.9:1:dog","0.1:0:cat"]}]})");
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_EQ(rest->bytes_outputs.size(), 1u);
  EXPECT_TRUE(rest->outputs.empty());
  EXPECT_EQ(rest->bytes_outputs[0].name, "probs");
  EXPECT_THAT(rest->bytes_outputs[0].shape, ElementsAre(1, 2));
  EXPECT_THAT(rest->bytes_outputs[0].elements, ElementsAre("0.9:1:dog", "0.1:0:cat"));
  EXPECT_EQ(ParseRestInferResponse(200, R"({"outputs":[{"name":"p","datatype":"BYTES","shape":[1,2],"data":["a"]}]})")
                .status()
                .code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ParseRestInferResponse(200, R"({"outputs":[{"name":"p","datatype":"BYTES","shape":[1],"data":[1]}]})")
                .status()
                .code(),
            absl::StatusCode::kInternal);

  inference::ModelInferResponse response;
  auto* out = response.add_outputs();
  out->set_name("probs");
  out->set_datatype("BYTES");
  out->add_shape(2);
  response.add_raw_output_contents(std::string("\x03\x00\x00\x00" "1:0" "\x00\x00\x00\x00", 11));
  absl::StatusOr<InferResult> raw = ParseModelInferResponse(response);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_THAT(raw->bytes_outputs[0].elements, ElementsAre("1:0", ""));
  response.set_raw_output_contents(0, std::string("\x09\x00\x00\x00" "1:0", 7));  // runs past the data
  EXPECT_THAT(std::string(ParseModelInferResponse(response).status().message()),
              HasSubstr("output 'probs': a BYTES element runs past the data"));
  response.clear_raw_output_contents();
  out->mutable_contents()->add_bytes_contents("2:1");
  out->mutable_contents()->add_bytes_contents("1:0");
  absl::StatusOr<InferResult> typed = ParseModelInferResponse(response);
  ASSERT_TRUE(typed.ok()) << typed.status();
  EXPECT_THAT(typed->bytes_outputs[0].elements, ElementsAre("2:1", "1:0"));
}

TEST(RestTest, UndecodableAnswersNameTheOutput) {
  auto error = [](const std::string& outputs) {
    absl::StatusOr<InferResult> result = ParseRestInferResponse(200, R"({"outputs":)" + outputs + "}");
    EXPECT_FALSE(result.ok()) << outputs;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal) << outputs;
    return std::string(result.status().message());
  };
  EXPECT_THAT(error(R"([{"name":"y","datatype":"FP32","shape":[3],"data":[1,2]}])"),
              HasSubstr("output 'y': data has 2 values, the shape needs 3"));
  EXPECT_THAT(error(R"([{"name":"y","datatype":"UINT8","shape":[1],"data":[256]}])"),
              HasSubstr("output 'y': data[0] = 256 is not a UINT8"));
  EXPECT_THAT(error(R"([{"name":"y","datatype":"INT32","shape":[1],"data":[2.5]}])"),
              HasSubstr("data[0] = 2.5 is not a INT32"));
  EXPECT_THAT(error(R"([{"name":"y","datatype":"INT64","shape":[1],"data":[9223372036854775808]}])"),
              HasSubstr("is not a INT64"));
  EXPECT_THAT(error(R"([{"name":"y","datatype":"FP32","shape":[1],"data":["x"]}])"), HasSubstr("is not a FP32"));
  EXPECT_THAT(error(R"([{"name":"y","datatype":"FP32","shape":[1],"data":[1e39]}])"), HasSubstr("is not a FP32"));
  EXPECT_THAT(error(R"([{"name":"y","datatype":"BOOL","shape":[1],"data":[2]}])"), HasSubstr("is not a BOOL"));
  EXPECT_THAT(error(R"([{"name":"y","datatype":"UINT32","shape":[1],"data":[1]}])"),
              HasSubstr("unsupported datatype 'UINT32'"));
  // BYTES outputs decode as strings (see ClassificationTest); not from numbers.
  EXPECT_THAT(error(R"([{"name":"y","datatype":"BYTES","shape":[1],"data":[1]}])"),
              HasSubstr("output 'y': a BYTES element is not a string"));
  EXPECT_THAT(error(R"([{"name":"y","datatype":"FP32","data":[1]}])"), HasSubstr("output 'y': missing or bad shape"));
  EXPECT_THAT(error(R"([{"datatype":"FP32","shape":[1],"data":[1]}])"), HasSubstr("outputs[0] has no name"));
  EXPECT_THAT(error(R"([{"name":"y","datatype":"FP32","shape":[1]}])"), HasSubstr("output 'y': no data"));
  EXPECT_THAT(error(R"(7)"), HasSubstr("no \"outputs\" array"));
  EXPECT_THAT(ParseRestInferResponse(200, "not json").status().message(), HasSubstr("not a JSON object"));
}

TEST(RestTest, ErrorBodiesBecomeStatuses) {
  absl::StatusOr<InferResult> result = ParseRestInferResponse(404, R"({"error":"model 'q' is not served"})");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result.status().message(), "HTTP 404: model 'q' is not served");
  result = ParseRestInferResponse(503, "upstream down\n");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.status().message(), "HTTP 503: upstream down");
  result = ParseRestInferResponse(500, "");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(result.status().message(), "HTTP 500: (no body)");
  EXPECT_THAT(RestError(400, std::string(500, 'x')).message(), HasSubstr("..."));
  EXPECT_EQ(ParseRestModelMetadata(400, R"({"error":"bad"})").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RestTest, HttpStatusCodes) {
  EXPECT_EQ(HttpStatusToCode(200), absl::StatusCode::kOk);
  EXPECT_EQ(HttpStatusToCode(204), absl::StatusCode::kOk);
  EXPECT_EQ(HttpStatusToCode(400), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpStatusToCode(401), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(HttpStatusToCode(403), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(HttpStatusToCode(404), absl::StatusCode::kNotFound);
  EXPECT_EQ(HttpStatusToCode(408), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(HttpStatusToCode(409), absl::StatusCode::kAborted);
  EXPECT_EQ(HttpStatusToCode(413), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(HttpStatusToCode(422), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(HttpStatusToCode(429), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(HttpStatusToCode(499), absl::StatusCode::kCancelled);
  EXPECT_EQ(HttpStatusToCode(500), absl::StatusCode::kInternal);
  EXPECT_EQ(HttpStatusToCode(501), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(HttpStatusToCode(503), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusToCode(504), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(HttpStatusToCode(302), absl::StatusCode::kUnknown);
}

TEST(RestTest, ModelMetadata) {
  absl::StatusOr<ModelInfo> info = ParseRestModelMetadata(200, R"({"name":"m","versions":["1","2"],"platform":"p",
      "inputs":[{"name":"x","datatype":"FP16","shape":[-1,3]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1]}]})");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name, "m");
  EXPECT_THAT(info->versions, ElementsAre("1", "2"));
  ASSERT_EQ(info->inputs.size(), 1u);
  EXPECT_EQ(info->inputs[0].dtype, DType::kFloat16);
  EXPECT_THAT(info->inputs[0].shape, ElementsAre(-1, 3));
  ASSERT_EQ(info->outputs.size(), 1u);
  EXPECT_EQ(info->outputs[0].name, "y");
}

// ---------------------------------------------------------------------------
// --http.

TEST(HttpAddressTest, Normalizes) {
  EXPECT_EQ(*NormalizeHttpBase("localhost:8502", false), "http://localhost:8502");
  EXPECT_EQ(*NormalizeHttpBase("localhost:8502", true), "https://localhost:8502");
  EXPECT_EQ(*NormalizeHttpBase("http://h:1/prefix/", true), "http://h:1/prefix");
  EXPECT_EQ(*NormalizeHttpBase("https://[::1]:443", false), "https://[::1]:443");
  EXPECT_THAT(NormalizeHttpBase("ftp://h:1", false).status().message(), HasSubstr("scheme must be http or https"));
  EXPECT_THAT(NormalizeHttpBase("localhost", false).status().message(), HasSubstr("--http: expected"));
  EXPECT_FALSE(NormalizeHttpBase("h:", false).ok());
  EXPECT_FALSE(NormalizeHttpBase(":80", false).ok());
  EXPECT_FALSE(NormalizeHttpBase("h:99999", false).ok());
}

TEST(HttpAddressTest, ServerNameReplacesTheUrlHost) {
  HttpOptions options;
  options.address = "127.0.0.1:9443/p";
  options.tls.tls = true;
  options.tls.server_name = "localhost";
  absl::StatusOr<HttpEndpoint> endpoint = HttpEndpoint::Create(options);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->Url("/v2/x"), "https://localhost:9443/p/v2/x");
  options.tls.tls = false;
  EXPECT_THAT(HttpEndpoint::Create(options).status().message(), HasSubstr("--tls_server_name needs TLS"));
}

// ---------------------------------------------------------------------------
// What predict prints.

TEST(PredictJsonTest, SameShapeForEveryProtocol) {
  InferResult result;
  result.model = "m";
  result.version = "3";
  result.id = "r";
  result.outputs = {MakeTensor<int64_t>("y", DType::kInt64, {1, 2}, {9007199254740993LL, -1})};
  const nlohmann::json json = PredictResultJson(Protocol::kRest, result, absl::Milliseconds(2));
  EXPECT_EQ(json["protocol"], "rest");
  EXPECT_EQ(json["model"], "m");
  EXPECT_EQ(json["version"], 3);
  EXPECT_EQ(json["request_id"], "r");
  EXPECT_EQ(json["latency_ms"], 2.0);
  // INT64 exactly, not through a double.
  EXPECT_EQ(json["outputs"]["y"].dump(), R"({"data":[[9007199254740993,-1]],"dtype":"INT64","shape":[1,2]})");
  for (Protocol p : {Protocol::kV1, Protocol::kV2}) {
    nlohmann::json other = PredictResultJson(p, result, absl::Milliseconds(2));
    other["protocol"] = "rest";
    EXPECT_EQ(other, json);
  }
  result.version = "stable";
  result.id.clear();
  const nlohmann::json labelled = PredictResultJson(Protocol::kV2, result, absl::Milliseconds(2));
  EXPECT_EQ(labelled["version"], "stable");
  EXPECT_FALSE(labelled.contains("request_id"));
}

}  // namespace
TEST(ParseRestMaxBatchSizeTest, ReadsTritonsConfigAndToleratesServersWithout) {
  EXPECT_EQ(ParseRestMaxBatchSize(200, R"({"name":"m","max_batch_size":0})"), std::optional<int64_t>(0));
  EXPECT_EQ(ParseRestMaxBatchSize(200, R"({"max_batch_size":64})"), std::optional<int64_t>(64));
  EXPECT_EQ(ParseRestMaxBatchSize(404, R"({"error":"not found"})"), std::nullopt);
  EXPECT_EQ(ParseRestMaxBatchSize(200, R"({"name":"m"})"), std::nullopt);
  EXPECT_EQ(ParseRestMaxBatchSize(200, R"({"max_batch_size":"8"})"), std::nullopt);
  EXPECT_EQ(ParseRestMaxBatchSize(200, "not json"), std::nullopt);
}

}  // namespace microbatch
