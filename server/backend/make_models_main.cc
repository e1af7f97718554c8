// microbatch-make-models: writes TorchScript demo models and their configs as
// a model repository, without Python.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/backend/demo_models.h"

ABSL_FLAG(std::string, output, "models", "Model repository directory to write");
ABSL_FLAG(std::string, models, "mlp,pair",
          "Comma-separated models to write (see --help for the list)");
ABSL_FLAG(int, versions, 1, "Versions to write per model (1..N)");
ABSL_FLAG(uint64_t, seed, 42, "Seed of the random weights");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes a model repository of TorchScript models defined in C++.\nModels: " +
      absl::StrJoin(microbatch::DemoModelNames(), ", "));
  absl::ParseCommandLine(argc, argv);
  microbatch::DemoModelOptions options;
  options.models = absl::StrSplit(absl::GetFlag(FLAGS_models), ',', absl::SkipEmpty());
  options.versions = absl::GetFlag(FLAGS_versions);
  options.seed = absl::GetFlag(FLAGS_seed);
  absl::Status status = microbatch::WriteModelRepository(absl::GetFlag(FLAGS_output), options);
  if (!status.ok()) {
    std::cerr << "microbatch-make-models: " << status << "\n";
    return 1;
  }
  std::cout << "wrote " << absl::StrJoin(options.models, ", ") << " to "
            << absl::GetFlag(FLAGS_output) << "\n";
  return 0;
}
