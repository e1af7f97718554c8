#include "server/http/content_coding.h"

#include <zlib.h>

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/core/text.h"

namespace microbatch {
namespace {

// zlib's windowBits for each stream format.
constexpr int kZlibFormat = 15;
constexpr int kGzipFormat = 15 + 16;
constexpr int kRawDeflate = -15;

// Inflates `body` in the format `window_bits` names.
absl::StatusOr<std::string> Inflate(absl::string_view body, int window_bits, int64_t max_bytes,
                                    const char* coding) {
  z_stream stream = {};
  if (inflateInit2(&stream, window_bits) != Z_OK) return absl::InternalError("zlib inflateInit2 failed");
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  std::string out;
  char chunk[64 * 1024];
  int result = Z_OK;
  while (result != Z_STREAM_END) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof(chunk);
    result = inflate(&stream, Z_NO_FLUSH);
    if (result != Z_OK && result != Z_STREAM_END) {
      const std::string reason = stream.msg != nullptr ? stream.msg : "truncated or corrupt data";
      inflateEnd(&stream);
      return absl::InvalidArgumentError(
          absl::StrCat("the request body is not valid ", coding, " data (Content-Encoding): ", reason));
    }
    const size_t produced = sizeof(chunk) - stream.avail_out;
    if (static_cast<int64_t>(out.size() + produced) > max_bytes) {
      inflateEnd(&stream);
      return absl::ResourceExhaustedError(absl::StrCat("the request body decompresses to more than the server's limit of ",
                                                       max_bytes, " bytes"));
    }
    out.append(chunk, produced);
    if (result == Z_OK && produced == 0 && stream.avail_in == 0) {  // input ended before the stream did
      inflateEnd(&stream);
      return absl::InvalidArgumentError(
          absl::StrCat("the request body is not valid ", coding, " data (Content-Encoding): truncated"));
    }
  }
  const bool trailing = stream.avail_in != 0;
  inflateEnd(&stream);
  if (trailing) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body has bytes after its ", coding, " stream (Content-Encoding)"));
  }
  return out;
}

}  // namespace

const char* ContentCodingName(ContentCoding coding) {
  switch (coding) {
    case ContentCoding::kGzip: return "gzip";
    case ContentCoding::kDeflate: return "deflate";
    case ContentCoding::kIdentity: break;
  }
  return "identity";
}

absl::StatusOr<ContentCoding> ParseContentEncoding(absl::string_view value) {
  const std::string coding = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  if (coding == "gzip" || coding == "x-gzip") return ContentCoding::kGzip;
  if (coding == "deflate") return ContentCoding::kDeflate;
  if (coding == "identity" || coding.empty()) return ContentCoding::kIdentity;
  return absl::UnimplementedError(absl::StrCat("Content-Encoding '", ClientText(value),
                                               "' is not supported; send the body as gzip, deflate or identity"));
}

absl::StatusOr<std::string> DecodeBody(ContentCoding coding, absl::string_view body, int64_t max_bytes) {
  switch (coding) {
    case ContentCoding::kIdentity:
      if (static_cast<int64_t>(body.size()) > max_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("the request body exceeds the server's limit of ", max_bytes, " bytes"));
      }
      return std::string(body);
    case ContentCoding::kGzip:
      return Inflate(body, kGzipFormat, max_bytes, "gzip");
    case ContentCoding::kDeflate: {
      absl::StatusOr<std::string> zlib = Inflate(body, kZlibFormat, max_bytes, "deflate");
      if (zlib.ok() || zlib.status().code() != absl::StatusCode::kInvalidArgument) return zlib;
      // Some clients send "deflate" without the zlib wrapper.
      absl::StatusOr<std::string> raw = Inflate(body, kRawDeflate, max_bytes, "deflate");
      return raw.ok() || raw.status().code() != absl::StatusCode::kInvalidArgument ? raw : zlib;
    }
  }
  return absl::InternalError("unknown content coding");
}

bool AcceptsCoding(absl::string_view accept_encoding, ContentCoding coding) {
  const std::string wanted = ContentCodingName(coding);
  std::optional<double> named, any;
  for (absl::string_view item : absl::StrSplit(accept_encoding, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(parts[0]));
    if (name == "x-gzip") name = "gzip";
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      std::string param = absl::AsciiStrToLower(absl::StripAsciiWhitespace(parts[i]));
      absl::string_view value = param;
      if (absl::ConsumePrefix(&value, "q=") && !absl::SimpleAtod(value, &q)) q = 0;
    }
    if (name == wanted) named = q;
    if (name == "*") any = q;
  }
  // A coding not named takes the weight of "*".
  return named.value_or(any.value_or(0)) > 0;
}

ContentCoding ChooseResponseCoding(absl::string_view accept_encoding) {
  if (AcceptsCoding(accept_encoding, ContentCoding::kGzip)) return ContentCoding::kGzip;
  if (AcceptsCoding(accept_encoding, ContentCoding::kDeflate)) return ContentCoding::kDeflate;
  return ContentCoding::kIdentity;
}

std::optional<std::string> EncodeBody(ContentCoding coding, absl::string_view body) {
  if (coding == ContentCoding::kIdentity) return std::string(body);
  z_stream stream = {};
  const int window_bits = coding == ContentCoding::kGzip ? kGzipFormat : kZlibFormat;
  if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return std::nullopt;
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(body.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (result != Z_STREAM_END) return std::nullopt;
  return out;
}

}  // namespace microbatch
