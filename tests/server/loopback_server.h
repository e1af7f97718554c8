// An in-process InferenceServer on loopback with free ports, for tests.
#ifndef MICROBATCH_TESTS_SERVER_LOOPBACK_SERVER_H_
#define MICROBATCH_TESTS_SERVER_LOOPBACK_SERVER_H_

#include <string>

#include "server/service/server.h"

namespace microbatch::testing {

// Options for a server on 127.0.0.1 with free gRPC and metrics ports, serving
// `repository`.
inline ServerOptions LoopbackOptions(const std::string& repository) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.metrics_port = 0;
  options.model_repository = repository;
  return options;
}

}  // namespace microbatch::testing

#endif  // MICROBATCH_TESTS_SERVER_LOOPBACK_SERVER_H_
