// Runs the real `microbatch` binary (MICROBATCH_CLI_BIN, set by the test's
// CMake target) and captures what it did.
#ifndef MICROBATCH_TESTS_CLIENT_RUN_CLI_H_
#define MICROBATCH_TESTS_CLIENT_RUN_CLI_H_

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace microbatch::testing {

struct CliRun {
  int code = -1;    // exit status; -1 when the CLI did not exit normally
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the CLI with `args` (shell words). stderr goes to a temp file named
// after this process and run, so that tests running at once (ctest -j runs
// each test in a process of its own) and runs in one test never share one.
// Thread-safe.
inline CliRun RunCli(const std::string& args) {
  static std::atomic<int> runs{0};
  const std::string err_file = ::testing::TempDir() + "/microbatch_cli." + std::to_string(::getpid()) +
                               "." + std::to_string(runs++) + ".stderr";
  FILE* p = popen((std::string(MICROBATCH_CLI_BIN) + " " + args + " 2>" + err_file).c_str(), "r");
  CliRun run;
  if (p == nullptr) return run;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) run.out.append(buf, n);
  const int status = pclose(p);
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (FILE* f = fopen(err_file.c_str(), "r")) {
    while (size_t n = fread(buf, 1, sizeof(buf), f)) run.err.append(buf, n);
    fclose(f);
  }
  std::remove(err_file.c_str());
  return run;
}

}  // namespace microbatch::testing

#endif  // MICROBATCH_TESTS_CLIENT_RUN_CLI_H_
