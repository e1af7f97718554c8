// Helpers shared by the libFuzzer harnesses.
#ifndef MICROBATCH_TESTS_FUZZ_FUZZ_UTIL_H_
#define MICROBATCH_TESTS_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace microbatch::fuzz {

// Aborts (a crash libFuzzer reports with the input) when `condition` is
// false: the harness's invariants, checked in every build type.
#define FUZZ_CHECK(condition)                                                    \
  do {                                                                           \
    if (!(condition)) {                                                          \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, \
                   #condition);                                                  \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

// A file of this process for readers that take a path (under $TMPDIR or
// /tmp; one per harness and process, rewritten for every input).
inline std::string WriteTempFile(const std::string& suffix, const uint8_t* data, size_t size) {
  const char* base = std::getenv("TMPDIR");
  const std::string path = std::string(base ? base : "/tmp") + "/microbatch-fuzz-" +
                           std::to_string(::getpid()) + suffix;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace microbatch::fuzz

#endif  // MICROBATCH_TESTS_FUZZ_FUZZ_UTIL_H_
