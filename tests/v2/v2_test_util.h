// Shared by the KServe v2 tests: a loopback server with models of every
// datatype, a v2 gRPC stub and a small libcurl HTTP client.
#ifndef MICROBATCH_TESTS_V2_V2_TEST_UTIL_H_
#define MICROBATCH_TESTS_V2_V2_TEST_UTIL_H_

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "inference/grpc_predict_v2.grpc.pb.h"

namespace microbatch::testing {

struct HttpResult {
  long status = 0;  // 0: no answer
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
};

// One blocking HTTP request to 127.0.0.1:port.
inline HttpResult Http(int port, const std::string& method, const std::string& path,
                       const std::string& body = "",
                       const std::vector<std::string>& headers = {}) {
  HttpResult result;
  CURL* curl = curl_easy_init();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  if (method == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  if (method == "POST" || !body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_slist* list = nullptr;
  list = curl_slist_append(list, "Expect:");
  for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION,
                   +[](char* data, size_t size, size_t n, void* out) {
                     static_cast<std::string*>(out)->append(data, size * n);
                     return size * n;
                   });
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION,
                   +[](char* data, size_t size, size_t n, void* out) {
                     std::string line(data, size * n);
                     const size_t colon = line.find(':');
                     if (colon != std::string::npos) {
                       std::string name = line.substr(0, colon);
                       for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                       std::string value = line.substr(colon + 1);
                       while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
                       while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
                       (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
                     }
                     return size * n;
                   });
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result.headers);
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return result;
}

inline std::unique_ptr<inference::GRPCInferenceService::Stub> V2Stub(int port) {
  return inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

}  // namespace microbatch::testing

#endif  // MICROBATCH_TESTS_V2_V2_TEST_UTIL_H_
