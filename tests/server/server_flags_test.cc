// microbatch-server --help lists every server flag with its default and
// meaning, exits 0, and every flag is documented in the README's table.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

using ::testing::HasSubstr;

// stdout and stderr of `command`, and its exit code.
std::pair<std::string, int> RunCommand(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while (pipe != nullptr && (n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

// The flags defined in server/service/main.cc, from --helpfull (which lists
// every flag of the binary, grouped by the file that defines it).
std::set<std::string> ServerFlags() {
  const std::string full = RunCommand(std::string(MICROBATCH_SERVER_BIN) + " --helpfull").first;
  std::set<std::string> flags;
  bool ours = false;
  std::istringstream lines(full);
  static const std::regex kFlag(R"(^    --([a-z0-9_]+) \()");
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("  Flags from ", 0) == 0) ours = line.find("server/service/main.cc") != std::string::npos;
    std::smatch match;
    if (ours && std::regex_search(line, match, kFlag)) flags.insert(match[1]);
  }
  return flags;
}

TEST(ServerFlagsTest, HelpListsEveryFlagWithItsDefaultAndExitsZero) {
  const auto [help, code] = RunCommand(std::string(MICROBATCH_SERVER_BIN) + " --help");
  EXPECT_EQ(code, 0) << help;
  const std::set<std::string> flags = ServerFlags();
  for (const char* expected : {"grpc_port", "model_repository", "metrics_port", "host",
                               "max_message_bytes", "tls_cert", "enable_reflection"}) {
    EXPECT_TRUE(flags.count(expected)) << expected;
  }
  EXPECT_GE(flags.size(), 15u);
  for (const std::string& flag : flags) {
    const std::regex entry("--" + flag + R"( \([^)]*[\s\S]*?\); default: )");
    EXPECT_TRUE(std::regex_search(help, entry)) << "--help lacks --" << flag << "\n" << help;
  }
}

TEST(ServerFlagsTest, EveryFlagIsInTheReadmeTable) {
  std::ifstream in(MICROBATCH_SOURCE_DIR "/README.md");
  std::stringstream readme;
  readme << in.rdbuf();
  ASSERT_FALSE(readme.str().empty());
  for (const std::string& flag : ServerFlags()) {
    EXPECT_THAT(readme.str(), HasSubstr("| `--" + flag + "` |")) << "README.md lacks --" << flag;
  }
}

TEST(ServerFlagsTest, VersionPrintsTheProjectVersionAndExitsZero) {
  const auto [out, code] = RunCommand(std::string(MICROBATCH_SERVER_BIN) + " --version");
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "microbatch-server " MICROBATCH_VERSION "\n");
}

TEST(ServerFlagsTest, UnknownFlagFails) {
  const auto [out, code] = RunCommand(std::string(MICROBATCH_SERVER_BIN) + " --no_such_flag=1");
  EXPECT_NE(code, 0);
  EXPECT_THAT(out, HasSubstr("no_such_flag"));
}

}  // namespace
}  // namespace microbatch
