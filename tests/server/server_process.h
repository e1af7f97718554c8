// Runs microbatch-server as a child process for tests that need signals or
// several servers.
#ifndef MICROBATCH_TESTS_SERVER_SERVER_PROCESS_H_
#define MICROBATCH_TESTS_SERVER_SERVER_PROCESS_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace microbatch::testing {

// Not thread-safe. The destructor kills a process still running.
class ServerProcess {
 public:
  // Starts `binary` with `args`, stderr to `log_path`.
  ServerProcess(const std::string& binary, const std::vector<std::string>& args,
                std::string log_path)
      : log_path_(std::move(log_path)) {
    pid_ = fork();
    if (pid_ == 0) {
      FILE* log = std::freopen(log_path_.c_str(), "w", stderr);
      (void)log;
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(binary.c_str()));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
  }
  ~ServerProcess() {
    if (pid_ > 0 && exit_code_ < 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Waits for a log line matching `pattern`; returns its first capture group
  // (or the whole line), or "" after `timeout`.
  std::string WaitForLog(const std::string& pattern, std::chrono::seconds timeout) {
    const std::regex re(pattern);
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      std::ifstream in(log_path_);
      std::string line;
      while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_search(line, m, re)) return m.size() > 1 ? m[1].str() : line;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return "";
  }
  // The gRPC port from the server's grpc_listening log line, or 0.
  int WaitForGrpcPort() {
    const std::string port = WaitForLog("grpc_listening address=[^ ]*:([0-9]+)", std::chrono::seconds(60));
    return port.empty() ? 0 : std::stoi(port);
  }
  void Signal(int signal) { kill(pid_, signal); }
  pid_t pid() const { return pid_; }
  // Exit code, or -1 if still running after `timeout` (128+N for signal N).
  int Wait(std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::string Log() const {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace microbatch::testing

#endif  // MICROBATCH_TESTS_SERVER_SERVER_PROCESS_H_
