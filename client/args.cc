#include "client/args.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace microbatch {

void Args::Flag(const std::string& name, const std::string& default_value, const std::string& help,
                bool repeated) {
  order_.push_back(name);
  specs_[name] = Spec{default_value, help, repeated};
}

absl::Status Args::Parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto spec = specs_.find(name);
    if (spec == specs_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " for '", command_, "' (see --help)"));
    }
    if (!has_value) {
      const bool is_bool = spec->second.default_value == "false" || spec->second.default_value == "true";
      if (is_bool && (i + 1 >= argc || absl::StartsWith(argv[i + 1], "--"))) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    std::vector<std::string>& values = values_[name];
    if (!spec->second.repeated) values.clear();
    values.push_back(value);
  }
  return absl::OkStatus();
}

std::string Args::Usage() const {
  std::string usage = absl::StrCat("usage: microbatch ", command_, " [flags]\n", summary_, "\n\nflags:\n");
  for (const std::string& name : order_) {
    const Spec& spec = specs_.at(name);
    absl::StrAppend(&usage, "  --", name, spec.repeated ? " (repeatable)" : "", "\n      ", spec.help,
                    spec.default_value.empty() ? "" : absl::StrCat(" (default: ", spec.default_value, ")"),
                    "\n");
  }
  return usage;
}

const std::string& Args::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end() && !it->second.empty()) return it->second.back();
  return specs_.at(name).default_value;
}

const std::vector<std::string>& Args::GetAll(const std::string& name) const {
  static const std::vector<std::string> kEmpty;
  auto it = values_.find(name);
  return it == values_.end() ? kEmpty : it->second;
}

bool Args::GetBool(const std::string& name) const { return Get(name) == "true" || Get(name) == "1"; }

absl::Status Args::GetInt(const std::string& name, int64_t* value) const {
  if (!absl::SimpleAtoi(Get(name), value)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be an integer, got '", Get(name), "'"));
  }
  return absl::OkStatus();
}

absl::Status Args::GetDouble(const std::string& name, double* value) const {
  if (!absl::SimpleAtod(Get(name), value)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be a number, got '", Get(name), "'"));
  }
  return absl::OkStatus();
}

}  // namespace microbatch
