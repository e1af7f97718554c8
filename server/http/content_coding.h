// HTTP content codings (RFC 9110, section 8.4) on the HTTP port: request
// bodies sent gzip- or deflate-compressed (Content-Encoding), as Triton's
// HTTP client does with request_compression_algorithm, and answers
// compressed for clients that ask (Accept-Encoding).
//
// Thread-safe: pure functions.
#ifndef MICROBATCH_SERVER_HTTP_CONTENT_CODING_H_
#define MICROBATCH_SERVER_HTTP_CONTENT_CODING_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microbatch {

enum class ContentCoding { kIdentity, kGzip, kDeflate };

// "identity", "gzip" or "deflate".
const char* ContentCodingName(ContentCoding coding);

// The coding a Content-Encoding value names: "gzip" (or "x-gzip"), "deflate"
// or "identity", in any case. Errors: UNIMPLEMENTED naming the value for any
// other coding or a list of several.
absl::StatusOr<ContentCoding> ParseContentEncoding(absl::string_view value);

// `body` decoded; at most `max_bytes` bytes of it. "deflate" takes the zlib
// format and, as browsers do, a raw deflate stream. Errors: INVALID_ARGUMENT
// when `body` is not valid data of the coding (or has bytes after its end),
// RESOURCE_EXHAUSTED when the decoded body would exceed `max_bytes`.
absl::StatusOr<std::string> DecodeBody(ContentCoding coding, absl::string_view body, int64_t max_bytes);

// Whether an Accept-Encoding value takes `coding` ("gzip", "gzip;q=0.5",
// "*") and does not refuse it ("gzip;q=0", "*;q=0" without naming it).
bool AcceptsCoding(absl::string_view accept_encoding, ContentCoding coding);

// The coding an answer should have for the request's Accept-Encoding value:
// gzip when acceptable, else deflate when acceptable, else identity.
ContentCoding ChooseResponseCoding(absl::string_view accept_encoding);

// `body` in `coding` (fastest zlib level); nullopt if zlib fails.
std::optional<std::string> EncodeBody(ContentCoding coding, absl::string_view body);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_HTTP_CONTENT_CODING_H_
