// One-line-per-event logging to stderr, as text or JSON.
#ifndef MICROBATCH_SERVER_CORE_LOG_H_
#define MICROBATCH_SERVER_CORE_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

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
// Thread-safe; lines of concurrent callers never interleave.
void Log(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields = {});

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_LOG_H_
