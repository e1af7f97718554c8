#include "server/core/text.h"

#include "absl/strings/str_cat.h"

namespace microbatch {

std::string ClientText(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return ToValidUtf8(text);
  size_t cut = max_bytes;
  // Do not end inside a UTF-8 sequence: back off over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(ToValidUtf8(text.substr(0, cut)), "...(", text.size() - cut, " more bytes)");
}

std::string ToValidUtf8(absl::string_view text) {
  std::string out;
  size_t bad = FirstInvalidUtf8(text);
  if (bad == absl::string_view::npos) return std::string(text);
  out.reserve(text.size() + 8);
  while (bad != absl::string_view::npos) {
    out.append(text.data(), bad);
    out.append("\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER
    text.remove_prefix(bad + 1);
    bad = FirstInvalidUtf8(text);
  }
  out.append(text.data(), text.size());
  return out;
}

size_t FirstInvalidUtf8(absl::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    size_t length = 0;
    unsigned char low = 0x80, high = 0xbf;  // the allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      if (c == 0xe0) low = 0xa0;   // no overlong forms
      if (c == 0xed) high = 0x9f;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      if (c == 0xf0) low = 0x90;   // no overlong forms
      if (c == 0xf4) high = 0x8f;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (n - i < length || p[i + 1] < low || p[i + 1] > high) return i;
    for (size_t k = 2; k < length; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
    }
    i += length;
  }
  return absl::string_view::npos;
}

}  // namespace microbatch
