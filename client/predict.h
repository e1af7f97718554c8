// `microbatch predict` (one Predict request, outputs printed as JSON) and
// `microbatch models` (the served models' metadata as JSON).
#ifndef MICROBATCH_CLIENT_PREDICT_H_
#define MICROBATCH_CLIENT_PREDICT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "client/channel.h"

namespace microbatch {

// Where the unary commands send their RPCs; defaults are the flags' defaults.
struct ConnectionOptions {
  std::string target = "localhost:8500";  // host:port or a gRPC target URI
  TlsOptions tls;
  int64_t timeout_ms = 30000;  // deadline of each RPC; 0: none
};

struct PredictOptions {
  ConnectionOptions connection;
  std::string model;  // required
  int64_t version = 0;  // 0: latest served
  // name=FILE.npy or name=JSON; a JSON value one dimension short of the
  // model's rank is one row. JSON takes its dtype from the model's metadata.
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;  // outputs to return; empty: all
  std::string request_id;            // echoed back by the server
};

struct ModelsOptions {
  ConnectionOptions connection;
};

// Each prints its JSON on stdout and returns the exit code: 0, or 1 after
// printing the error on stderr (RPC status, bad input, unreadable file).
int RunPredict(const PredictOptions& options);
int RunModels(const ModelsOptions& options);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_PREDICT_H_
