// Command-line parsing for the microbatch CLI's subcommands: each subcommand
// declares its flags (with defaults and help) and gets --help for free.
#ifndef MICROBATCH_CLIENT_ARGS_H_
#define MICROBATCH_CLIENT_ARGS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace microbatch {

// Not thread-safe; used once per process.
class Args {
 public:
  Args(std::string command, std::string summary) : command_(std::move(command)), summary_(std::move(summary)) {}

  // Declares --name. `repeated` flags may be given several times.
  void Flag(const std::string& name, const std::string& default_value, const std::string& help,
            bool repeated = false);
  // Parses "--name value", "--name=value" and bare "--name" for booleans.
  // INVALID_ARGUMENT for an unknown flag or a missing value.
  absl::Status Parse(int argc, char** argv);

  bool help() const { return help_; }
  std::string Usage() const;
  const std::string& Get(const std::string& name) const;
  const std::vector<std::string>& GetAll(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  // INVALID_ARGUMENT naming the flag when the value is not an integer.
  absl::Status GetInt(const std::string& name, int64_t* value) const;
  absl::Status GetDouble(const std::string& name, double* value) const;

 private:
  struct Spec {
    std::string default_value;
    std::string help;
    bool repeated = false;
  };
  std::string command_;
  std::string summary_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  bool help_ = false;
};

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_ARGS_H_
