#include "server/core/log.h"

#include <atomic>
#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace microbatch {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "INFO";
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

// Text values with spaces, quotes or '=' are quoted so lines stay parseable.
std::string TextValue(absl::string_view v) {
  if (!v.empty() && v.find_first_of(" \"=\n\t") == absl::string_view::npos) return std::string(v);
  return "\"" + absl::CEscape(v) + "\"";
}

}  // namespace

void SetLogFormat(LogFormat format) { g_format = format; }

void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields) {
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::string line;
  if (g_format.load() == LogFormat::kJson) {
    line = absl::StrCat("{\"ts\":\"", ts, "\",\"level\":\"", LevelName(level),
                        "\",\"event\":", JsonString(event));
    for (const LogField& f : fields) absl::StrAppend(&line, ",", JsonString(f.key), ":", JsonString(f.value));
    line += "}\n";
  } else {
    line = absl::StrCat(ts, " ", LevelName(level), " ", event);
    for (const LogField& f : fields) absl::StrAppend(&line, " ", f.key, "=", TextValue(f.value));
    line += "\n";
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace microbatch
