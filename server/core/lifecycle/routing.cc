#include "server/core/lifecycle/routing.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace microbatch::lifecycle {
namespace {

constexpr uint64_t kShadowSeed = 0x5ad0f5ad0f5ad0f5ull;
constexpr size_t kMaxLabelLength = 64;

std::string VersionList(const std::vector<int64_t>& versions) {
  if (versions.empty()) return "none";
  return absl::StrJoin(versions, ", ");
}

std::string LabelList(const std::map<std::string, int64_t>& labels) {
  if (labels.empty()) return "none";
  return absl::StrJoin(labels, ", ", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, kv.first, "=", kv.second);
  });
}

uint64_t Mix64(uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int32_t ShadowThreshold(double fraction) {
  return static_cast<int32_t>(std::lround(fraction * kRouteBuckets));
}

}  // namespace

VersionSelector VersionSelector::Number(int64_t version) {
  VersionSelector s;
  s.kind = Kind::kNumber;
  s.number = version;
  return s;
}

VersionSelector VersionSelector::Label(std::string label) {
  VersionSelector s;
  s.kind = Kind::kLabel;
  s.label = std::move(label);
  return s;
}

std::string VersionSelector::DebugString() const {
  switch (kind) {
    case Kind::kDefault: return "default version";
    case Kind::kNumber: return absl::StrCat("version ", number);
    case Kind::kLabel: return absl::StrCat("label '", label, "'");
  }
  return "?";
}

absl::Status ValidateLabel(absl::string_view label) {
  if (label.empty()) return absl::InvalidArgumentError("a version label cannot be empty");
  if (label.size() > kMaxLabelLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("version label '", label.substr(0, kMaxLabelLength), "...' is longer than ",
                     kMaxLabelLength, " characters"));
  }
  if (!absl::ascii_isalpha(label[0]) && label[0] != '_') {
    return absl::InvalidArgumentError(absl::StrCat(
        "version label '", label, "' must start with a letter or '_'"));
  }
  for (char c : label) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "version label '", absl::CHexEscape(label),
          "' may only hold letters, digits, '_', '.' and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<VersionSelector> ParseVersionSelector(absl::string_view text) {
  if (text.empty()) return VersionSelector::Default();
  const bool digits = std::all_of(text.begin(), text.end(), [](char c) { return absl::ascii_isdigit(c); });
  if (digits) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(text, &v)) {
      return absl::InvalidArgumentError(absl::StrCat("version '", text, "' is out of range"));
    }
    return v == 0 ? VersionSelector::Default() : VersionSelector::Number(v);
  }
  if (text[0] == '-' || text[0] == '+') {
    return absl::InvalidArgumentError(
        absl::StrCat("version '", absl::CHexEscape(text), "' is not a positive number"));
  }
  absl::Status valid = ValidateLabel(text);
  if (!valid.ok()) return valid;
  return VersionSelector::Label(std::string(text));
}

std::set<int64_t> RoutingSpec::ReferencedVersions() const {
  std::set<int64_t> out;
  for (const auto& [label, v] : labels) out.insert(v);
  for (const CanaryWeight& c : canary) out.insert(c.version);
  if (shadow) out.insert(shadow->version);
  return out;
}

std::string RoutingSpec::DebugString() const {
  std::string out = absl::StrCat("labels {", absl::StrJoin(labels, ", ", [](std::string* o, const auto& kv) {
                                   absl::StrAppend(o, kv.first, "=", kv.second);
                                 }),
                                 "} canary {",
                                 absl::StrJoin(canary, ", ", [](std::string* o, const CanaryWeight& c) {
                                   absl::StrAppend(o, c.version, ":", c.weight);
                                 }),
                                 "}");
  if (shadow) absl::StrAppend(&out, " shadow {", shadow->version, ":", shadow->fraction, "}");
  return out;
}

absl::Status ValidateRoutingSpec(const RoutingSpec& spec) {
  for (const auto& [label, version] : spec.labels) {
    absl::Status valid = ValidateLabel(label);
    if (!valid.ok()) return valid;
    if (version <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("label '", label, "' names version ", version, ", not a positive number"));
    }
  }
  int64_t total = 0;
  std::set<int64_t> seen;
  for (const CanaryWeight& c : spec.canary) {
    if (c.version <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("canary version ", c.version, " is not a positive number"));
    }
    if (c.weight < 1 || c.weight > kRouteBuckets) {
      return absl::InvalidArgumentError(absl::StrCat("canary version ", c.version, " has weight ",
                                                     c.weight, ", not in 1..", kRouteBuckets));
    }
    if (!seen.insert(c.version).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("canary version ", c.version, " is listed twice"));
    }
    total += c.weight;
  }
  if (total > kRouteBuckets) {
    return absl::InvalidArgumentError(absl::StrCat("canary weights sum to ", total, ", more than ",
                                                   kRouteBuckets));
  }
  if (spec.shadow) {
    if (spec.shadow->version <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shadow version ", spec.shadow->version, " is not a positive number"));
    }
    const double f = spec.shadow->fraction;
    if (!(f > 0 && f <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("shadow fraction ", f, " is not in (0, 1]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RoutingTable> RoutingTable::Build(std::string model, std::vector<int64_t> ready,
                                                 RoutingSpec spec, absl::string_view default_label) {
  absl::Status valid = ValidateRoutingSpec(spec);
  if (!valid.ok()) {
    return absl::Status(valid.code(), absl::StrCat("model '", model, "': ", valid.message()));
  }
  std::sort(ready.begin(), ready.end());
  ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
  auto is_ready = [&](int64_t v) { return std::binary_search(ready.begin(), ready.end(), v); };
  auto not_ready = [&](const std::string& what, int64_t v) {
    return absl::FailedPreconditionError(absl::StrCat("model '", model, "': ", what, " version ", v,
                                                      ", which is not ready (ready: ",
                                                      VersionList(ready), ")"));
  };
  for (const auto& [label, v] : spec.labels) {
    if (!is_ready(v)) return not_ready(absl::StrCat("label '", label, "' names"), v);
  }
  for (const CanaryWeight& c : spec.canary) {
    if (!is_ready(c.version)) return not_ready("canary", c.version);
  }
  if (spec.shadow && !is_ready(spec.shadow->version)) {
    return not_ready("shadow", spec.shadow->version);
  }

  RoutingTable table(std::move(model));
  table.ready_ = std::move(ready);
  table.spec_ = std::move(spec);
  if (!default_label.empty()) {
    auto it = table.spec_.labels.find(std::string(default_label));
    if (it != table.spec_.labels.end()) table.default_version_ = it->second;
  }
  if (table.default_version_ == 0) {
    for (auto it = table.ready_.rbegin(); it != table.ready_.rend(); ++it) {
      const int64_t v = *it;
      const bool canary = std::any_of(table.spec_.canary.begin(), table.spec_.canary.end(),
                                      [v](const CanaryWeight& c) { return c.version == v; });
      const bool shadow = table.spec_.shadow && table.spec_.shadow->version == v;
      if (!canary && !shadow) {
        table.default_version_ = v;
        break;
      }
    }
  }
  if (table.default_version_ == 0 && !table.ready_.empty()) {
    table.default_version_ = table.ready_.back();
  }
  return table;
}

bool RoutingTable::IsReady(int64_t version) const {
  return std::binary_search(ready_.begin(), ready_.end(), version);
}

std::string RoutingTable::DebugString() const {
  return absl::StrCat("model '", model_, "' ready {", absl::StrJoin(ready_, ", "), "} default ",
                      default_version_, " ", spec_.DebugString());
}

uint32_t KeyBucket(absl::string_view key) {
  return static_cast<uint32_t>(XXH3_64bits(key.data(), key.size()) % kRouteBuckets);
}

uint32_t ShadowKeyBucket(absl::string_view key) {
  return static_cast<uint32_t>(XXH3_64bits_withSeed(key.data(), key.size(), kShadowSeed) %
                               kRouteBuckets);
}

uint32_t DrawBucket(uint64_t draw) {
  return static_cast<uint32_t>(((draw >> 32) * static_cast<uint64_t>(kRouteBuckets)) >> 32);
}

uint32_t ShadowDrawBucket(uint64_t draw) { return DrawBucket(Mix64(draw)); }

absl::StatusOr<RouteResult> Route(const RoutingTable& table, const VersionSelector& selector,
                                  absl::string_view routing_key, uint64_t draw) {
  RouteResult result;
  switch (selector.kind) {
    case VersionSelector::Kind::kNumber:
      if (!table.IsReady(selector.number)) {
        return absl::NotFoundError(absl::StrCat("model '", table.model(), "' has no ready version ",
                                                selector.number, " (ready: ",
                                                VersionList(table.ready_versions()), ")"));
      }
      result.version = selector.number;
      result.kind = RouteKind::kNumber;
      break;
    case VersionSelector::Kind::kLabel: {
      auto it = table.spec().labels.find(selector.label);
      if (it == table.spec().labels.end()) {
        return absl::NotFoundError(absl::StrCat("model '", table.model(), "' has no version label '",
                                                selector.label, "' (labels: ",
                                                LabelList(table.spec().labels), ")"));
      }
      result.version = it->second;
      result.kind = RouteKind::kLabel;
      break;
    }
    case VersionSelector::Kind::kDefault: {
      if (table.default_version() == 0) {
        return absl::UnavailableError(
            absl::StrCat("model '", table.model(), "' has no ready version"));
      }
      const int64_t bucket = routing_key.empty() ? DrawBucket(draw) : KeyBucket(routing_key);
      result.version = table.default_version();
      result.kind = RouteKind::kDefault;
      int64_t hi = kRouteBuckets;
      for (const CanaryWeight& c : table.spec().canary) {
        const int64_t lo = hi - c.weight;
        if (bucket >= lo && bucket < hi) {
          result.version = c.version;
          result.kind = RouteKind::kCanary;
          break;
        }
        hi = lo;
      }
      break;
    }
  }
  const std::optional<ShadowSpec>& shadow = table.spec().shadow;
  if (shadow && shadow->version != result.version) {
    const int64_t bucket =
        routing_key.empty() ? ShadowDrawBucket(draw) : ShadowKeyBucket(routing_key);
    if (bucket < ShadowThreshold(shadow->fraction)) result.shadow_version = shadow->version;
  }
  return result;
}

}  // namespace microbatch::lifecycle
