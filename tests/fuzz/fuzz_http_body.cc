// Compressed HTTP request bodies (server/http/content_coding.h): the first
// byte picks the coding and the decoded-size limit, the rest is the body.
// A decoded body never exceeds the limit and encodes back to itself; the
// rest of the bytes, read as header values, never break the parsers.
#include <string>

#include "absl/strings/string_view.h"
#include "server/http/content_coding.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microbatch;
  if (size == 0) return 0;
  const ContentCoding coding = static_cast<ContentCoding>(data[0] % 3);
  const int64_t limit = int64_t{1} << (8 + (data[0] >> 2) % 12);  // 256 B .. 512 KiB
  const absl::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  absl::StatusOr<std::string> decoded = DecodeBody(coding, body, limit);
  if (decoded.ok()) {
    FUZZ_CHECK(static_cast<int64_t>(decoded->size()) <= limit);
    std::optional<std::string> again = EncodeBody(coding, *decoded);
    FUZZ_CHECK(again.has_value());
    absl::StatusOr<std::string> round_trip = DecodeBody(coding, *again, limit);
    FUZZ_CHECK(round_trip.ok() && *round_trip == *decoded);
  } else {
    FUZZ_CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument ||
               decoded.status().code() == absl::StatusCode::kResourceExhausted);
  }
  absl::StatusOr<ContentCoding> parsed = ParseContentEncoding(body);
  FUZZ_CHECK(parsed.ok() || parsed.status().code() == absl::StatusCode::kUnimplemented);
  const ContentCoding chosen = ChooseResponseCoding(body);
  FUZZ_CHECK(chosen == ContentCoding::kIdentity || AcceptsCoding(body, chosen));
  return 0;
}
