#include "server/service/tls_files.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "server/core/log.h"

namespace microbatch {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> Bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM bundle; null if there is none.
std::unique_ptr<X509, X509Free> FirstCertificate(const std::string& pem) {
  auto bio = Bio(pem);
  if (!bio) return nullptr;
  return std::unique_ptr<X509, X509Free>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

}  // namespace

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read '", path, "'"));
  }
  return text.str();
}

absl::Status CheckTlsPem(const std::string& cert_pem, const std::string& key_pem,
                         const std::string& client_ca_pem) {
  auto cert = FirstCertificate(cert_pem);
  if (!cert) return absl::InvalidArgumentError("--tls_cert: no PEM certificate in the file");
  auto key_bio = Bio(key_pem);
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    return absl::InvalidArgumentError(
        "--tls_key: no unencrypted PEM private key in the file");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(
        "--tls_key does not match the certificate of --tls_cert (the first one in the file)");
  }
  if (!client_ca_pem.empty() && !FirstCertificate(client_ca_pem)) {
    return absl::InvalidArgumentError("--tls_client_ca: no PEM certificate in the file");
  }
  return absl::OkStatus();
}

TlsFileReloader::TlsFileReloader(std::string cert_file, std::string key_file, absl::Duration interval,
                                 std::string cert_pem, std::string key_pem, Apply apply)
    : cert_file_(std::move(cert_file)),
      key_file_(std::move(key_file)),
      interval_(std::max(interval, absl::Milliseconds(100))),
      apply_(std::move(apply)),
      cert_pem_(std::move(cert_pem)),
      key_pem_(std::move(key_pem)) {
  thread_ = std::thread([this] { Run(); });
}

TlsFileReloader::~TlsFileReloader() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  stop_cv_.NotifyAll();
  thread_.join();
}

void TlsFileReloader::Run() {
  while (true) {
    {
      MutexLock lock(&mu_);
      if (!stopping_) stop_cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(interval_));
      if (stopping_) return;
    }
    Check();  // a spurious wake-up only checks early
  }
}

void TlsFileReloader::Check() {
  // A file missing or empty (caught mid-rotation) is tried again next time.
  absl::StatusOr<std::string> cert_read = ReadPem("--tls_cert", cert_file_);
  absl::StatusOr<std::string> key_read = ReadPem("--tls_key", key_file_);
  if (!cert_read.ok() || !key_read.ok()) return;
  const std::string& cert = *cert_read;
  const std::string& key = *key_read;
  if (cert == cert_pem_ && key == key_pem_) return;
  absl::Status taken = CheckTlsPem(cert, key, "");
  if (taken.ok()) taken = apply_(cert, key);
  if (!taken.ok()) {
    if (refused_ != cert + key) {
      refused_ = cert + key;
      Log(LogLevel::kWarning, "tls_reload_refused",
          {{"cert", cert_file_}, {"key", key_file_}, {"reason", taken.message()}});
    }
    return;
  }
  cert_pem_ = cert;
  key_pem_ = key;
  refused_.clear();
  Log(LogLevel::kInfo, "tls_reloaded", {{"cert", cert_file_}, {"key", key_file_}});
}

}  // namespace microbatch
