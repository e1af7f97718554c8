// TLS and mTLS on the gRPC port and HTTPS on the metrics port, with
// certificates made by OpenSSL at test time.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/demo_models.h"
#include "server/http/http_server.h"
#include "server/service/server.h"
#include "tests/server/loopback_server.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::Fp32Tensor;
using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A CA, a server certificate for localhost/127.0.0.1, a client certificate,
// and a second CA with a client certificate and a server certificate (its
// renewal from another CA) of its own.
class Pki {
 public:
  explicit Pki(const std::string& dir) : dir_(dir) {
    std::ofstream(dir + "/server.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    std::ofstream(dir + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    ok_ = MakeCa("ca") && MakeCa("wrong_ca") && MakeCert("server", "ca", "server.ext") &&
          MakeCert("client", "ca", "client.ext") && MakeCert("intruder", "wrong_ca", "client.ext") &&
          MakeCert("renewed_server", "wrong_ca", "server.ext");
  }
  bool ok() const { return ok_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string pem(const std::string& name) const { return Read(path(name)); }

 private:
  bool Run(const std::string& command) {
    return std::system(("cd " + dir_ + " && " + command + " >/dev/null 2>&1").c_str()) == 0;
  }
  bool MakeCa(const std::string& name) {
    return Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
               name + ".key -out " + name + ".crt -days 2 -subj /CN=" + name);
  }
  bool MakeCert(const std::string& name, const std::string& ca, const std::string& ext) {
    return Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
               name + ".key -out " + name + ".csr -subj /CN=" + name) &&
           Run("openssl x509 -req -in " + name + ".csr -CA " + ca + ".crt -CAkey " + ca +
               ".key -CAcreateserial -out " + name + ".crt -days 2 -extfile " + ext);
  }
  std::string dir_;
  bool ok_ = false;
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki_.ok()) << "openssl could not make the test certificates";
    DemoModelOptions models;
    models.models = {"mlp"};
    ASSERT_TRUE(WriteModelRepository(dir_.path() + "/models", models).ok());
  }

  // Starts a server with TLS; mTLS when `client_ca`.
  void Start(bool client_ca, bool metrics_tls = false,
             absl::Duration reload = ServerOptions().tls_reload_interval) {
    ServerOptions options = ::microbatch::testing::LoopbackOptions(dir_.path() + "/models");
    options.tls_cert_file = pki_.path("server.crt");
    options.tls_key_file = pki_.path("server.key");
    if (client_ca) options.tls_client_ca_file = pki_.path("ca.crt");
    options.metrics_tls = metrics_tls;
    options.tls_reload_interval = reload;
    server_ = std::make_unique<InferenceServer>(options);
    const absl::Status started = server_->StartListening();
    ASSERT_TRUE(started.ok()) << started;
    ASSERT_TRUE(server_->LoadModels().ok());
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(5));
  }

  // One Predict over a fresh channel with `credentials`.
  grpc::Status Predict(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto channel = grpc::CreateChannel("localhost:" + std::to_string(server_->grpc_port()),
                                       credentials);
    auto stub = v1::Inference::NewStub(channel);
    v1::PredictRequest request;
    request.set_model("mlp");
    *request.add_inputs() = Fp32Tensor("x", {1, 16}, std::vector<float>(16, 0.5f));
    v1::PredictResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status status = stub->Predict(&context, request, &response);
    if (status.ok() && response.outputs_size() != 2) return grpc::Status(grpc::INTERNAL, "outputs");
    return status;
  }

  std::shared_ptr<grpc::ChannelCredentials> Tls(const std::string& ca,
                                                const std::string& client = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pki_.pem(ca + ".crt");
    if (!client.empty()) {
      ssl.pem_private_key = pki_.pem(client + ".key");
      ssl.pem_cert_chain = pki_.pem(client + ".crt");
    }
    return grpc::SslCredentials(ssl);
  }

  TempDir dir_{"tls_test"};
  Pki pki_{dir_.path()};
  std::unique_ptr<InferenceServer> server_;
};

TEST_F(TlsTest, TlsServesVerifiedClientsAndRefusesPlaintextAndWrongCa) {
  Start(/*client_ca=*/false);
  EXPECT_TRUE(Predict(Tls("ca")).ok());
  EXPECT_EQ(Predict(grpc::InsecureChannelCredentials()).error_code(), grpc::UNAVAILABLE);
  // The client does not trust the server's certificate.
  EXPECT_EQ(Predict(Tls("wrong_ca")).error_code(), grpc::UNAVAILABLE);
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificateFromTheCa) {
  Start(/*client_ca=*/true);
  EXPECT_TRUE(Predict(Tls("ca", "client")).ok());
  EXPECT_NE(Predict(Tls("ca")).error_code(), grpc::OK);              // no client certificate
  EXPECT_NE(Predict(Tls("ca", "intruder")).error_code(), grpc::OK);  // signed by another CA
  EXPECT_EQ(Predict(grpc::InsecureChannelCredentials()).error_code(), grpc::UNAVAILABLE);
}

TEST_F(TlsTest, ARenewedCertificateIsServedWithoutARestart) {
  Start(/*client_ca=*/false, /*metrics_tls=*/false, /*reload=*/absl::Seconds(1));
  ASSERT_TRUE(Predict(Tls("ca")).ok());
  // The renewal lands as a Secret update does: each file replaced whole.
  for (const std::string ext : {".key", ".crt"}) {
    std::ofstream(pki_.path("next" + ext)) << pki_.pem("renewed_server" + ext);
    ASSERT_EQ(std::rename(pki_.path("next" + ext).c_str(), pki_.path("server" + ext).c_str()), 0);
  }
  bool renewed = false;
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  while (!renewed && absl::Now() < give_up) {
    renewed = Predict(Tls("wrong_ca")).ok();
    if (!renewed) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(renewed) << "new connections still get the old certificate";
  EXPECT_EQ(Predict(Tls("ca")).error_code(), grpc::UNAVAILABLE);
}

TEST_F(TlsTest, WithoutReloadTheStartingCertificateStays) {
  Start(/*client_ca=*/false, /*metrics_tls=*/false, /*reload=*/absl::ZeroDuration());
  std::ofstream(pki_.path("server.crt")) << pki_.pem("renewed_server.crt");
  std::ofstream(pki_.path("server.key")) << pki_.pem("renewed_server.key");
  absl::SleepFor(absl::Seconds(2));
  EXPECT_TRUE(Predict(Tls("ca")).ok());
}

// curl's output (stdout and stderr) for `args`.
std::string Curl(const std::string& args) {
  std::string out;
  FILE* pipe = popen(("curl -sS --max-time 5 " + args + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while (pipe != nullptr && (n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  if (pipe != nullptr) pclose(pipe);
  return out;
}

TEST_F(TlsTest, MetricsPortServesHttps) {
  Start(/*client_ca=*/false, /*metrics_tls=*/true);
  const std::string url = "https://localhost:" + std::to_string(server_->metrics_port());
  auto curl = Curl;
  EXPECT_EQ(curl("--cacert " + pki_.path("ca.crt") + " " + url + "/readyz"), "ready");
  EXPECT_THAT(curl("--cacert " + pki_.path("ca.crt") + " " + url + "/metrics"),
              HasSubstr("microbatch_build_info"));
  // Plain HTTP on the TLS port gets no metrics.
  EXPECT_THAT(curl("http://localhost:" + std::to_string(server_->metrics_port()) + "/readyz"),
              ::testing::Not(::testing::Eq("ready")));
}

// Regression: the HTTPS metrics port read its certificate once, so a
// renewal (cert-manager, an updated Secret) needed a restart there, and an
// expired certificate broke scrapes and probes until one.
TEST_F(TlsTest, ARenewedCertificateIsServedOnTheMetricsPortWithoutARestart) {
  Start(/*client_ca=*/false, /*metrics_tls=*/true, /*reload=*/absl::Seconds(1));
  const std::string url = "https://localhost:" + std::to_string(server_->metrics_port()) + "/readyz";
  ASSERT_EQ(Curl("--cacert " + pki_.path("ca.crt") + " " + url), "ready");
  // Half a renewal first (the new certificate, the old key): not taken.
  std::ofstream(pki_.path("next.crt")) << pki_.pem("renewed_server.crt");
  ASSERT_EQ(std::rename(pki_.path("next.crt").c_str(), pki_.path("server.crt").c_str()), 0);
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(Curl("--cacert " + pki_.path("ca.crt") + " " + url), "ready");
  // Then the key: the renewed pair is served to new connections.
  std::ofstream(pki_.path("next.key")) << pki_.pem("renewed_server.key");
  ASSERT_EQ(std::rename(pki_.path("next.key").c_str(), pki_.path("server.key").c_str()), 0);
  bool renewed = false;
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  while (!renewed && absl::Now() < give_up) {
    renewed = Curl("--cacert " + pki_.path("wrong_ca.crt") + " " + url) == "ready";
    if (!renewed) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(renewed) << "new connections still get the old certificate";
  EXPECT_NE(Curl("--cacert " + pki_.path("ca.crt") + " " + url), "ready");
}

TEST_F(TlsTest, HttpServerTakesOnlyAMatchingPemPair) {
  HttpServer plain;
  HttpServerOptions options;
  options.host = "127.0.0.1";
  ASSERT_TRUE(plain.Start(options).ok());
  EXPECT_EQ(plain.SetTlsCertificate(pki_.pem("server.key"), pki_.pem("server.crt")).code(),
            absl::StatusCode::kFailedPrecondition);

  HttpServer https;
  ASSERT_TRUE(https.AddHealthHandlers([] { return std::make_pair(true, std::string()); }).ok());
  options.tls_key_pem = pki_.pem("server.key");
  options.tls_cert_pem = pki_.pem("server.crt");
  ASSERT_TRUE(https.Start(options).ok());
  const std::string url = "https://localhost:" + std::to_string(https.port()) + "/readyz";
  EXPECT_EQ(Curl("--cacert " + pki_.path("ca.crt") + " " + url), "ready");
  absl::Status mismatched = https.SetTlsCertificate(pki_.pem("server.key"), pki_.pem("renewed_server.crt"));
  EXPECT_EQ(mismatched.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(mismatched.message()), HasSubstr("not a usable pair"));
  EXPECT_EQ(https.SetTlsCertificate("not a key", "not a certificate").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Curl("--cacert " + pki_.path("ca.crt") + " " + url), "ready");  // the old pair stays
  ASSERT_TRUE(https.SetTlsCertificate(pki_.pem("renewed_server.key"), pki_.pem("renewed_server.crt")).ok());
  EXPECT_EQ(Curl("--cacert " + pki_.path("wrong_ca.crt") + " " + url), "ready");
  HttpServer bad;
  options.tls_cert_pem = pki_.pem("renewed_server.crt");  // not the key's certificate
  EXPECT_EQ(bad.Start(options).code(), absl::StatusCode::kInvalidArgument);
}

TEST(TlsOptionsTest, FilesThatAreNotAMatchingPemPairFailToStartNamingTheFlag) {
  TempDir dir("tls_options_test");
  Pki pki(dir.path());
  ASSERT_TRUE(pki.ok());
  std::ofstream(pki.path("garbage.pem")) << "not a certificate\n";
  struct Case {
    std::string cert, key, ca, message;
  } cases[] = {
      {"garbage.pem", "server.key", "", "--tls_cert: no PEM certificate"},
      {"server.crt", "garbage.pem", "", "--tls_key: no unencrypted PEM private key"},
      {"server.crt", "client.key", "", "--tls_key does not match the certificate of --tls_cert"},
      {"server.crt", "server.key", "garbage.pem", "--tls_client_ca: no PEM certificate"},
  };
  for (const Case& c : cases) {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.metrics_port = -1;
    options.tls_cert_file = pki.path(c.cert);
    options.tls_key_file = pki.path(c.key);
    if (!c.ca.empty()) options.tls_client_ca_file = pki.path(c.ca);
    InferenceServer server(options);
    absl::Status status = server.StartListening();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
  }
}

TEST(TlsOptionsTest, HalfConfiguredTlsFailsToStart) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.metrics_port = -1;
  options.tls_cert_file = "/nonexistent/server.crt";
  InferenceServer server(options);
  absl::Status status = server.StartListening();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--tls_cert and --tls_key must be given together"));
}

}  // namespace
}  // namespace microbatch
