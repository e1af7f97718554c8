// Per-model request routing: which loaded version answers a request that
// names a model's default, a version number or a label, with canary splits
// and shadow traffic. Everything here is a value type or a pure function.
#ifndef MICROBATCH_SERVER_CORE_LIFECYCLE_ROUTING_H_
#define MICROBATCH_SERVER_CORE_LIFECYCLE_ROUTING_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microbatch::lifecycle {

// Routing decisions are made in this many buckets: canary weights are in
// 1/10000 of the unpinned traffic (basis points).
inline constexpr int32_t kRouteBuckets = 10000;

// The label that, when a model has it, names the default version (the one
// unpinned requests go to) instead of "the highest ready version".
inline constexpr absl::string_view kDefaultLabel = "stable";

// What a request asks for. A value type.
struct VersionSelector {
  enum class Kind {
    kDefault,  // no version, "" or 0: the model's default version (or a canary)
    kNumber,   // one version number (> 0)
    kLabel,    // a label such as "stable" or "canary"
  };
  static VersionSelector Default() { return {}; }
  static VersionSelector Number(int64_t version);
  static VersionSelector Label(std::string label);

  Kind kind = Kind::kDefault;
  int64_t number = 0;  // kNumber
  std::string label;   // kLabel

  // "default version", "version 3", "label 'stable'".
  std::string DebugString() const;
  bool operator==(const VersionSelector& o) const {
    return kind == o.kind && number == o.number && label == o.label;
  }
};

// Parses a KServe v2 / request version string: "" or "0" is the default,
// digits are a version number, anything else a label (see ValidateLabel).
// INVALID_ARGUMENT for a negative or out-of-range number or a malformed label.
absl::StatusOr<VersionSelector> ParseVersionSelector(absl::string_view text);

// A label is 1 to 64 characters from [A-Za-z0-9_.-], starting with a letter
// or '_' (so it can never be mistaken for a version number). Else
// INVALID_ARGUMENT.
absl::Status ValidateLabel(absl::string_view label);

// A canary: `weight` buckets out of kRouteBuckets of the unpinned requests.
struct CanaryWeight {
  int64_t version = 0;
  int32_t weight = 0;  // 1..kRouteBuckets
  bool operator==(const CanaryWeight& o) const { return version == o.version && weight == o.weight; }
};

// Mirror `fraction` (0 < fraction <= 1) of the requests to `version` too.
struct ShadowSpec {
  int64_t version = 0;
  double fraction = 0;
  bool operator==(const ShadowSpec& o) const {
    return version == o.version && fraction == o.fraction;
  }
};

// The operator-controlled part of a model's routing. A value type.
struct RoutingSpec {
  std::map<std::string, int64_t> labels;
  // Canaries in layout order (see Route). Their weights sum to at most
  // kRouteBuckets; what remains goes to the default version.
  std::vector<CanaryWeight> canary;
  std::optional<ShadowSpec> shadow;

  // Every version a label, canary or the shadow names.
  std::set<int64_t> ReferencedVersions() const;
  // "labels {stable=1} canary {2:1000} shadow {3:0.05}".
  std::string DebugString() const;
  bool operator==(const RoutingSpec& o) const {
    return labels == o.labels && canary == o.canary && shadow == o.shadow;
  }
  bool operator!=(const RoutingSpec& o) const { return !(*this == o); }
};

// Checks what needs no knowledge of the loaded versions: labels (see
// ValidateLabel), versions > 0, canary weights in 1..kRouteBuckets summing to
// at most kRouteBuckets with no version twice, shadow fraction in (0, 1].
// INVALID_ARGUMENT naming the offending entry.
absl::Status ValidateRoutingSpec(const RoutingSpec& spec);

// An immutable routing table of one model: its READY versions and the spec,
// checked against them. Thread-compatible (and safe to share once built:
// every method is const).
class RoutingTable {
 public:
  // `ready` are the model's READY versions (any order). Every version the
  // spec references must be among them: otherwise FAILED_PRECONDITION naming
  // the label / canary / shadow, the version and the ready versions. Also the
  // errors of ValidateRoutingSpec. So a table whose label points at a version
  // that is not ready cannot exist.
  //
  // The default version is the one the label `default_label` names, if the
  // spec has it; else the highest ready version that is neither a canary nor
  // the shadow; else the highest ready version; 0 when none is ready.
  static absl::StatusOr<RoutingTable> Build(std::string model, std::vector<int64_t> ready,
                                            RoutingSpec spec,
                                            absl::string_view default_label = kDefaultLabel);

  // An empty table (no version ready).
  explicit RoutingTable(std::string model = "") : model_(std::move(model)) {}

  const std::string& model() const { return model_; }
  const std::vector<int64_t>& ready_versions() const { return ready_; }  // ascending
  bool IsReady(int64_t version) const;
  int64_t default_version() const { return default_version_; }  // 0: none
  const RoutingSpec& spec() const { return spec_; }
  std::string DebugString() const;

 private:
  std::string model_;
  std::vector<int64_t> ready_;
  RoutingSpec spec_;
  int64_t default_version_ = 0;
};

// How a request's primary version was chosen.
enum class RouteKind { kDefault, kCanary, kNumber, kLabel };

struct RouteResult {
  int64_t version = 0;  // the primary: answers the request
  RouteKind kind = RouteKind::kDefault;
  // Also send a copy of the request here (its answer is only compared).
  std::optional<int64_t> shadow_version;
};

// Routes one request. Pure: the same arguments give the same answer.
//
// - A number goes to that version, a label to the version it names; if there
//   is no such ready version / label: NOT_FOUND naming the model, what was
//   asked for and what exists (the ready versions, the labels).
// - The default (unpinned): UNAVAILABLE when no version is ready. Else a
//   bucket b in [0, kRouteBuckets): KeyBucket(routing_key) when the key is not
//   empty (so a key always lands on the same version while the table holds),
//   else DrawBucket(draw). Canary i of spec().canary takes the buckets
//   [T - (w_0+..+w_i), T - (w_0+..+w_{i-1})), T = kRouteBuckets: the first
//   canary at the top, the default version below all canaries. So raising a
//   canary's weight never moves a key back to the default version nor off
//   that canary; with one canary (or for the last one) keys move only from
//   the default version to it.
// - Shadow (any selector): when the spec has a shadow and the primary is not
//   the shadow version, the request is mirrored if ShadowKeyBucket(key)
//   (or, without a key, ShadowDrawBucket(draw)) is below
//   fraction * kRouteBuckets.
absl::StatusOr<RouteResult> Route(const RoutingTable& table, const VersionSelector& selector,
                                  absl::string_view routing_key, uint64_t draw = 0);

// XXH3_64bits(key) % kRouteBuckets: the same in every process and build.
uint32_t KeyBucket(absl::string_view key);
// XXH3_64bits_withSeed(key, kShadowSeed) % kRouteBuckets: independent of
// KeyBucket, so shadowed keys are not all canary keys.
uint32_t ShadowKeyBucket(absl::string_view key);
// The top 32 bits of `draw` scaled to [0, kRouteBuckets).
uint32_t DrawBucket(uint64_t draw);
// DrawBucket of `draw` passed through a 64-bit mixer.
uint32_t ShadowDrawBucket(uint64_t draw);

// Draws for requests without a routing key: Next() returns successive
// elements of the golden-ratio (Weyl) sequence, whose buckets spread evenly,
// so any window of n requests splits by weight within a few requests.
// Thread-safe, lock-free.
class RouteCounter {
 public:
  uint64_t Next() { return (n_.fetch_add(1, std::memory_order_relaxed) + 1) * kGolden; }

 private:
  static constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
  std::atomic<uint64_t> n_{0};
};

}  // namespace microbatch::lifecycle

#endif  // MICROBATCH_SERVER_CORE_LIFECYCLE_ROUTING_H_
