// ChannelFactory: plaintext vs TLS credentials, the options that reach gRPC,
// clear errors for bad files; and a real TLS / mutual-TLS handshake with an
// in-process gRPC server (certificates made with the openssl tool; skipped
// where it is missing).
#include "client/channel.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "client/models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microbatch/v1/inference.grpc.pb.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kFakeCert[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
constexpr char kFakeKey[] = "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n";

std::string Write(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The string value of channel argument `key`, or "" when absent.
std::string ChannelArg(const grpc::ChannelArguments& args, const std::string& key) {
  const grpc_channel_args c = args.c_channel_args();
  for (size_t i = 0; i < c.num_args; ++i) {
    if (key == c.args[i].key && c.args[i].type == GRPC_ARG_STRING) return c.args[i].value.string;
  }
  return "";
}

TEST(ChannelFactoryTest, PlaintextByDefault) {
  absl::StatusOr<ChannelFactory> factory = ChannelFactory::Create(TlsOptions());
  ASSERT_TRUE(factory.ok()) << factory.status();
  EXPECT_FALSE(factory->uses_tls());
  EXPECT_NE(factory->credentials(), nullptr);
  grpc::ChannelArguments args;
  factory->AddChannelArgs(&args);
  EXPECT_THAT(ChannelArg(args, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG), IsEmpty());
}

TEST(ChannelFactoryTest, TlsWithSystemRoots) {
  TlsOptions tls;
  tls.tls = true;
  absl::StatusOr<ChannelFactory> factory = ChannelFactory::Create(tls);
  ASSERT_TRUE(factory.ok()) << factory.status();
  EXPECT_TRUE(factory->uses_tls());
  EXPECT_THAT(factory->ssl_options().pem_root_certs, IsEmpty());  // gRPC's default roots
  EXPECT_THAT(factory->ssl_options().pem_cert_chain, IsEmpty());
}

TEST(ChannelFactoryTest, CaCertificateKeyAndServerNameReachGrpc) {
  TempDir dir("channel_tls_options");
  TlsOptions tls;
  tls.ca_file = Write(dir.path() + "/ca.pem", kFakeCert);
  tls.cert_file = Write(dir.path() + "/client.pem", kFakeCert);
  tls.key_file = Write(dir.path() + "/client.key", kFakeKey);
  tls.server_name = "localhost";
  absl::StatusOr<ChannelFactory> factory = ChannelFactory::Create(tls);
  ASSERT_TRUE(factory.ok()) << factory.status();
  EXPECT_TRUE(factory->uses_tls());  // --tls_ca implies TLS
  EXPECT_EQ(factory->ssl_options().pem_root_certs, kFakeCert);
  EXPECT_EQ(factory->ssl_options().pem_cert_chain, kFakeCert);
  EXPECT_EQ(factory->ssl_options().pem_private_key, kFakeKey);
  EXPECT_EQ(factory->server_name(), "localhost");
  grpc::ChannelArguments args;
  factory->AddChannelArgs(&args);
  EXPECT_EQ(ChannelArg(args, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG), "localhost");
}

TEST(ChannelFactoryTest, ClearErrors) {
  TempDir dir("channel_tls_errors");
  const std::string cert = Write(dir.path() + "/c.pem", kFakeCert);
  const std::string key = Write(dir.path() + "/k.pem", kFakeKey);
  const std::string text = Write(dir.path() + "/notes.txt", "not a certificate\n");
  struct Case {
    TlsOptions tls;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{false, "", cert, dir.path() + "/missing.key", ""}, "--tls_key " + dir.path() + "/missing.key: cannot read"},
      {{false, dir.path() + "/missing-ca.pem", "", "", ""}, "--tls_ca " + dir.path() + "/missing-ca.pem: cannot read"},
      {{false, text, "", "", ""}, "--tls_ca " + text + ": not a PEM file with a CERTIFICATE block"},
      {{false, "", cert, cert, ""}, "--tls_key " + cert + ": not a PEM file with a PRIVATE KEY block"},
      {{false, "", key, key, ""}, "--tls_cert " + key + ": not a PEM file with a CERTIFICATE block"},
      {{false, "", cert, "", ""}, "--tls_cert and --tls_key go together"},
      {{false, "", "", key, ""}, "--tls_cert and --tls_key go together"},
      {{false, "", "", "", "localhost"}, "--tls_server_name needs TLS"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ChannelFactory> factory = ChannelFactory::Create(c.tls);
    EXPECT_EQ(factory.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(factory.status().message(), HasSubstr(c.message));
  }
}

// ---------------------------------------------------------------------------
// A real handshake.

// ListModels answers one model named "tls-ok".
class FakeInference : public v1::Inference::Service {
  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse* response) override {
    response->add_models()->set_name("tls-ok");
    return grpc::Status::OK;
  }
};

// A CA, a server certificate for "localhost" and a client certificate, made
// with the openssl tool.
class TlsHandshakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("openssl version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl tool";
    const std::string d = dir_.path();
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "set -e; cd " + d + "; exec >openssl.log 2>&1;"
        "openssl req -x509 " + ec + " -keyout ca.key -out ca.pem -days 2 -subj /CN=microbatch-test-ca;"
        "openssl req " + ec + " -keyout server.key -out server.csr -subj /CN=localhost;"
        "printf 'subjectAltName=DNS:localhost\\n' >san.ext;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
        "-extfile san.ext;"
        "openssl req " + ec + " -keyout client.key -out client.csr -subj /CN=microbatch-test-client;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2";
    ASSERT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0) << ReadFile(d + "/openssl.log");
  }

  void StartServer(bool require_client_cert) {
    grpc::SslServerCredentialsOptions ssl(require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                              : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_key_cert_pairs.push_back({ReadFile(Path("server.key")), ReadFile(Path("server.pem"))});
    if (require_client_cert) ssl.pem_root_certs = ReadFile(Path("ca.pem"));
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }

  ModelsOptions Models(TlsOptions tls) const {
    ModelsOptions options;
    options.connection.target = "127.0.0.1:" + std::to_string(port_);
    options.connection.timeout_ms = 5000;
    options.connection.tls = std::move(tls);
    return options;
  }

  TempDir dir_{"channel_tls_handshake"};
  FakeInference service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(TlsHandshakeTest, TlsWithCaAndServerNameOverride) {
  StartServer(/*require_client_cert=*/false);
  TlsOptions tls;
  tls.ca_file = Path("ca.pem");
  tls.server_name = "localhost";  // the certificate names localhost, the target 127.0.0.1
  ::testing::internal::CaptureStdout();
  const int code = RunModels(Models(tls));
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, HasSubstr("tls-ok"));
}

TEST_F(TlsHandshakeTest, PlaintextOrWrongNameFails) {
  StartServer(/*require_client_cert=*/false);
  EXPECT_EQ(RunModels(Models(TlsOptions())), 1);
  TlsOptions tls;
  tls.ca_file = Path("ca.pem");  // checks "127.0.0.1" against a certificate for localhost
  EXPECT_EQ(RunModels(Models(tls)), 1);
}

TEST_F(TlsHandshakeTest, MutualTlsNeedsTheClientCertificate) {
  StartServer(/*require_client_cert=*/true);
  TlsOptions tls;
  tls.ca_file = Path("ca.pem");
  tls.server_name = "localhost";
  EXPECT_EQ(RunModels(Models(tls)), 1);  // no client certificate
  tls.cert_file = Path("client.pem");
  tls.key_file = Path("client.key");
  ::testing::internal::CaptureStdout();
  const int code = RunModels(Models(tls));
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, HasSubstr("tls-ok"));
}

}  // namespace
}  // namespace microbatch
