#include "server/core/lifecycle/routing.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch::lifecycle {
namespace {

using ::testing::HasSubstr;

RoutingTable Table(std::vector<int64_t> ready, RoutingSpec spec = {}) {
  absl::StatusOr<RoutingTable> table = RoutingTable::Build("mlp", std::move(ready), std::move(spec));
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *std::move(table) : RoutingTable("mlp");
}

int64_t RouteKey(const RoutingTable& table, const std::string& key) {
  absl::StatusOr<RouteResult> r = Route(table, VersionSelector::Default(), key);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->version : -1;
}

TEST(VersionSelectorTest, ParsesV2VersionStrings) {
  EXPECT_EQ(*ParseVersionSelector(""), VersionSelector::Default());
  EXPECT_EQ(*ParseVersionSelector("0"), VersionSelector::Default());
  EXPECT_EQ(*ParseVersionSelector("3"), VersionSelector::Number(3));
  EXPECT_EQ(*ParseVersionSelector("0012"), VersionSelector::Number(12));
  EXPECT_EQ(*ParseVersionSelector("stable"), VersionSelector::Label("stable"));
  EXPECT_EQ(*ParseVersionSelector("canary-2.b_x"), VersionSelector::Label("canary-2.b_x"));
  EXPECT_EQ(ParseVersionSelector("-1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseVersionSelector("+1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseVersionSelector("99999999999999999999").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseVersionSelector("3a").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseVersionSelector("a b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseVersionSelector(std::string(65, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VersionSelector::Label("x").DebugString(), "label 'x'");
  EXPECT_EQ(VersionSelector::Number(4).DebugString(), "version 4");
}

TEST(RoutingTableTest, DefaultIsHighestReadyVersion) {
  RoutingTable table = Table({3, 1, 2});
  EXPECT_EQ(table.default_version(), 3);
  EXPECT_THAT(table.ready_versions(), ::testing::ElementsAre(1, 2, 3));
  absl::StatusOr<RouteResult> r = Route(table, VersionSelector::Default(), "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->version, 3);
  EXPECT_EQ(r->kind, RouteKind::kDefault);
  EXPECT_FALSE(r->shadow_version.has_value());
}

TEST(RoutingTableTest, StableLabelNamesTheDefault) {
  RoutingSpec spec;
  spec.labels = {{"stable", 1}, {"canary", 2}};
  RoutingTable table = Table({1, 2}, spec);
  EXPECT_EQ(table.default_version(), 1);
  // Another default label, or none.
  EXPECT_EQ(RoutingTable::Build("mlp", {1, 2}, spec, "")->default_version(), 2);
  EXPECT_EQ(RoutingTable::Build("mlp", {1, 2}, spec, "canary")->default_version(), 2);
}

TEST(RoutingTableTest, CanaryAndShadowVersionsAreNotTheDefault) {
  RoutingSpec spec;
  spec.canary = {{3, 500}};
  spec.shadow = ShadowSpec{2, 0.5};
  EXPECT_EQ(Table({1, 2, 3}, spec).default_version(), 1);
  // Nothing else ready: the highest.
  RoutingSpec only;
  only.canary = {{3, 500}};
  EXPECT_EQ(Table({3}, only).default_version(), 3);
}

TEST(RoutingTableTest, NamesOnlyReadyVersions) {
  RoutingSpec label;
  label.labels = {{"stable", 4}};
  absl::StatusOr<RoutingTable> t = RoutingTable::Build("mlp", {1, 2}, label);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(t.status().message(), HasSubstr("label 'stable'"));
  EXPECT_THAT(t.status().message(), HasSubstr("version 4"));
  EXPECT_THAT(t.status().message(), HasSubstr("ready: 1, 2"));

  RoutingSpec canary;
  canary.canary = {{5, 10}};
  EXPECT_EQ(RoutingTable::Build("mlp", {1}, canary).status().code(),
            absl::StatusCode::kFailedPrecondition);
  RoutingSpec shadow;
  shadow.shadow = ShadowSpec{5, 0.1};
  EXPECT_EQ(RoutingTable::Build("mlp", {1}, shadow).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RoutingTableTest, ValidatesSpec) {
  auto code = [](RoutingSpec spec) {
    return RoutingTable::Build("mlp", {1, 2, 3}, std::move(spec)).status().code();
  };
  RoutingSpec s;
  s.labels = {{"9lives", 1}};
  EXPECT_EQ(code(s), absl::StatusCode::kInvalidArgument);
  s = {};
  s.canary = {{2, 0}};
  EXPECT_EQ(code(s), absl::StatusCode::kInvalidArgument);
  s.canary = {{2, 6000}, {3, 4001}};
  EXPECT_EQ(code(s), absl::StatusCode::kInvalidArgument);
  s.canary = {{2, 6000}, {2, 100}};
  EXPECT_EQ(code(s), absl::StatusCode::kInvalidArgument);
  s.canary = {{2, 6000}, {3, 4000}};  // everything to canaries is allowed
  EXPECT_EQ(code(s), absl::StatusCode::kOk);
  s = {};
  s.shadow = ShadowSpec{2, 0};
  EXPECT_EQ(code(s), absl::StatusCode::kInvalidArgument);
  s.shadow = ShadowSpec{2, 1.5};
  EXPECT_EQ(code(s), absl::StatusCode::kInvalidArgument);
  s.shadow = ShadowSpec{2, 1};
  EXPECT_EQ(code(s), absl::StatusCode::kOk);
}

TEST(RouteTest, NumbersAndLabels) {
  RoutingSpec spec;
  spec.labels = {{"stable", 1}, {"canary", 2}};
  RoutingTable table = Table({1, 2}, spec);
  EXPECT_EQ(Route(table, VersionSelector::Number(2), "")->version, 2);
  EXPECT_EQ(Route(table, VersionSelector::Number(2), "")->kind, RouteKind::kNumber);
  EXPECT_EQ(Route(table, VersionSelector::Label("canary"), "")->version, 2);
  EXPECT_EQ(Route(table, VersionSelector::Label("canary"), "")->kind, RouteKind::kLabel);

  absl::Status missing = Route(table, VersionSelector::Number(7), "").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("model 'mlp' has no ready version 7 (ready: 1, 2)"));
  absl::Status no_label = Route(table, VersionSelector::Label("beta"), "").status();
  EXPECT_EQ(no_label.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(no_label.message(),
              HasSubstr("model 'mlp' has no version label 'beta' (labels: canary=2, stable=1)"));
}

TEST(RouteTest, NothingReady) {
  RoutingTable table("mlp");
  absl::Status s = Route(table, VersionSelector::Default(), "k").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("model 'mlp' has no ready version"));
  EXPECT_THAT(Route(table, VersionSelector::Number(1), "").status().message(),
              HasSubstr("ready: none"));
}

TEST(RouteTest, KeyBucketIsStableAcrossBuilds) {
  // XXH3_64bits: fixed by the xxHash specification, so a key keeps its
  // bucket across processes, machines and releases.
  EXPECT_EQ(KeyBucket("request-42"), 0xddad967e24e5cc27ull % kRouteBuckets);
  EXPECT_EQ(KeyBucket("user-7"), 3038u);
  EXPECT_EQ(KeyBucket("abc"), 9104u);
  EXPECT_NE(ShadowKeyBucket("request-42"), KeyBucket("request-42"));
}

TEST(RouteTest, CanaryIsStickyByKey) {
  RoutingSpec spec;
  spec.canary = {{2, 3000}};
  RoutingTable table = Table({1, 2}, spec);
  for (int i = 0; i < 200; ++i) {
    const std::string key = absl::StrCat("req-", i);
    const int64_t first = RouteKey(table, key);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(RouteKey(table, key), first);
    // The bucket decides: the top 3000 buckets are the canary's.
    EXPECT_EQ(first, KeyBucket(key) >= 7000 ? 2 : 1) << key;
  }
}

TEST(RouteTest, CanaryWeightsSplitKeys) {
  RoutingSpec spec;
  spec.canary = {{2, 1000}, {3, 2500}};
  RoutingTable table = Table({1, 2, 3}, spec);
  std::map<int64_t, int> counts;
  const int n = 100000;
  for (int i = 0; i < n; ++i) ++counts[RouteKey(table, absl::StrCat("key", i))];
  EXPECT_NEAR(counts[1], 0.65 * n, 0.01 * n);
  EXPECT_NEAR(counts[2], 0.10 * n, 0.01 * n);
  EXPECT_NEAR(counts[3], 0.25 * n, 0.01 * n);
}

TEST(RouteTest, RequestsWithoutKeySplitByWeight) {
  RoutingSpec spec;
  spec.canary = {{2, 1000}};
  RoutingTable table = Table({1, 2}, spec);
  RouteCounter counter;
  int canary = 0;
  const int n = 1000;
  for (int i = 0; i < n; ++i) {
    if (Route(table, VersionSelector::Default(), "", counter.Next())->version == 2) ++canary;
  }
  // The golden-ratio sequence spreads evenly: within a few requests of 10%.
  EXPECT_NEAR(canary, 100, 3);
}

// Which version each of `n` keys goes to.
std::vector<int64_t> Assign(const RoutingTable& table, int n) {
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(RouteKey(table, absl::StrCat("user-", i)));
  return out;
}

TEST(RouteTest, RaisingACanaryWeightOnlyMovesKeysFromStableToIt) {
  const int n = 20000;
  RoutingSpec spec;
  int64_t previous_moved = 0;
  std::vector<int64_t> before;
  for (int32_t weight : {100, 500, 1000, 2500, 5000, 9000, 10000}) {
    spec.canary = {{2, weight}};
    std::vector<int64_t> after = Assign(Table({1, 2}, spec), n);
    int64_t on_canary = 0;
    for (int i = 0; i < n; ++i) {
      if (!before.empty() && before[i] == 2) {
        EXPECT_EQ(after[i], 2) << "key moved back at " << weight;
      }
      if (after[i] == 2) ++on_canary;
    }
    EXPECT_GE(on_canary, previous_moved);
    previous_moved = on_canary;
    before = std::move(after);
  }
  EXPECT_EQ(previous_moved, n);  // weight 10000: everything
}

TEST(RouteTest, RaisingOneOfSeveralCanariesNeverMovesKeysBackToStable) {
  const int n = 20000;
  RoutingSpec spec;
  spec.canary = {{2, 1000}, {3, 500}};
  const std::vector<int64_t> base = Assign(Table({1, 2, 3}, spec), n);

  // The last canary (next to stable): keys come only from stable.
  spec.canary = {{2, 1000}, {3, 1500}};
  std::vector<int64_t> raised_last = Assign(Table({1, 2, 3}, spec), n);
  for (int i = 0; i < n; ++i) {
    if (base[i] != raised_last[i]) {
      EXPECT_EQ(base[i], 1);
      EXPECT_EQ(raised_last[i], 3);
    }
  }
  // The first canary: no key leaves it and none goes back to stable.
  spec.canary = {{2, 3000}, {3, 500}};
  std::vector<int64_t> raised_first = Assign(Table({1, 2, 3}, spec), n);
  for (int i = 0; i < n; ++i) {
    if (base[i] == 2) {
      EXPECT_EQ(raised_first[i], 2);
    }
    if (base[i] != 1) {
      EXPECT_NE(raised_first[i], 1);
    }
  }
}

TEST(RouteTest, ShadowMirrorsAFractionDeterministicallyByKey) {
  RoutingSpec spec;
  spec.shadow = ShadowSpec{3, 0.2};
  RoutingTable table = Table({1, 2, 3}, spec);
  EXPECT_EQ(table.default_version(), 2);
  int mirrored = 0;
  const int n = 50000;
  for (int i = 0; i < n; ++i) {
    const std::string key = absl::StrCat("k", i);
    absl::StatusOr<RouteResult> r = Route(table, VersionSelector::Default(), key);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->version, 2);
    if (r->shadow_version) {
      EXPECT_EQ(*r->shadow_version, 3);
      ++mirrored;
    }
    // Same key, same decision.
    EXPECT_EQ(Route(table, VersionSelector::Default(), key)->shadow_version, r->shadow_version);
  }
  EXPECT_NEAR(mirrored, 0.2 * n, 0.01 * n);
  // Without a key: by the draw.
  RouteCounter counter;
  int drawn = 0;
  for (int i = 0; i < n; ++i) {
    if (Route(table, VersionSelector::Default(), "", counter.Next())->shadow_version) ++drawn;
  }
  EXPECT_NEAR(drawn, 0.2 * n, 0.01 * n);
  // A request already going to the shadow version is not mirrored to it.
  spec.shadow->fraction = 1;
  RoutingTable all = Table({1, 2, 3}, spec);
  EXPECT_FALSE(Route(all, VersionSelector::Number(3), "k")->shadow_version.has_value());
  EXPECT_EQ(Route(all, VersionSelector::Number(1), "k")->shadow_version, 3);
}

}  // namespace
}  // namespace microbatch::lifecycle
