// A server's TLS identity (certificate chain and private key) in the form
// GnuTLS hands to a handshake. Internal to the HTTP server.
#ifndef MICROBATCH_SERVER_HTTP_TLS_IDENTITY_H_
#define MICROBATCH_SERVER_HTTP_TLS_IDENTITY_H_

#include <gnutls/abstract.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace microbatch {

// Immutable after FromPem; thread-safe. The pointers it hands out stay valid
// while the object lives.
class TlsIdentity {
 public:
  // INVALID_ARGUMENT when `cert_pem` holds no readable PEM certificate (at
  // most 16 in the chain), `key_pem` no readable PEM private key, or the key
  // does not belong to the first certificate.
  static absl::StatusOr<std::shared_ptr<const TlsIdentity>> FromPem(const std::string& cert_pem,
                                                                    const std::string& key_pem);
  ~TlsIdentity();
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;

  // The chain, leaf first, and its length; the private key. GnuTLS does not
  // take ownership of them.
  gnutls_pcert_st* chain() const { return chain_.data(); }
  unsigned chain_length() const { return static_cast<unsigned>(chain_.size()); }
  gnutls_privkey_t key() const { return key_; }

 private:
  TlsIdentity() = default;
  mutable std::vector<gnutls_pcert_st> chain_;
  gnutls_privkey_t key_ = nullptr;
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_HTTP_TLS_IDENTITY_H_
