// The microbatch CLI's subcommands. Each parses its own flags from argv
// (after the subcommand name) and returns the process exit code.
#ifndef MICROBATCH_CLIENT_COMMANDS_H_
#define MICROBATCH_CLIENT_COMMANDS_H_

namespace microbatch {

int PredictCommand(int argc, char** argv);
int ModelsCommand(int argc, char** argv);
int BatchCommand(int argc, char** argv);
int BenchCommand(int argc, char** argv);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_COMMANDS_H_
