// `microbatch models` and `microbatch model load|unload|label|split|shadow`:
// the real binary against a real microbatch-server on loopback, in explicit
// mode (model "lc": identity versions 1, 2 and 3, not loaded at startup) and
// in poll mode (where load and unload are refused).
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/run_cli.h"
#include "tests/v2/v2_server.h"

namespace microbatch {
namespace {

namespace fs = std::filesystem;
using ::microbatch::testing::TempDir;
using ::microbatch::testing::CliRun;
using ::microbatch::testing::RunCli;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// A server over "identity" (loaded at startup) and "lc" (identity versions 1
// to 3, every version served once loaded; not loaded at startup in explicit
// mode).
class LifecycleServer {
 public:
  explicit LifecycleServer(ControlMode mode) : dir_("model_cli_e2e_test") {
    DemoModelOptions models;
    models.models = {"identity"};
    EXPECT_TRUE(WriteModelRepository(dir_.path(), models).ok());
    testing::WriteIdentityModel(dir_.path(), "lc", "FP32", "max_batch_size: 8\nversion_policy { all: true }\n");
    for (int version : {2, 3}) {
      fs::create_directories(Version(version));
      fs::copy_file(Version(1) / "model.pt", Version(version) / "model.pt");
    }
    ServerOptions options = testing::LoopbackOptions(dir_.path());
    options.model_control.mode = mode;
    if (mode == ControlMode::kExplicit) options.model_control.startup_models = {"identity"};
    server_ = std::make_unique<InferenceServer>(options);
    absl::Status status = server_->StartListening();
    EXPECT_TRUE(status.ok()) << status;
    status = server_->LoadModels();
    EXPECT_TRUE(status.ok()) << status;
  }
  ~LifecycleServer() { server_->Shutdown(absl::Seconds(5)); }

  fs::path Version(int version) const { return fs::path(dir_.path()) / "lc" / std::to_string(version); }
  std::string Target() const { return absl::StrCat(" --target 127.0.0.1:", server_->grpc_port()); }

 private:
  TempDir dir_;
  std::unique_ptr<InferenceServer> server_;
};

// The `models` entry of lc version `version` (null when absent).
nlohmann::json Entry(const nlohmann::json& models, int64_t version, const std::string& name = "lc") {
  for (const nlohmann::json& entry : models) {
    if (entry["name"] == name && entry["version"] == version) return entry;
  }
  return nullptr;
}

nlohmann::json Models(const LifecycleServer& server) {
  const CliRun run = RunCli("models" + server.Target());
  EXPECT_EQ(run.code, 0) << run.err;
  nlohmann::json json = nlohmann::json::parse(run.out, nullptr, false);
  EXPECT_TRUE(json.is_array()) << run.out;
  return json;
}

TEST(ModelCliE2ETest, LoadLabelSplitShadowUnload) {
  LifecycleServer server(ControlMode::kExplicit);
  const std::string target = server.Target();

  // Before the load: lc's versions are on disk only; identity is served with
  // its metadata and its state.
  nlohmann::json models = Models(server);
  for (int64_t v : {1, 2, 3}) {
    const nlohmann::json entry = Entry(models, v);
    ASSERT_TRUE(entry.is_object()) << v << ": " << models.dump();
    EXPECT_EQ(entry["state"], "UNAVAILABLE");
    EXPECT_EQ(entry["reason"], "on disk, not loaded");
    EXPECT_FALSE(entry.contains("inputs"));
  }
  const nlohmann::json identity = Entry(models, 1, "identity");
  ASSERT_TRUE(identity.is_object()) << models.dump();
  EXPECT_EQ(identity["state"], "READY");
  EXPECT_EQ(identity["default"], true);
  EXPECT_EQ(identity["platform"], "torchscript");
  EXPECT_TRUE(identity.contains("inputs"));
  EXPECT_TRUE(identity.contains("batching"));

  // load waits for READY and prints the versions.
  CliRun run = RunCli("model load lc" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.err, IsEmpty());
  nlohmann::json loaded = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(loaded.is_array()) << run.out;
  ASSERT_EQ(loaded.size(), 3u) << run.out;
  for (int64_t v : {1, 2, 3}) {
    const nlohmann::json entry = Entry(loaded, v);
    EXPECT_EQ(entry["state"], "READY") << run.out;
    EXPECT_EQ(entry["default"], v == 3) << run.out;  // the highest READY version
  }

  // label, split and shadow: each says what it did; models shows it.
  run = RunCli("model label lc stable 1" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "lc: label stable -> version 1\n");
  run = RunCli("model split lc 2:10" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "lc: canary version 2 10% of unpinned requests\n");
  run = RunCli("model shadow lc 3 0.05" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "lc: shadow version 3, fraction 0.05 of requests mirrored\n");
  models = Models(server);
  EXPECT_EQ(Entry(models, 1)["labels"], nlohmann::json::array({"stable"}));
  EXPECT_EQ(Entry(models, 1)["default"], true);
  EXPECT_EQ(Entry(models, 2)["canary_percent"], 10.0);
  EXPECT_EQ(Entry(models, 2)["default"], false);
  EXPECT_EQ(Entry(models, 3)["shadow_fraction"], 0.05);
  EXPECT_EQ(Entry(models, 3)["labels"], nlohmann::json::array());
  for (int64_t v : {1, 2, 3}) {
    EXPECT_EQ(Entry(models, v)["state"], "READY");
    EXPECT_EQ(Entry(models, v)["versions"], nlohmann::json::array({1, 2, 3}));  // the metadata, as before
  }

  // The table: one line per version.
  run = RunCli("models --format table" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("MODEL     VERSION  STATE"));
  EXPECT_THAT(run.out, ::testing::ContainsRegex("lc +1 +READY +yes +stable +- +-"));
  EXPECT_THAT(run.out, ::testing::ContainsRegex("lc +2 +READY +- +- +10% +-"));
  EXPECT_THAT(run.out, ::testing::ContainsRegex("lc +3 +READY +- +- +- +0.05"));
  EXPECT_THAT(run.out, HasSubstr("(model control mode: explicit)"));

  // The server's refusals: exit 1 with its code and message.
  run = RunCli("model label lc stable 7" + target);
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("microbatch: FAILED_PRECONDITION: "));
  EXPECT_THAT(run.err, HasSubstr("version 7"));
  run = RunCli("model label lc 9lives 1" + target);
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("INVALID_ARGUMENT: "));
  run = RunCli("model split nope 2:10" + target);
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("NOT_FOUND: "));

  // Clearing.
  run = RunCli("model label lc stable --remove" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "lc: label stable removed\n");
  run = RunCli("model split lc none" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "lc: no canary\n");
  run = RunCli("model shadow lc off" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "lc: no shadow\n");
  models = Models(server);
  for (int64_t v : {1, 2, 3}) {
    EXPECT_EQ(Entry(models, v)["labels"], nlohmann::json::array()) << v;
    EXPECT_EQ(Entry(models, v)["canary_percent"], 0.0) << v;
    EXPECT_EQ(Entry(models, v)["shadow_fraction"], 0.0) << v;
    EXPECT_EQ(Entry(models, v)["default"], v == 3) << v;
  }

  // unload waits until every version is gone.
  run = RunCli("model unload lc" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "lc: unloaded\n");
  models = Models(server);
  for (int64_t v : {1, 2, 3}) {
    EXPECT_EQ(Entry(models, v)["state"], "UNAVAILABLE") << models.dump();
    EXPECT_FALSE(Entry(models, v).contains("inputs"));
  }
  run = RunCli("model unload nope" + target);
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.out, IsEmpty());
  EXPECT_THAT(run.err, HasSubstr("microbatch: NOT_FOUND: model 'nope' is not loaded"));
  run = RunCli("model load nope" + target);
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("microbatch: NOT_FOUND: model 'nope' is not in the repository"));
}

TEST(ModelCliE2ETest, AFailedLoadExits1NamingTheVersionAndKeepsServing) {
  LifecycleServer server(ControlMode::kExplicit);
  const std::string target = server.Target();
  CliRun run = RunCli("model load lc --format table" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, ::testing::ContainsRegex("lc +3 +READY +yes"));
  EXPECT_THAT(run.out, Not(HasSubstr("control mode")));

  // Version 4: a model.pt cut in half.
  fs::create_directories(server.Version(4));
  {
    std::ifstream in(server.Version(1) / "model.pt", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(server.Version(4) / "model.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  run = RunCli("model load lc" + target);
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.out, IsEmpty());
  EXPECT_THAT(run.err, HasSubstr("microbatch: "));
  EXPECT_THAT(run.err, HasSubstr("model 'lc' version 4 failed to load: "));

  // Version 4 is FAILED with the reason; 1 to 3 still serve, 3 the default.
  const nlohmann::json models = Models(server);
  const nlohmann::json failed = Entry(models, 4);
  ASSERT_TRUE(failed.is_object()) << models.dump();
  EXPECT_EQ(failed["state"], "FAILED");
  EXPECT_THAT(failed["reason"].get<std::string>(), Not(IsEmpty()));
  EXPECT_FALSE(failed.contains("inputs"));
  for (int64_t v : {1, 2, 3}) EXPECT_EQ(Entry(models, v)["state"], "READY") << v;
  EXPECT_EQ(Entry(models, 3)["default"], true);
  run = RunCli("predict --model lc --input 'x=[1,2]'" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out)["version"], 3);
}

TEST(ModelCliE2ETest, LoadAndUnloadInPollModeAreRefused) {
  LifecycleServer server(ControlMode::kPoll);
  const std::string target = server.Target();
  for (const char* action : {"load", "unload"}) {
    const CliRun run = RunCli(std::string("model ") + action + " lc" + target);
    EXPECT_EQ(run.code, 1) << action;
    EXPECT_THAT(run.out, IsEmpty()) << action;
    EXPECT_THAT(run.err, HasSubstr("microbatch: FAILED_PRECONDITION: the server polls its model repository"))
        << action;
  }
  // Routing changes work in either mode.
  CliRun run = RunCli("model label lc stable 2" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  run = RunCli("models --format table" + target);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, ::testing::ContainsRegex("lc +2 +READY +yes +stable"));
  EXPECT_THAT(run.out, HasSubstr("(model control mode: poll)"));
}

}  // namespace
}  // namespace microbatch
