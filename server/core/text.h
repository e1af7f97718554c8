// Client-supplied text that the server echoes back (in error messages) or
// writes down (in logs): bounded so that a long name cannot blow up a
// response's metadata or a log line.
#ifndef MICROBATCH_SERVER_CORE_TEXT_H_
#define MICROBATCH_SERVER_CORE_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace microbatch {

// Longest client string echoed whole.
inline constexpr size_t kMaxEchoBytes = 128;

// `text` when it has at most `max_bytes` bytes; otherwise its first bytes (cut
// at a UTF-8 character boundary) followed by "...(N more bytes)". Bytes that
// are not UTF-8 become U+FFFD (see ToValidUtf8), so that the result can go
// into JSON. Pure; thread-safe.
std::string ClientText(absl::string_view text, size_t max_bytes = kMaxEchoBytes);

// `text` with each byte that does not start or continue well-formed UTF-8
// (FirstInvalidUtf8) replaced by U+FFFD. Pure; thread-safe.
std::string ToValidUtf8(absl::string_view text);

// The byte offset of the first byte of `text` that does not start or
// continue a well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or npos when it is all UTF-8. Pure;
// thread-safe.
size_t FirstInvalidUtf8(absl::string_view text);

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_TEXT_H_
