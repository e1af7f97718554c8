#include "server/core/log.h"

#include <atomic>
#include <cstdio>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/core/text.h"

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

// `s` as a JSON string: control bytes escaped, bytes that are not UTF-8 as
// U+FFFD (ToValidUtf8).
std::string JsonString(absl::string_view s) {
  const std::string valid = ToValidUtf8(s);
  std::string out = "\"";
  for (const char c : valid) {
    const unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      default: break;
    }
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  out += "\"";
  return out;
}

bool NeedsQuoting(absl::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

// Text values with spaces, quotes, '=', backslashes or control bytes are
// quoted and C-escaped, so lines stay parseable and hold no raw control byte.
std::string TextValue(absl::string_view v) {
  if (!NeedsQuoting(v)) return std::string(v);
  return "\"" + absl::CEscape(v) + "\"";
}

constexpr size_t kMaxValueBytes = 1024;

}  // namespace

void SetLogFormat(LogFormat format) { g_format = format; }

namespace {

std::string FormatFields(LogFormat format, absl::string_view ts, LogLevel level,
                         absl::string_view event, absl::Span<const LogField> fields) {
  std::string line;
  if (format == LogFormat::kJson) {
    line = absl::StrCat("{\"ts\":\"", ts, "\",\"level\":\"", LevelName(level),
                        "\",\"event\":", JsonString(event));
    for (const LogField& f : fields) {
      absl::StrAppend(&line, ",", JsonString(f.key), ":",
                      JsonString(ClientText(f.value, kMaxValueBytes)));
    }
    line += "}\n";
  } else {
    line = absl::StrCat(ts, " ", LevelName(level), " ", event);
    for (const LogField& f : fields) {
      absl::StrAppend(&line, " ", f.key, "=", TextValue(ClientText(f.value, kMaxValueBytes)));
    }
    line += "\n";
  }
  return line;
}

void Write(LogLevel level, absl::string_view event, absl::Span<const LogField> fields) {
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  const std::string line = FormatFields(g_format.load(), ts, level, event, fields);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

std::string FormatLogLine(LogFormat format, absl::string_view ts, LogLevel level,
                          absl::string_view event, std::initializer_list<LogField> fields) {
  return FormatFields(format, ts, level, event, absl::MakeConstSpan(fields.begin(), fields.size()));
}

void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields) {
  Write(level, event, absl::MakeConstSpan(fields.begin(), fields.size()));
}

void RateLimitedLog::Log(LogLevel level, absl::string_view event,
                         std::initializer_list<LogField> fields) {
  const int64_t second = absl::ToUnixSeconds(absl::Now());
  int64_t suppressed = 0;
  {
    MutexLock lock(&mu_);
    if (second != second_) {
      second_ = second;
      lines_ = 0;
    }
    if (lines_ >= per_second_) {
      ++suppressed_;
      return;
    }
    ++lines_;
    suppressed = suppressed_;
    suppressed_ = 0;
  }
  std::vector<LogField> with(fields);
  if (suppressed > 0) with.emplace_back("suppressed", suppressed);
  Write(level, event, with);
}

}  // namespace microbatch
