// Helpers shared by the tests that talk to a real server over gRPC.
#ifndef MICROBATCH_TESTS_SERVER_TEST_UTIL_H_
#define MICROBATCH_TESTS_SERVER_TEST_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "microbatch/v1/inference.grpc.pb.h"

namespace microbatch::testing {

// A fresh directory under the test temp dir, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    const char* base = std::getenv("TEST_TMPDIR");
    path_ = std::filesystem::path(base ? base : std::filesystem::temp_directory_path().string()) /
            (name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline v1::Tensor Fp32Tensor(const std::string& name, std::vector<int64_t> shape,
                             const std::vector<float>& values) {
  v1::Tensor tensor;
  tensor.set_name(name);
  tensor.set_dtype(v1::FP32);
  for (int64_t d : shape) tensor.add_shape(d);
  tensor.set_data(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return tensor;
}

inline std::vector<float> Floats(const v1::Tensor& tensor) {
  std::vector<float> values(tensor.data().size() / sizeof(float));
  std::memcpy(values.data(), tensor.data().data(), values.size() * sizeof(float));
  return values;
}

inline std::unique_ptr<v1::Inference::Stub> InferenceStub(int port) {
  return v1::Inference::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                    grpc::InsecureChannelCredentials()));
}

}  // namespace microbatch::testing

#endif  // MICROBATCH_TESTS_SERVER_TEST_UTIL_H_
