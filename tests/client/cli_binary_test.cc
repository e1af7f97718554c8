// The real `microbatch` binary: exit codes and where the text goes.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/run_cli.h"

namespace microbatch {
namespace {

using ::microbatch::testing::CliRun;
using ::microbatch::testing::RunCli;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(CliBinaryTest, NoSubcommandExits2) {
  const CliRun run = RunCli("");
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("subcommand is required"));
  EXPECT_THAT(run.out, IsEmpty());
}

TEST(CliBinaryTest, UsageErrorsExit2NamingTheOption) {
  CliRun run = RunCli("bench --model mlp --concurrency abc");
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("--concurrency"));
  EXPECT_THAT(run.err, HasSubstr("microbatch bench --help"));
  run = RunCli("predict --input x=[1]");
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("--model is required"));
  run = RunCli("models --no-such-option");
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("--no-such-option"));
}

TEST(CliBinaryTest, HelpExits0OnStdout) {
  for (const char* command : {"predict", "models", "batch", "bench"}) {
    const CliRun run = RunCli(std::string(command) + " --help");
    EXPECT_EQ(run.code, 0) << command;
    EXPECT_THAT(run.out, HasSubstr("--tls_ca")) << command;
    EXPECT_THAT(run.err, IsEmpty()) << command;
  }
  for (const char* command : {"predict", "bench"}) {
    const CliRun run = RunCli(std::string(command) + " --help");
    EXPECT_THAT(run.out, HasSubstr("--protocol")) << command;
    EXPECT_THAT(run.out, HasSubstr("--http")) << command;
  }
  for (const char* action : {"load", "unload", "label", "split", "shadow"}) {
    const CliRun run = RunCli(std::string("model ") + action + " --help");
    EXPECT_EQ(run.code, 0) << action;
    EXPECT_THAT(run.out, HasSubstr("Usage: microbatch model " + std::string(action))) << action;
    EXPECT_THAT(run.out, HasSubstr("--timeout")) << action;
    EXPECT_THAT(run.out, HasSubstr("--tls_ca")) << action;
    EXPECT_THAT(run.err, IsEmpty()) << action;
  }
  const CliRun run = RunCli("--help");
  EXPECT_EQ(run.code, 0);
  EXPECT_THAT(run.out, HasSubstr("bench"));
}

TEST(CliBinaryTest, VersionPrintsTheProjectVersionAndExitsZero) {
  const CliRun run = RunCli("--version");
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "microbatch " MICROBATCH_VERSION "\n");
}

TEST(CliBinaryTest, ModelUsageErrorsExit2) {
  CliRun run = RunCli("model split mlp 3:x");
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("percent 'x' is not a number in (0, 100]"));
  EXPECT_THAT(run.err, HasSubstr("microbatch model split --help"));
  EXPECT_THAT(run.out, IsEmpty());
  run = RunCli("model");
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("load, unload, label, split, shadow"));
  run = RunCli("model shadow mlp 4");
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("FRACTION is required"));
}

TEST(CliBinaryTest, RuntimeFailureExits1) {
  // Nothing listens on port 1.
  CliRun run = RunCli("models --target 127.0.0.1:1 --timeout_ms 2000");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("UNAVAILABLE"));
  run = RunCli("model load mlp --target 127.0.0.1:1 --timeout 2");
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err, HasSubstr("microbatch: UNAVAILABLE: "));
  EXPECT_THAT(run.out, IsEmpty());
}

}  // namespace
}  // namespace microbatch
