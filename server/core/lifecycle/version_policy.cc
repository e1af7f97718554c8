#include "server/core/lifecycle/version_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace microbatch::lifecycle {

VersionPolicy VersionPolicy::Latest(int num_versions) {
  VersionPolicy p;
  p.kind = Kind::kLatest;
  p.num_versions = num_versions;
  return p;
}

VersionPolicy VersionPolicy::All() {
  VersionPolicy p;
  p.kind = Kind::kAll;
  return p;
}

VersionPolicy VersionPolicy::Specific(std::vector<int64_t> versions) {
  VersionPolicy p;
  p.kind = Kind::kSpecific;
  p.versions = std::move(versions);
  return p;
}

std::string VersionPolicy::DebugString() const {
  switch (kind) {
    case Kind::kLatest: return absl::StrCat("latest ", num_versions);
    case Kind::kAll: return "all";
    case Kind::kSpecific: return absl::StrCat("specific {", absl::StrJoin(versions, ", "), "}");
  }
  return "?";
}

bool VersionPolicy::operator==(const VersionPolicy& other) const {
  if (kind != other.kind) return false;
  switch (kind) {
    case Kind::kLatest: return num_versions == other.num_versions;
    case Kind::kAll: return true;
    case Kind::kSpecific: {
      std::vector<int64_t> a = versions, b = other.versions;
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      a.erase(std::unique(a.begin(), a.end()), a.end());
      b.erase(std::unique(b.begin(), b.end()), b.end());
      return a == b;
    }
  }
  return false;
}

absl::Status ValidateVersionPolicy(const VersionPolicy& policy) {
  switch (policy.kind) {
    case VersionPolicy::Kind::kLatest:
      if (policy.num_versions < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "version policy latest: num_versions must be at least 1, got ", policy.num_versions));
      }
      return absl::OkStatus();
    case VersionPolicy::Kind::kAll:
      return absl::OkStatus();
    case VersionPolicy::Kind::kSpecific:
      if (policy.versions.empty()) {
        return absl::InvalidArgumentError("version policy specific: lists no version");
      }
      for (int64_t v : policy.versions) {
        if (v <= 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("version policy specific: version ", v, " is not a positive number"));
        }
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("version policy: unknown kind");
}

std::vector<int64_t> SelectVersions(const VersionPolicy& policy, absl::Span<const int64_t> on_disk) {
  if (!ValidateVersionPolicy(policy).ok()) return {};
  std::vector<int64_t> present;
  present.reserve(on_disk.size());
  for (int64_t v : on_disk) {
    if (v > 0) present.push_back(v);
  }
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());
  switch (policy.kind) {
    case VersionPolicy::Kind::kLatest: {
      const size_t n = std::min(present.size(), static_cast<size_t>(policy.num_versions));
      return std::vector<int64_t>(present.end() - n, present.end());
    }
    case VersionPolicy::Kind::kAll:
      return present;
    case VersionPolicy::Kind::kSpecific: {
      std::vector<int64_t> out;
      for (int64_t v : present) {
        if (std::find(policy.versions.begin(), policy.versions.end(), v) != policy.versions.end()) {
          out.push_back(v);
        }
      }
      return out;
    }
  }
  return {};
}

}  // namespace microbatch::lifecycle
