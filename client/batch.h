// `microbatch batch`: streams a dataset file through BatchPredict and writes
// the results in input order, in constant memory, resumable, optionally split
// across several targets or streams and into shards.
#ifndef MICROBATCH_CLIENT_BATCH_H_
#define MICROBATCH_CLIENT_BATCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "client/channel.h"

namespace microbatch {

// The options of `microbatch batch`; defaults are the flags' defaults.
struct BatchOptions {
  // Server addresses; several split the job across replicas chunk by chunk.
  std::vector<std::string> targets = {"localhost:8500"};
  TlsOptions tls;
  int64_t streams = 0;  // streams to open; 0: one per target
  std::string model;    // required
  int64_t version = 0;  // 0: latest served
  // data.npy, data.csv, or name=file.npy per model input (required).
  std::vector<std::string> inputs;
  // out.npy or out.csv (several outputs: out.<name>.npy each); missing parent
  // directories are created (required).
  std::string output;
  std::vector<std::string> outputs;  // outputs to write; empty: all
  int64_t chunk_rows = 1024;         // rows per chunk sent; >= 1
  int64_t window = 4;                // chunks in flight per stream; >= 1
  bool resume = false;               // continue after the rows already in `output`
  int64_t shard_index = 0;           // process only shard shard_index of shard_count
  int64_t shard_count = 1;           // equal row ranges; shard_index < shard_count
  std::string job_id;                // sent to the server (logged)
  // Seconds between progress lines when stderr is not a terminal (a terminal
  // gets a live line). Default 5.
  double progress_seconds = 5;
};

// Runs the job; progress and errors go to stderr. Returns the exit code: 0,
// or 1 after printing the error (unreachable server, malformed input, a chunk
// the server refused, an unwritable output, ...).
int RunBatch(const BatchOptions& options);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_BATCH_H_
