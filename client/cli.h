// The command line of `microbatch`, the client of microbatch-server: CLI11
// subcommands predict, models, model (load, unload, label, split, shadow),
// batch and bench, their options (each with its default in --help),
// validation, and the exit codes.
#ifndef MICROBATCH_CLIENT_CLI_H_
#define MICROBATCH_CLIENT_CLI_H_

#include <string>

#include "client/batch.h"
#include "client/bench.h"
#include "client/models.h"
#include "client/predict.h"

namespace microbatch {

// Process exit codes of `microbatch`.
constexpr int kExitOk = 0;       // success, and --help
constexpr int kExitFailure = 1;  // the command ran and failed (RPC error, bad file, ...)
constexpr int kExitUsage = 2;    // usage error: no or unknown subcommand, unknown option,
                                 // missing required option, bad value

enum class Command { kNone, kPredict, kModels, kModel, kBatch, kBench };

// The parsed options of the chosen subcommand (the others keep defaults).
struct CliOptions {
  Command command = Command::kNone;
  PredictOptions predict;
  ModelsOptions models;
  ModelCommandOptions model;  // `model ACTION`: the action and its arguments
  BatchOptions batch;
  bench::BenchOptions bench;
};

struct CliParseResult {
  // True: run `options.command`. False: print `help` on stdout and `error` on
  // stderr, then exit with `exit_code` (kExitOk for --help, kExitUsage for a
  // usage error).
  bool run = false;
  int exit_code = kExitOk;
  std::string help;
  std::string error;  // names the option at fault, e.g. "--model is required"
  CliOptions options;
};

// Parses argv (argv[0]: the program name). Never exits or prints.
CliParseResult ParseCommandLine(int argc, const char* const* argv);

// Parses argv and runs the subcommand: the process exit code.
int RunCommandLine(int argc, const char* const* argv);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_CLI_H_
