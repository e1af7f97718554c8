// A loopback InferenceServer for the KServe v2 tests: the demo models plus
// an identity model per datatype (id_fp32, id_int8, ...), "mixed" (batches
// of 2 closed after up to 5 s, to show v1 and v2 requests sharing a batch)
// and "slow" (batches held 1 s, to keep infer calls in flight).
#ifndef MICROBATCH_TESTS_V2_V2_SERVER_H_
#define MICROBATCH_TESTS_V2_V2_SERVER_H_

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "gtest/gtest.h"
#include "server/backend/demo_models.h"
#include "server/service/server.h"
#include "tests/server/loopback_server.h"
#include "tests/server/test_util.h"

namespace microbatch::testing {

inline const std::vector<std::string>& V2Datatypes() {
  static const auto* kTypes = new std::vector<std::string>{
      "FP32", "FP64", "FP16", "BF16", "INT64", "INT32", "INT16", "INT8", "UINT8", "BOOL"};
  return *kTypes;
}

inline void WriteIdentityModel(const std::string& root, const std::string& name,
                               const std::string& dtype, const std::string& batching,
                               const std::string& output_extra = "") {
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(root) / name / "1");
  fs::copy_file(fs::path(root) / "identity" / "1" / "model.pt", fs::path(root) / name / "1" / "model.pt",
                fs::copy_options::overwrite_existing);
  std::ofstream(fs::path(root) / name / "config.pbtxt")
      << "input { name: \"x\" dtype: " << dtype << " dims: [-1] forward_arg: 0 }\n"
      << "output { name: \"y\" dtype: " << dtype << " dims: [-1] " << output_extra << "}\n"
      << "instance_count: 1\nintra_op_threads: 1\n"
      << batching;
}

class V2Server {
 public:
  V2Server(const std::string& name, int http_threads) : dir_(name) {
    DemoModelOptions models;
    models.models = {"mlp", "pair", "identity"};
    EXPECT_TRUE(WriteModelRepository(dir_.path(), models).ok());
    for (const std::string& dtype : V2Datatypes()) {
      WriteIdentityModel(dir_.path(), "id_" + absl::AsciiStrToLower(dtype), dtype,
                         "max_batch_size: 128\n");
    }
    WriteIdentityModel(dir_.path(), "mixed", "FP32",
                       "max_batch_size: 2\nmax_queue_delay_microseconds: 5000000\n");
    // Classification: element i of a row is labelled by line i (3 lines).
    WriteIdentityModel(dir_.path(), "labelled", "FP32", "max_batch_size: 8\n",
                       "label_filename: \"labels.txt\" ");
    std::ofstream(std::filesystem::path(dir_.path()) / "labelled" / "labels.txt") << "cat\ndog\r\nbird\n";
    WriteIdentityModel(dir_.path(), "slow", "FP32",
                       "max_batch_size: 64\nmax_queue_delay_microseconds: 1000000\n");
    ServerOptions options = LoopbackOptions(dir_.path());
    options.http_threads = http_threads;
    options.http_max_body_bytes = 1 << 20;
    server_ = std::make_unique<InferenceServer>(options);
    absl::Status status = server_->StartListening();
    EXPECT_TRUE(status.ok()) << status;
    status = server_->LoadModels();
    EXPECT_TRUE(status.ok()) << status;
  }
  ~V2Server() { server_->Shutdown(absl::Seconds(5)); }

  InferenceServer& server() { return *server_; }
  int grpc_port() const { return server_->grpc_port(); }
  int http_port() const { return server_->metrics_port(); }

 private:
  TempDir dir_;
  std::unique_ptr<InferenceServer> server_;
};

}  // namespace microbatch::testing

#endif  // MICROBATCH_TESTS_V2_V2_SERVER_H_
