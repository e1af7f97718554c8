// Which versions of a model to serve, given the versions present on disk
// (TF Serving's ServableVersionPolicy: latest N, all, specific).
#ifndef MICROBATCH_SERVER_CORE_LIFECYCLE_VERSION_POLICY_H_
#define MICROBATCH_SERVER_CORE_LIFECYCLE_VERSION_POLICY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace microbatch::lifecycle {

// A value type (thread-compatible); the default is "latest 1". The functions
// below are pure and thread-safe.
struct VersionPolicy {
  enum class Kind { kLatest, kAll, kSpecific };

  static VersionPolicy Latest(int num_versions = 1);
  static VersionPolicy All();
  static VersionPolicy Specific(std::vector<int64_t> versions);

  Kind kind = Kind::kLatest;
  // kLatest: how many of the highest versions to serve (>= 1).
  int num_versions = 1;
  // kSpecific: the versions to serve (each > 0, at least one).
  std::vector<int64_t> versions;

  // "latest 1", "all", "specific {1, 3}".
  std::string DebugString() const;
  bool operator==(const VersionPolicy& other) const;
  bool operator!=(const VersionPolicy& other) const { return !(*this == other); }
};

// OK, or INVALID_ARGUMENT naming what is wrong (num_versions < 1, an empty or
// non-positive specific list).
absl::Status ValidateVersionPolicy(const VersionPolicy& policy);

// The versions to serve, ascending and without duplicates: of `on_disk`
// (any order, duplicates and versions <= 0 ignored), the highest
// num_versions (latest), all of them (all), or those listed (specific; a
// listed version that is not on disk is simply not served). Pure; an invalid
// policy selects nothing.
std::vector<int64_t> SelectVersions(const VersionPolicy& policy, absl::Span<const int64_t> on_disk);

}  // namespace microbatch::lifecycle

#endif  // MICROBATCH_SERVER_CORE_LIFECYCLE_VERSION_POLICY_H_
