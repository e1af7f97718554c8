// One-line-per-event logging to stderr, as text or JSON.
#ifndef MICROBATCH_SERVER_CORE_LOG_H_
#define MICROBATCH_SERVER_CORE_LOG_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/core/sync.h"

namespace microbatch {

enum class LogLevel { kInfo, kWarning, kError };
enum class LogFormat { kText, kJson };

// Process-wide; set once at startup before other threads log.
void SetLogFormat(LogFormat format);

// A field of a log line; values are rendered with absl::StrCat.
struct LogField {
  template <typename T>
  LogField(absl::string_view k, const T& v) : key(k), value(absl::StrCat(v)) {}
  LogField(absl::string_view k, absl::string_view v) : key(k), value(v) {}
  LogField(absl::string_view k, const char* v) : key(k), value(v) {}
  LogField(absl::string_view k, const std::string& v) : key(k), value(v) {}
  absl::string_view key;
  std::string value;
};

// Writes one line: a timestamp, the level, `event` and the fields. Text:
//   2026-11-22T13:50:00.123Z INFO model_loaded model=mlp version=1
// JSON: {"ts":"...","level":"INFO","event":"model_loaded","model":"mlp",...}
// Every control byte (and DEL) in a value is escaped in both formats, so a
// value can never end a line or drive a terminal: text values holding one,
// or a space, quote, backslash or '=', are quoted and C-escaped; JSON strings
// escape them as \uXXXX and replace bytes that are not UTF-8 with U+FFFD.
// Values longer than 1024 bytes are cut (see ClientText). Thread-safe; lines
// of concurrent callers never interleave.
void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields = {});

// One line as Log() writes it, newline included. Exposed for tests.
std::string FormatLogLine(LogFormat format, absl::string_view timestamp, LogLevel level,
                          absl::string_view event, std::initializer_list<LogField> fields);

// Rate limit for one kind of per-request log line (a line a client can cause
// once per request): at most `lines_per_second` lines in each wall-clock
// second; the first line written after suppressed ones carries the field
// suppressed=N. Thread-safe.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(int lines_per_second) : per_second_(lines_per_second) {}
  void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields = {});

 private:
  const int per_second_;
  Mutex mu_;
  int64_t second_ ABSL_GUARDED_BY(mu_) = 0;
  int lines_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_LOG_H_
