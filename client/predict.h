// `microbatch predict`: one inference over microbatch.v1 Predict, v2 gRPC
// ModelInfer or v2 REST, outputs printed as the same JSON for each
// (`microbatch models` is in client/models.h).
#ifndef MICROBATCH_CLIENT_PREDICT_H_
#define MICROBATCH_CLIENT_PREDICT_H_

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/channel.h"
#include "client/open_inference.h"

namespace microbatch {

// Where the unary commands send their RPCs; defaults are the flags' defaults.
struct ConnectionOptions {
  std::string target = "localhost:8500";  // host:port or a gRPC target URI
  TlsOptions tls;
  int64_t timeout_ms = 30000;  // deadline of each RPC; 0: none
};

struct PredictOptions {
  ConnectionOptions connection;  // v1 and v2 (gRPC); rest takes its TLS and timeout
  Protocol protocol = Protocol::kV1;
  std::string http = "localhost:8502";  // rest: [http[s]://]host:port[/prefix]
  std::string model;  // required
  int64_t version = 0;  // 0: latest served (v2 and rest: the default version)
  // v2 and rest: a version label sent instead of `version`; empty: none.
  std::string version_label;
  // name=FILE.npy or name=JSON; a JSON value one dimension short of the
  // model's rank is one row. JSON takes its dtype from the model's metadata.
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;  // outputs to return; empty: all
  std::string request_id;            // echoed back by the server
  // v2 and rest: each --output as its N highest classes (Triton's
  // classification extension; needs `outputs`); 0: values.
  int64_t classification = 0;
};

// The JSON that `predict` prints, whatever the protocol:
//   {"protocol":"v2","model":"m","version":1,"request_id":"r",
//    "latency_ms":0.4,"outputs":{"y":{"dtype":"FP32","shape":[1,2],
//    "data":[[1.5,2.0]]}}}
// A BYTES output (e.g. classified) has "dtype":"BYTES" and strings in
// "data". "version" is a number when the server's version is numeric, else the
// string; "request_id" only when the server echoed one. Floats are written
// so that they parse back to the same bits.
nlohmann::json PredictResultJson(Protocol protocol, const InferResult& result, absl::Duration latency);

// Prints the JSON on stdout and returns the exit code: 0, or 1 after printing
// the error on stderr (RPC status, bad input, unreadable file).
int RunPredict(const PredictOptions& options);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_PREDICT_H_
