#include "server/core/lifecycle/version_policy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch::lifecycle {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(VersionPolicyTest, DefaultIsLatestOne) {
  VersionPolicy policy;
  EXPECT_EQ(policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(policy.num_versions, 1);
  EXPECT_EQ(policy.DebugString(), "latest 1");
  EXPECT_THAT(SelectVersions(policy, {1, 3, 2}), ElementsAre(3));
}

TEST(VersionPolicyTest, LatestN) {
  EXPECT_THAT(SelectVersions(VersionPolicy::Latest(2), {4, 1, 9, 3}), ElementsAre(4, 9));
  // Fewer on disk than wanted: all of them.
  EXPECT_THAT(SelectVersions(VersionPolicy::Latest(5), {2, 1}), ElementsAre(1, 2));
  EXPECT_THAT(SelectVersions(VersionPolicy::Latest(1), {}), IsEmpty());
}

TEST(VersionPolicyTest, All) {
  EXPECT_THAT(SelectVersions(VersionPolicy::All(), {7, 2, 5}), ElementsAre(2, 5, 7));
  EXPECT_EQ(VersionPolicy::All().DebugString(), "all");
}

TEST(VersionPolicyTest, SpecificServesOnlyListedVersionsThatExist) {
  const VersionPolicy policy = VersionPolicy::Specific({3, 1, 8});
  EXPECT_THAT(SelectVersions(policy, {1, 2, 3, 4}), ElementsAre(1, 3));
  EXPECT_THAT(SelectVersions(policy, {2, 4}), IsEmpty());
  EXPECT_EQ(policy.DebugString(), "specific {3, 1, 8}");
}

TEST(VersionPolicyTest, IgnoresDuplicatesAndNonPositiveVersionsOnDisk) {
  EXPECT_THAT(SelectVersions(VersionPolicy::All(), {3, 3, 0, -2, 1}), ElementsAre(1, 3));
  EXPECT_THAT(SelectVersions(VersionPolicy::Latest(2), {5, 5, 5, 0}), ElementsAre(5));
}

TEST(VersionPolicyTest, ValidatesPolicies) {
  EXPECT_TRUE(ValidateVersionPolicy(VersionPolicy()).ok());
  EXPECT_TRUE(ValidateVersionPolicy(VersionPolicy::All()).ok());
  EXPECT_TRUE(ValidateVersionPolicy(VersionPolicy::Specific({1})).ok());

  absl::Status zero = ValidateVersionPolicy(VersionPolicy::Latest(0));
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.message(), HasSubstr("at least 1"));
  EXPECT_EQ(ValidateVersionPolicy(VersionPolicy::Specific({})).code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status negative = ValidateVersionPolicy(VersionPolicy::Specific({2, -1}));
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.message(), HasSubstr("-1"));
  // An invalid policy selects nothing.
  EXPECT_THAT(SelectVersions(VersionPolicy::Latest(0), {1, 2}), IsEmpty());
}

TEST(VersionPolicyTest, Equality) {
  EXPECT_EQ(VersionPolicy::Specific({2, 1, 2}), VersionPolicy::Specific({1, 2}));
  EXPECT_NE(VersionPolicy::Latest(1), VersionPolicy::Latest(2));
  EXPECT_NE(VersionPolicy::Latest(1), VersionPolicy::All());
  EXPECT_EQ(VersionPolicy(), VersionPolicy::Latest());
}

}  // namespace
}  // namespace microbatch::lifecycle
