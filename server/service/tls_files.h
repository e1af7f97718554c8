// Checks of the TLS material given to the server (--tls_cert, --tls_key,
// --tls_client_ca), so that a wrong file fails the start with a message that
// names it, instead of failing every handshake later.
#ifndef MICROBATCH_SERVER_SERVICE_TLS_FILES_H_
#define MICROBATCH_SERVER_SERVICE_TLS_FILES_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/sync.h"

namespace microbatch {

// The contents of the file at `path`, given by `flag` (e.g. "--tls_cert");
// INVALID_ARGUMENT naming both when it cannot be read or is empty.
absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path);

// OK when `cert_pem` holds at least one PEM certificate, `key_pem` a PEM
// private key that matches the first certificate, and `client_ca_pem`, when
// not empty, at least one PEM certificate. Otherwise INVALID_ARGUMENT naming
// the flag and the problem. Thread-safe.
absl::Status CheckTlsPem(const std::string& cert_pem, const std::string& key_pem,
                         const std::string& client_ca_pem);

// Rereads a certificate file and its key file every `interval`; when their
// bytes differ from the pair last taken and CheckTlsPem accepts them, hands
// them to `apply` (which takes them, or says why not). A pair that is not
// taken (a renewal caught half-written) is tried again at the next interval.
// Each taken or refused pair is logged once. Thread-safe: one thread of its
// own, stopped and joined by the destructor.
class TlsFileReloader {
 public:
  using Apply = std::function<absl::Status(const std::string& cert_pem, const std::string& key_pem)>;

  // `cert_pem` and `key_pem`: the pair in use at the start.
  TlsFileReloader(std::string cert_file, std::string key_file, absl::Duration interval, std::string cert_pem,
                  std::string key_pem, Apply apply);
  ~TlsFileReloader();
  TlsFileReloader(const TlsFileReloader&) = delete;
  TlsFileReloader& operator=(const TlsFileReloader&) = delete;

 private:
  void Run();
  // Reads the files once and applies a changed, valid pair.
  void Check();

  const std::string cert_file_;
  const std::string key_file_;
  const absl::Duration interval_;
  const Apply apply_;
  // Touched by the reloading thread only.
  std::string cert_pem_;
  std::string key_pem_;
  std::string refused_;  // the cert+key last refused (logged once)
  Mutex mu_;
  CondVar stop_cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_TLS_FILES_H_
