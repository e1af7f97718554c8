#include "client/channel.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace microbatch {

absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path,
                                        const std::string& kind) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot read the file"));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot read the file"));
  const std::string text = content.str();
  // "-----BEGIN CERTIFICATE-----", "-----BEGIN RSA PRIVATE KEY-----", ...
  size_t begin = text.find("-----BEGIN ");
  while (begin != std::string::npos) {
    const size_t end = text.find("-----", begin + 11);
    if (end != std::string::npos && text.substr(begin + 11, end - begin - 11).find(kind) != std::string::npos) {
      return text;
    }
    begin = text.find("-----BEGIN ", begin + 11);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " ", path, ": not a PEM file with a ", kind, " block"));
}

absl::StatusOr<ChannelFactory> ChannelFactory::Create(const TlsOptions& options) {
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key go together: give both (mutual TLS) or neither");
  }
  if (!options.server_name.empty() && !options.Enabled()) {
    return absl::InvalidArgumentError("--tls_server_name needs TLS (--tls or --tls_ca)");
  }
  ChannelFactory factory;
  if (!options.Enabled()) {
    factory.credentials_ = grpc::InsecureChannelCredentials();
    return factory;
  }
  factory.uses_tls_ = true;
  factory.server_name_ = options.server_name;
  if (!options.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile("--tls_ca", options.ca_file, "CERTIFICATE");
    if (!ca.ok()) return ca.status();
    factory.ssl_options_.pem_root_certs = std::move(*ca);
  }
  if (!options.cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPemFile("--tls_cert", options.cert_file, "CERTIFICATE");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPemFile("--tls_key", options.key_file, "PRIVATE KEY");
    if (!key.ok()) return key.status();
    factory.ssl_options_.pem_cert_chain = std::move(*cert);
    factory.ssl_options_.pem_private_key = std::move(*key);
  }
  factory.credentials_ = grpc::SslCredentials(factory.ssl_options_);
  return factory;
}

void ChannelFactory::AddChannelArgs(grpc::ChannelArguments* args) const {
  if (uses_tls_ && !server_name_.empty()) args->SetSslTargetNameOverride(server_name_);
}

std::shared_ptr<grpc::Channel> ChannelFactory::NewChannel(const std::string& target,
                                                          grpc::ChannelArguments args) const {
  AddChannelArgs(&args);
  return grpc::CreateCustomChannel(target, credentials_, args);
}

}  // namespace microbatch
