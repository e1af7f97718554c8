// microbatch: the command-line client of microbatch-server (see client/cli.h).
#include "client/cli.h"

int main(int argc, char** argv) { return microbatch::RunCommandLine(argc, argv); }
