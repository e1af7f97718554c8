// Checks of the TLS material given to the server (--tls_cert, --tls_key,
// --tls_client_ca), so that a wrong file fails the start with a message that
// names it, instead of failing every handshake later.
#ifndef MICROBATCH_SERVER_SERVICE_TLS_FILES_H_
#define MICROBATCH_SERVER_SERVICE_TLS_FILES_H_

#include <string>

#include "absl/status/status.h"

namespace microbatch {

// OK when `cert_pem` holds at least one PEM certificate, `key_pem` a PEM
// private key that matches the first certificate, and `client_ca_pem`, when
// not empty, at least one PEM certificate. Otherwise INVALID_ARGUMENT naming
// the flag and the problem. Thread-safe.
absl::Status CheckTlsPem(const std::string& cert_pem, const std::string& key_pem,
                         const std::string& client_ca_pem);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_TLS_FILES_H_
