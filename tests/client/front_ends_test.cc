// The real `microbatch` binary speaking v1, v2 (gRPC) and REST to the
// stand-in front ends of fake_front_ends.h: predict prints the same JSON for
// each protocol, errors exit 1 with the server's message, and bench loads the
// three front ends in one run (keep-alive for REST).
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/run_cli.h"
#include "tests/client/fake_front_ends.h"

namespace microbatch {
namespace {

using ::microbatch::testing::FakeBehavior;
using ::microbatch::testing::FakeFrontEnds;
using ::microbatch::testing::CliRun;
using ::microbatch::testing::RunCli;
using ::testing::HasSubstr;

std::string BenchEndpoints(const FakeFrontEnds& fake) {
  return " --target " + fake.grpc_target() + " --http " + fake.http_address();
}

std::string Endpoints(const FakeFrontEnds& fake) { return BenchEndpoints(fake) + " --timeout_ms 10000"; }

// predict's JSON without what differs by design (protocol, latency).
nlohmann::json Comparable(const std::string& out) {
  nlohmann::json json = nlohmann::json::parse(out, nullptr, false);
  if (json.is_discarded()) return json;
  json.erase("protocol");
  json.erase("latency_ms");
  return json;
}

TEST(FrontEndsTest, PredictPrintsTheSameJsonForEveryProtocol) {
  FakeFrontEnds fake;
  nlohmann::json v1;
  for (const char* protocol : {"v1", "v2", "rest"}) {
    const CliRun run = RunCli(std::string("predict --protocol ") + protocol + Endpoints(fake) +
                              " --model m --request_id r7 --input 'x=[[0.1,-2,3.25,1e-7]]'");
    ASSERT_EQ(run.code, 0) << protocol << ": " << run.err;
    const nlohmann::json full = nlohmann::json::parse(run.out);
    EXPECT_EQ(full["protocol"], protocol);
    EXPECT_TRUE(full["latency_ms"].is_number());
    const nlohmann::json json = Comparable(run.out);
    EXPECT_EQ(json["model"], "m") << protocol;
    EXPECT_EQ(json["version"], 1) << protocol;
    EXPECT_EQ(json["request_id"], "r7") << protocol;
    EXPECT_EQ(json["outputs"]["x_out"]["dtype"], "FP32");
    EXPECT_EQ(json["outputs"]["x_out"]["shape"], nlohmann::json::parse("[1,4]"));
    // FP32 values printed as their exact doubles: 0.1f, not 0.1.
    EXPECT_EQ(json["outputs"]["x_out"]["data"][0][0].get<double>(), static_cast<double>(0.1f)) << protocol;
    if (v1.is_null()) {
      v1 = json;
    } else {
      EXPECT_EQ(json, v1) << protocol;
    }
  }
}

TEST(FrontEndsTest, V2TypedContentsPrintLikeRaw) {
  FakeBehavior typed;
  typed.v2_typed = true;
  typed.inputs = {{"i", "INT64", {-1, 2}}, {"b", "BOOL", {-1, 2}}};
  FakeFrontEnds fake(typed);
  const std::string inputs = " --model m --input 'i=[[9007199254740993,-5]]' --input 'b=[[true,false]]'";
  const CliRun raw_like = RunCli("predict --protocol v1" + Endpoints(fake) + inputs);
  const CliRun v2 = RunCli("predict --protocol v2" + Endpoints(fake) + inputs);
  ASSERT_EQ(raw_like.code, 0) << raw_like.err;
  ASSERT_EQ(v2.code, 0) << v2.err;
  EXPECT_EQ(Comparable(v2.out), Comparable(raw_like.out));
  EXPECT_EQ(Comparable(v2.out)["outputs"]["b_out"]["data"], nlohmann::json::parse("[[true,false]]"));
}

TEST(FrontEndsTest, V2SendsRawInputsAndTheVersionString) {
  FakeFrontEnds fake;
  const CliRun run = RunCli("predict --protocol v2" + Endpoints(fake) +
                            " --model m --version 1 --output x_out --input 'x=[[1,2,3,4]]'");
  ASSERT_EQ(run.code, 0) << run.err;
  const inference::ModelInferRequest request = fake.v2().last_request();
  EXPECT_EQ(request.model_version(), "1");
  ASSERT_EQ(request.raw_input_contents_size(), 1);
  const float expected[] = {1, 2, 3, 4};
  EXPECT_EQ(request.raw_input_contents(0), std::string(reinterpret_cast<const char*>(expected), sizeof(expected)));
  ASSERT_EQ(request.outputs_size(), 1);
  EXPECT_EQ(request.outputs(0).name(), "x_out");
}

TEST(FrontEndsTest, RestPostsTheDocumentedBody) {
  FakeFrontEnds fake;
  const CliRun run =
      RunCli("predict --protocol rest" + Endpoints(fake) + " --model m --version 1 --request_id q --input 'x=[[1,2,3,4]]'");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(fake.rest().last_path(), "/v2/models/m/versions/1/infer");
  EXPECT_EQ(nlohmann::json::parse(fake.rest().last_body()),
            nlohmann::json::parse(R"({"id":"q","inputs":[{"name":"x","shape":[1,4],"datatype":"FP32",
                                     "data":[1.0,2.0,3.0,4.0]}]})"));
}

TEST(FrontEndsTest, ErrorsExit1WithTheServersMessage) {
  FakeBehavior refusing;
  refusing.rest_status = 503;
  refusing.rest_error = "draining, come back later";
  refusing.v2_unimplemented = true;
  FakeFrontEnds fake(refusing);
  CliRun run = RunCli("predict --protocol rest" + Endpoints(fake) + " --model m --input 'x=[[1,2,3,4]]'");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("microbatch: UNAVAILABLE: HTTP 503: draining, come back later"));
  EXPECT_TRUE(run.out.empty());
  run = RunCli("predict --protocol rest" + Endpoints(fake) + " --model nope --input 'x=[[1,2,3,4]]'");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("NOT_FOUND: HTTP 404: unknown path /v2/models/nope"));
  run = RunCli("predict --protocol rest" + Endpoints(fake) + " --model m --version stable --input 'x=[[1,2,3,4]]'");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("unknown path /v2/models/m/versions/stable"));
  run = RunCli("predict --protocol v2" + Endpoints(fake) + " --model m --input 'x=[[1,2,3,4]]'");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("UNIMPLEMENTED"));
  // Nothing listens on port 1.
  run = RunCli("predict --protocol rest --http 127.0.0.1:1 --model m --input 'x=[[1,2,3,4]]'");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("UNAVAILABLE: GET http://127.0.0.1:1/v2/models/m"));
}

TEST(FrontEndsTest, NpyInputsNeedNoMetadata) {
  FakeFrontEnds fake;
  // A .npy of INT64 [1,2]: written by hand (NPY 1.0 header).
  const std::string path = ::testing::TempDir() + "/front_ends_i64." + std::to_string(::getpid()) + ".npy";
  {
    std::string header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }";
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    out << "\x93NUMPY" << '\x01' << '\x00';
    const uint16_t len = static_cast<uint16_t>(header.size());
    out.write(reinterpret_cast<const char*>(&len), 2);
    out << header;
    const int64_t values[] = {INT64_MAX, -3};
    out.write(reinterpret_cast<const char*>(values), sizeof(values));
  }
  for (const char* protocol : {"v2", "rest"}) {
    const CliRun run = RunCli(std::string("predict --protocol ") + protocol + Endpoints(fake) +
                              " --model m --input z=" + path);
    ASSERT_EQ(run.code, 0) << protocol << ": " << run.err;
    EXPECT_EQ(Comparable(run.out)["outputs"]["z_out"]["data"], nlohmann::json::parse("[[9223372036854775807,-3]]"))
        << protocol;
  }
  std::remove(path.c_str());
}

std::string BenchFlags() { return " --window-ms 150 --warmup-ms 50 --max-windows 2 --stable-windows 1 --model m"; }

TEST(FrontEndsTest, BenchComparesTheThreeFrontEndsInOneRun) {
  FakeFrontEnds fake;
  const CliRun run = RunCli("bench --protocol v1,v2,rest --concurrency 1,4 --format json" + BenchEndpoints(fake) +
                            BenchFlags());
  ASSERT_EQ(run.code, 0) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  ASSERT_EQ(report["protocols"].size(), 3u);
  EXPECT_EQ(report["protocols"][0]["method"], "Predict");
  EXPECT_EQ(report["protocols"][1]["method"], "ModelInfer");
  EXPECT_EQ(report["protocols"][2]["method"], "POST infer");
  EXPECT_THAT(report["protocols"][2]["target"].get<std::string>(), HasSubstr("/v2/models/m/infer"));
  ASSERT_EQ(report["levels"].size(), 6u);
  const char* order[] = {"v1", "v2", "rest", "v1", "v2", "rest"};
  for (size_t i = 0; i < 6; ++i) {
    const nlohmann::json& level = report["levels"][i];
    EXPECT_EQ(level["protocol"], order[i]);
    EXPECT_EQ(level["level"], i < 3 ? 1 : 4);
    EXPECT_GT(level["ok"].get<int64_t>(), 0) << order[i];
    EXPECT_EQ(level["errors"], 0) << order[i] << " " << level["errors_by_code"].dump();
  }
  // Keep-alive: far fewer connections than requests, at most one per request
  // in flight (4) plus the metadata-free preflight ones.
  EXPECT_LE(fake.rest().connections(), 8);
  EXPECT_GT(fake.rest().requests(), 10 * fake.rest().connections());
}

TEST(FrontEndsTest, BenchRoundsRepeatTheWholeSequence) {
  FakeFrontEnds fake;
  const CliRun run = RunCli("bench --protocol v1,v2 --concurrency 1,2 --rounds 2 --format json" +
                            BenchEndpoints(fake) + BenchFlags());
  ASSERT_EQ(run.code, 0) << run.err;
  const nlohmann::json report = nlohmann::json::parse(run.out);
  EXPECT_EQ(report["rounds"], 2);
  ASSERT_EQ(report["levels"].size(), 8u);
  const char* protocol[] = {"v1", "v2"};
  for (size_t i = 0; i < 8; ++i) {
    const nlohmann::json& level = report["levels"][i];
    EXPECT_EQ(level["round"], i < 4 ? 1 : 2) << i;
    EXPECT_EQ(level["level"], i % 4 < 2 ? 1 : 2) << i;
    EXPECT_EQ(level["protocol"], protocol[i % 2]) << i;
    EXPECT_GT(level["ok"].get<int64_t>(), 0) << i;
  }
  EXPECT_THAT(run.err, HasSubstr("bench: round 2/2 v2 ModelInfer m c=2: "));

  const CliRun table = RunCli("bench --protocol v1,v2 --concurrency 2 --rounds 2" + BenchEndpoints(fake) +
                              BenchFlags());
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("round 2 c=2 throughput v2/v1 "));
  EXPECT_THAT(table.out, HasSubstr("median of 2 rounds: c=2 throughput v2/v1 "));
}

TEST(FrontEndsTest, BenchTableShowsProtocolsAndRatios) {
  FakeFrontEnds fake;
  const CliRun run = RunCli("bench --protocol v1,rest --concurrency 2" + BenchEndpoints(fake) + BenchFlags());
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("proto"));
  EXPECT_THAT(run.out, HasSubstr("  rest: POST infer at http://"));
  EXPECT_THAT(run.out, HasSubstr("c=2 throughput rest/v1 "));
}

TEST(FrontEndsTest, BenchOpenLoopOverRestAndV2Only) {
  FakeFrontEnds fake;
  // Without v1 the metadata comes from v2 ModelMetadata, or REST GET.
  for (const char* protocol : {"v2", "rest"}) {
    const CliRun run =
        RunCli(std::string("bench --protocol ") + protocol + " --request-rate 200 --format json" + BenchEndpoints(fake) +
               BenchFlags());
    ASSERT_EQ(run.code, 0) << protocol << ": " << run.err;
    const nlohmann::json report = nlohmann::json::parse(run.out);
    ASSERT_EQ(report["levels"].size(), 1u);
    EXPECT_EQ(report["levels"][0]["mode"], "rate");
    EXPECT_GT(report["levels"][0]["ok"].get<int64_t>(), 0) << protocol;
    EXPECT_EQ(report["levels"][0]["errors"], 0) << protocol;
  }
}

TEST(FrontEndsTest, BenchFailsClearlyWhenAFrontEndRefuses) {
  FakeBehavior refusing;
  refusing.rest_status = 503;
  refusing.v2_unimplemented = true;
  FakeFrontEnds fake(refusing);
  CliRun run = RunCli("bench --protocol v1,v2" + BenchEndpoints(fake) + BenchFlags());
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("v2: the first ModelInfer request to " + fake.grpc_target() + " failed: UNIMPLEMENTED"));
  run = RunCli("bench --protocol rest" + BenchEndpoints(fake) + BenchFlags());
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("rest: the first POST infer request"));
  EXPECT_THAT(run.err, HasSubstr("failed: UNAVAILABLE"));
}

}  // namespace
}  // namespace microbatch
