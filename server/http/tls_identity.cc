#include "server/http/tls_identity.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "absl/strings/str_cat.h"

namespace microbatch {

namespace {

gnutls_datum_t Datum(const std::string& text) {
  return gnutls_datum_t{reinterpret_cast<unsigned char*>(const_cast<char*>(text.data())),
                        static_cast<unsigned>(text.size())};
}

// OK when GnuTLS accepts `key_pem` as the key of `cert_pem`'s first
// certificate (it compares the key with the certificate's public key).
absl::Status CheckPair(const std::string& cert_pem, const std::string& key_pem) {
  gnutls_certificate_credentials_t credentials = nullptr;
  if (gnutls_certificate_allocate_credentials(&credentials) != GNUTLS_E_SUCCESS) {
    return absl::ResourceExhaustedError("TLS: cannot allocate GnuTLS credentials");
  }
  const gnutls_datum_t cert = Datum(cert_pem);
  const gnutls_datum_t key = Datum(key_pem);
  const int rc = gnutls_certificate_set_x509_key_mem2(credentials, &cert, &key, GNUTLS_X509_FMT_PEM,
                                                      nullptr, 0);
  gnutls_certificate_free_credentials(credentials);
  if (rc < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS: the certificate and key are not a usable pair: ", gnutls_strerror(rc)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TlsIdentity>> TlsIdentity::FromPem(const std::string& cert_pem,
                                                                        const std::string& key_pem) {
  if (absl::Status pair = CheckPair(cert_pem, key_pem); !pair.ok()) return pair;
  std::shared_ptr<TlsIdentity> identity(new TlsIdentity());
  constexpr unsigned kMaxChain = 16;
  identity->chain_.resize(kMaxChain);
  unsigned count = kMaxChain;
  const gnutls_datum_t cert = Datum(cert_pem);
  int rc = gnutls_pcert_list_import_x509_raw(identity->chain_.data(), &count, &cert, GNUTLS_X509_FMT_PEM, 0);
  if (rc < 0) {
    identity->chain_.clear();
    return absl::InvalidArgumentError(absl::StrCat("TLS: cannot read the certificate chain: ", gnutls_strerror(rc)));
  }
  identity->chain_.resize(count);
  if (gnutls_privkey_init(&identity->key_) != GNUTLS_E_SUCCESS) {
    return absl::ResourceExhaustedError("TLS: cannot allocate a GnuTLS private key");
  }
  const gnutls_datum_t key = Datum(key_pem);
  rc = gnutls_privkey_import_x509_raw(identity->key_, &key, GNUTLS_X509_FMT_PEM, nullptr, 0);
  if (rc < 0) {
    return absl::InvalidArgumentError(absl::StrCat("TLS: cannot read the private key: ", gnutls_strerror(rc)));
  }
  return std::shared_ptr<const TlsIdentity>(std::move(identity));
}

TlsIdentity::~TlsIdentity() {
  for (gnutls_pcert_st& cert : chain_) gnutls_pcert_deinit(&cert);
  if (key_ != nullptr) gnutls_privkey_deinit(key_);
}

}  // namespace microbatch
