// Pins the exact set of metric families the server exposes, with their types
// and label names: dashboards and the PrometheusRule in deploy/ depend on
// them, so a renamed metric or label fails here first.
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/demo_models.h"
#include "server/service/server.h"
#include "tests/server/http_get.h"
#include "tests/server/loopback_server.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::HttpGet;
using ::microbatch::testing::InferenceStub;
using ::microbatch::testing::TempDir;

struct FamilyShape {
  std::string type;
  std::set<std::string> labels;  // of the samples, without `le`
  bool operator==(const FamilyShape& o) const { return type == o.type && labels == o.labels; }
};

std::ostream& operator<<(std::ostream& os, const FamilyShape& f) {
  os << f.type << " {";
  for (const std::string& l : f.labels) os << l << " ";
  return os << "}";
}

// name -> type and label names, from "# TYPE" lines and the samples.
std::map<std::string, FamilyShape> Families(const std::string& exposition) {
  std::map<std::string, FamilyShape> families;
  static const std::regex kType(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) ([a-z]+))");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)=")re");
  std::istringstream in(exposition);
  std::string current;
  for (std::string line; std::getline(in, line);) {
    std::smatch match;
    if (std::regex_match(line, match, kType)) {
      current = match[1];
      families[current].type = match[2];
      continue;
    }
    if (line.empty() || line[0] == '#' || current.empty()) continue;
    const size_t brace = line.find('{');
    if (brace == std::string::npos) continue;
    const std::string labels = line.substr(brace, line.rfind('}') - brace);
    for (std::sregex_iterator it(labels.begin(), labels.end(), kLabel), end; it != end; ++it) {
      if ((*it)[1] != "le") families[current].labels.insert((*it)[1]);
    }
  }
  return families;
}

TEST(MetricFamiliesTest, ExactSetOfFamiliesTypesAndLabels) {
  TempDir dir("metric_families_test");
  DemoModelOptions models;
  models.models = {"mlp"};
  ASSERT_TRUE(WriteModelRepository(dir.path(), models).ok());
  ServerOptions options = ::microbatch::testing::LoopbackOptions(dir.path());
  InferenceServer server(options);
  ASSERT_TRUE(server.StartListening().ok());
  ASSERT_TRUE(server.LoadModels().ok());
  auto stub = InferenceStub(server.grpc_port());
  v1::PredictRequest request;
  request.set_model("mlp");
  *request.add_inputs() = Fp32Tensor("x", {1, 16}, std::vector<float>(16, 0.5f));
  v1::PredictResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Predict(&context, request, &response).ok());

  auto scrape = HttpGet(server.metrics_port(), "/metrics");
  ASSERT_EQ(scrape.status, 200);
  const std::set<std::string> model = {"model", "version"};
  auto with = [&](std::set<std::string> more) {
    more.insert(model.begin(), model.end());
    return more;
  };
  const std::map<std::string, FamilyShape> expected = {
      {"microbatch_requests_total", {"counter", with({"method", "code"})}},
      {"microbatch_rejected_requests_total", {"counter", with({"reason"})}},
      {"microbatch_inference_rows_total", {"counter", model}},
      {"microbatch_batches_total", {"counter", model}},
      {"microbatch_batch_size_rows", {"histogram", model}},
      {"microbatch_queue_wait_seconds", {"histogram", model}},
      {"microbatch_compute_seconds", {"histogram", model}},
      {"microbatch_request_duration_seconds", {"histogram", with({"method"})}},
      {"microbatch_requests_in_flight", {"gauge", model}},
      {"microbatch_model_load_seconds", {"gauge", model}},
      {"microbatch_model_warmup_seconds", {"gauge", model}},
      {"microbatch_build_info", {"gauge", {"version", "backend"}}},
      {"microbatch_queue_requests", {"gauge", model}},
      {"microbatch_queue_rows", {"gauge", model}},
      {"microbatch_instances_busy", {"gauge", model}},
      {"microbatch_queue_capacity_requests", {"gauge", model}},
      {"microbatch_instances", {"gauge", model}},
      {"microbatch_model_ready", {"gauge", model}},
      {"microbatch_model_version_state", {"gauge", with({"state"})}},
      {"microbatch_shadow_requests_total", {"counter", with({"result"})}},
      {"microbatch_shadow_rows_total", {"counter", model}},
      {"microbatch_shadow_argmax_mismatch_rows_total", {"counter", model}},
      {"microbatch_shadow_max_abs_diff", {"histogram", model}},
      {"microbatch_cache_lookups_total", {"counter", with({"result"})}},
      {"microbatch_cache_lookup_seconds", {"histogram", model}},
      {"microbatch_memory_budget_bytes", {"gauge", {}}},
      {"microbatch_memory_in_use_bytes", {"gauge", {}}},
      {"process_cpu_seconds_total", {"counter", {}}},
      {"process_resident_memory_bytes", {"gauge", {}}},
      {"process_virtual_memory_bytes", {"gauge", {}}},
      {"process_open_fds", {"gauge", {}}},
      {"process_max_fds", {"gauge", {}}},
      {"process_start_time_seconds", {"gauge", {}}},
  };
  EXPECT_EQ(Families(scrape.body), expected) << scrape.body;
  server.Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace microbatch
