// How the CLI reaches the server: plaintext or TLS (optionally mutual TLS)
// gRPC channels, built the same way for every subcommand.
#ifndef MICROBATCH_CLIENT_CHANNEL_H_
#define MICROBATCH_CLIENT_CHANNEL_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace microbatch {

// The TLS flags shared by every subcommand. All empty/false (the default):
// plaintext.
struct TlsOptions {
  bool tls = false;          // --tls: TLS, server verified against the system roots
  std::string ca_file;       // --tls_ca: PEM CA bundle that verifies the server; implies TLS
  std::string cert_file;     // --tls_cert: PEM client certificate (mTLS); needs key_file
  std::string key_file;      // --tls_key: PEM private key of cert_file
  std::string server_name;   // --tls_server_name: name checked in the server certificate
                             // instead of the target's host (e.g. "localhost")

  // True when any option asks for TLS (--tls, --tls_ca, --tls_cert).
  bool Enabled() const { return tls || !ca_file.empty() || !cert_file.empty(); }
};

// Builds every gRPC channel of one command from its TlsOptions: the PEM files
// are read once, at Create. Copyable; thread-safe after Create.
class ChannelFactory {
 public:
  // INVALID_ARGUMENT naming the flag and the file when a file cannot be read
  // or holds no PEM block of the expected kind, when only one of
  // cert_file/key_file is given, or when server_name is set without TLS.
  static absl::StatusOr<ChannelFactory> Create(const TlsOptions& options);

  // A channel to `target` (host:port or a gRPC target URI) with `args` plus
  // what TLS needs (the server name override).
  std::shared_ptr<grpc::Channel> NewChannel(const std::string& target, grpc::ChannelArguments args) const;

  // Adds the TLS channel arguments (GRPC_SSL_TARGET_NAME_OVERRIDE_ARG when a
  // server name is set) to `args`; nothing for plaintext.
  void AddChannelArgs(grpc::ChannelArguments* args) const;

  bool uses_tls() const { return uses_tls_; }
  // The PEM material given to grpc::SslCredentials (empty fields: gRPC's
  // defaults, i.e. the system roots and no client certificate).
  const grpc::SslCredentialsOptions& ssl_options() const { return ssl_options_; }
  const std::string& server_name() const { return server_name_; }
  std::shared_ptr<grpc::ChannelCredentials> credentials() const { return credentials_; }

 private:
  ChannelFactory() = default;

  bool uses_tls_ = false;
  grpc::SslCredentialsOptions ssl_options_;
  std::string server_name_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
};

// Reads a PEM file for the flag `flag` (e.g. "--tls_ca"): INVALID_ARGUMENT
// naming the flag and the file when it cannot be read or contains no
// "-----BEGIN <...`kind`...>-----" block (kind e.g. "CERTIFICATE", "PRIVATE KEY").
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path,
                                        const std::string& kind);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_CHANNEL_H_
