// microbatch: the command-line client of microbatch-server.
#include <cstring>
#include <iostream>
#include <string>

#include "client/commands.h"

namespace {

constexpr char kUsage[] = R"(usage: microbatch COMMAND [flags]

commands:
  predict   send one Predict request, print the outputs as JSON
  models    list the served models and their metadata
  batch     stream a dataset (.npy, CSV) through BatchPredict into an output file
  bench     measure throughput and latency under closed- or open-loop load

Run 'microbatch COMMAND --help' for a command's flags.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "predict") return microbatch::PredictCommand(argc - 2, argv + 2);
  if (command == "models") return microbatch::ModelsCommand(argc - 2, argv + 2);
  if (command == "batch") return microbatch::BatchCommand(argc - 2, argv + 2);
  if (command == "bench") return microbatch::BenchCommand(argc - 2, argv + 2);
  std::cerr << "microbatch: unknown command '" << command << "'\n" << kUsage;
  return 2;
}
