#include "server/service/tls_files.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/strings/str_cat.h"

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

}  // namespace microbatch
