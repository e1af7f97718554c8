#include "server/core/text.h"

#include "absl/strings/str_cat.h"

namespace microbatch {

std::string ClientText(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t cut = max_bytes;
  // Do not end inside a UTF-8 sequence: back off over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(text.substr(0, cut), "...(", text.size() - cut, " more bytes)");
}

}  // namespace microbatch
