// A stand-in for microbatch-server's three front ends, for the client's
// tests: microbatch.v1.Inference and inference.GRPCInferenceService on one
// in-process gRPC server, and the Open Inference Protocol's REST endpoints on
// a small thread-per-connection HTTP/1.1 server (keep-alive, Content-Length
// bodies), both on 127.0.0.1 with free ports.
//
// It serves one model, "m", version 1, whose outputs echo its inputs: input
// NAME comes back as output NAME_out, same datatype, shape and bytes. The
// inputs it declares are `inputs` (for JSON --input and bench payloads).
// Written independently of client/open_inference.*: its own byte <-> typed
// contents and JSON conversions, so that the client's are checked against
// something else than themselves.
#ifndef MICROBATCH_TESTS_CLIENT_FAKE_FRONT_ENDS_H_
#define MICROBATCH_TESTS_CLIENT_FAKE_FRONT_ENDS_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "microbatch/v1/inference.grpc.pb.h"

namespace microbatch::testing {

struct FakeInput {
  std::string name;
  std::string datatype;  // "FP32", ...
  std::vector<int64_t> shape;
};

// What the fake answers; set before Start, read-only after.
struct FakeBehavior {
  std::vector<FakeInput> inputs = {{"x", "FP32", {-1, 4}}};
  bool v2_typed = false;     // v2 ModelInfer answers in typed contents instead of raw_output_contents
  int rest_status = 200;     // non-200: every REST infer answers {"error": rest_error} with it
  std::string rest_error = "the fake refuses";
  bool v2_unimplemented = false;  // GRPCInferenceService absent, as on a server without v2
};

inline int FakeElementSize(const std::string& datatype) {
  if (datatype == "FP64" || datatype == "INT64") return 8;
  if (datatype == "FP32" || datatype == "INT32") return 4;
  if (datatype == "FP16" || datatype == "BF16" || datatype == "INT16") return 2;
  return 1;  // INT8, UINT8, BOOL
}

template <typename T>
T FakeLoad(const std::string& bytes, size_t i) {
  T v;
  std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
  return v;
}

// Raw bytes -> typed contents, as a v2 server that does not send raw would.
inline void FakeToContents(const std::string& datatype, const std::string& bytes,
                           inference::InferTensorContents* contents) {
  const size_t n = bytes.size() / FakeElementSize(datatype);
  for (size_t i = 0; i < n; ++i) {
    if (datatype == "FP32") contents->add_fp32_contents(FakeLoad<float>(bytes, i));
    if (datatype == "FP64") contents->add_fp64_contents(FakeLoad<double>(bytes, i));
    if (datatype == "INT64") contents->add_int64_contents(FakeLoad<int64_t>(bytes, i));
    if (datatype == "INT32") contents->add_int_contents(FakeLoad<int32_t>(bytes, i));
    if (datatype == "INT16") contents->add_int_contents(FakeLoad<int16_t>(bytes, i));
    if (datatype == "INT8") contents->add_int_contents(FakeLoad<int8_t>(bytes, i));
    if (datatype == "UINT8") contents->add_uint_contents(FakeLoad<uint8_t>(bytes, i));
    if (datatype == "BOOL") contents->add_bool_contents(FakeLoad<uint8_t>(bytes, i) != 0);
  }
}

class FakeV1Service final : public v1::Inference::Service {
 public:
  explicit FakeV1Service(const FakeBehavior* behavior) : behavior_(behavior) {}

  grpc::Status GetModelMetadata(grpc::ServerContext*, const v1::GetModelMetadataRequest* request,
                                v1::ModelMetadata* response) override {
    if (request->model() != "m") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model " + request->model());
    response->set_name("m");
    response->set_version(1);
    response->add_versions(1);
    for (const FakeInput& in : behavior_->inputs) {
      v1::TensorMetadata* t = response->add_inputs();
      t->set_name(in.name);
      v1::DataType dtype = v1::DATA_TYPE_UNSPECIFIED;
      v1::DataType_Parse(in.datatype, &dtype);
      t->set_dtype(dtype);
      for (int64_t d : in.shape) t->add_shape(d);
    }
    return grpc::Status::OK;
  }

  grpc::Status Predict(grpc::ServerContext*, const v1::PredictRequest* request,
                       v1::PredictResponse* response) override {
    if (request->model() != "m") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model " + request->model());
    response->set_model("m");
    response->set_version(1);
    response->set_request_id(request->request_id());
    for (const v1::Tensor& in : request->inputs()) {
      v1::Tensor* out = response->add_outputs();
      *out = in;
      out->set_name(in.name() + "_out");
    }
    return grpc::Status::OK;
  }

 private:
  const FakeBehavior* behavior_;
};

class FakeV2Service final : public inference::GRPCInferenceService::Service {
 public:
  explicit FakeV2Service(const FakeBehavior* behavior) : behavior_(behavior) {}

  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* request,
                             inference::ModelMetadataResponse* response) override {
    if (request->name() != "m") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model " + request->name());
    response->set_name("m");
    response->add_versions("1");
    response->set_platform("fake");
    for (const FakeInput& in : behavior_->inputs) {
      auto* t = response->add_inputs();
      t->set_name(in.name);
      t->set_datatype(in.datatype);
      for (int64_t d : in.shape) t->add_shape(d);
    }
    return grpc::Status::OK;
  }

  grpc::Status ModelInfer(grpc::ServerContext*, const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_request_ = *request;
    }
    if (request->model_name() != "m") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model " + request->model_name());
    }
    if (request->raw_input_contents_size() != request->inputs_size()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "expected raw_input_contents");
    }
    response->set_model_name("m");
    response->set_model_version("1");
    response->set_id(request->id());
    for (int i = 0; i < request->inputs_size(); ++i) {
      const auto& in = request->inputs(i);
      auto* out = response->add_outputs();
      out->set_name(in.name() + "_out");
      out->set_datatype(in.datatype());
      *out->mutable_shape() = in.shape();
      if (behavior_->v2_typed) {
        FakeToContents(in.datatype(), request->raw_input_contents(i), out->mutable_contents());
      } else {
        response->add_raw_output_contents(request->raw_input_contents(i));
      }
    }
    return grpc::Status::OK;
  }

  inference::ModelInferRequest last_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_request_;
  }

 private:
  const FakeBehavior* behavior_;
  std::mutex mu_;
  inference::ModelInferRequest last_request_;
};

// REST: GET /v2/models/m[/versions/1] and POST .../infer; anything else 404.
class FakeRestServer {
 public:
  explicit FakeRestServer(const FakeBehavior* behavior) : behavior_(behavior) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listen_fd_, 128);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { Accept(); });
  }

  ~FakeRestServer() {
    stop_ = true;
    accept_thread_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : connection_threads_) t.join();
    close(listen_fd_);
  }

  int port() const { return port_; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  std::string last_path() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_path_;
  }
  std::string last_body() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_body_;
  }

 private:
  static bool Readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, 50) > 0;
  }

  void Accept() {
    while (!stop_) {
      if (!Readable(listen_fd_)) continue;
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      ++connections_;
      std::lock_guard<std::mutex> lock(mu_);
      connection_threads_.emplace_back([this, fd] {
        Serve(fd);
        close(fd);
      });
    }
  }

  void Serve(int fd) {
    std::string buffer;
    while (!stop_) {
      size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (stop_) return;
        if (!Readable(fd)) continue;
        char chunk[65536];
        const ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      const std::string head = buffer.substr(0, header_end);
      size_t length = 0;
      for (const char* name : {"Content-Length: ", "content-length: "}) {
        if (size_t at = head.find(name); at != std::string::npos) {
          absl::SimpleAtoi(head.substr(at + strlen(name), head.find("\r\n", at) - at - strlen(name)), &length);
        }
      }
      while (buffer.size() < header_end + 4 + length) {
        if (stop_) return;
        if (!Readable(fd)) continue;
        char chunk[65536];
        const ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      const std::string body = buffer.substr(header_end + 4, length);
      buffer.erase(0, header_end + 4 + length);
      const std::string method = head.substr(0, head.find(' '));
      const size_t path_start = head.find(' ') + 1;
      const std::string path = head.substr(path_start, head.find(' ', path_start) - path_start);
      ++requests_;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_path_ = path;
        last_body_ = body;
      }
      auto [status, answer] = Respond(method, path, body);
      const std::string response =
          absl::StrCat("HTTP/1.1 ", status, status == 200 ? " OK" : " Error",
                       "\r\nContent-Type: application/json\r\nContent-Length: ", answer.size(), "\r\n\r\n", answer);
      if (write(fd, response.data(), response.size()) != static_cast<ssize_t>(response.size())) return;
    }
  }

  static nlohmann::json Error(const std::string& message) { return {{"error", message}}; }

  std::pair<int, std::string> Respond(const std::string& method, const std::string& path, const std::string& body) {
    const bool infer = absl::EndsWith(path, "/infer");
    const std::string model_path = infer ? path.substr(0, path.size() - 6) : path;
    if (model_path != "/v2/models/m" && model_path != "/v2/models/m/versions/1") {
      return {404, Error("unknown path " + path).dump()};
    }
    if (!infer && method == "GET") {
      nlohmann::json inputs = nlohmann::json::array();
      for (const FakeInput& in : behavior_->inputs) {
        inputs.push_back({{"name", in.name}, {"datatype", in.datatype}, {"shape", in.shape}});
      }
      return {200, nlohmann::json{{"name", "m"}, {"versions", {"1"}}, {"platform", "fake"}, {"inputs", inputs},
                                  {"outputs", nlohmann::json::array()}}
                       .dump()};
    }
    if (!infer || method != "POST") return {405, Error("method not allowed").dump()};
    if (behavior_->rest_status != 200) return {behavior_->rest_status, Error(behavior_->rest_error).dump()};
    nlohmann::json request = nlohmann::json::parse(body, nullptr, false);
    if (request.is_discarded() || !request.contains("inputs")) return {400, Error("bad JSON").dump()};
    nlohmann::json response = {{"model_name", "m"}, {"model_version", "1"}, {"outputs", nlohmann::json::array()}};
    if (request.contains("id")) response["id"] = request["id"];
    for (const auto& in : request["inputs"]) {
      response["outputs"].push_back({{"name", in["name"].get<std::string>() + "_out"},
                                     {"datatype", in["datatype"]},
                                     {"shape", in["shape"]},
                                     {"data", in["data"]}});
    }
    return {200, response.dump()};
  }

  const FakeBehavior* behavior_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::thread> connection_threads_;
  std::string last_path_, last_body_;
};

// The three front ends; `behavior` is copied and fixed for their lifetime.
class FakeFrontEnds {
 public:
  explicit FakeFrontEnds(FakeBehavior behavior = FakeBehavior())
      : behavior_(std::move(behavior)), v1_(&behavior_), v2_(&behavior_), rest_(&behavior_) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &grpc_port_);
    builder.RegisterService(&v1_);
    if (!behavior_.v2_unimplemented) builder.RegisterService(&v2_);
    server_ = builder.BuildAndStart();
  }
  ~FakeFrontEnds() { server_->Shutdown(std::chrono::system_clock::now()); }

  std::string grpc_target() const { return absl::StrCat("127.0.0.1:", grpc_port_); }
  std::string http_address() const { return absl::StrCat("127.0.0.1:", rest_.port()); }
  FakeV2Service& v2() { return v2_; }
  FakeRestServer& rest() { return rest_; }

 private:
  const FakeBehavior behavior_;
  FakeV1Service v1_;
  FakeV2Service v2_;
  FakeRestServer rest_;
  int grpc_port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace microbatch::testing

#endif  // MICROBATCH_TESTS_CLIENT_FAKE_FRONT_ENDS_H_
