#include "server/core/response_cache.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace microbatch {
namespace {

// An answer whose single FP32 output holds `value` `n` times.
std::shared_ptr<const CachedResponse> Answer(float value, int n = 1) {
  std::vector<float> values(static_cast<size_t>(n), value);
  const absl::string_view bytes(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  const std::vector<int64_t> shape = {1, n};
  return CachedResponse::Copy({DType::kFloat32}, {shape}, {bytes}, 1);
}

float First(const std::shared_ptr<const CachedResponse>& answer) {
  return *static_cast<const float*>(answer->outputs[0].data);
}

TEST(ResponseCacheTest, MissLeadsThenHits) {
  ResponseCache cache({});
  ResponseCache::Lookup first = cache.Find("key-a", nullptr);
  ASSERT_NE(first.lead, nullptr);
  EXPECT_EQ(first.hit, nullptr);
  cache.Complete(first.lead, Answer(1.5f));
  ResponseCache::Lookup second = cache.Find("key-a", nullptr);
  ASSERT_NE(second.hit, nullptr);
  EXPECT_EQ(First(second.hit), 1.5f);
  EXPECT_EQ(second.hit->outputs[0].shape, (std::vector<int64_t>{1, 1}));
  ResponseCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.misses, 1);
  EXPECT_EQ(stats.entries, 1);
}

// A key is the concatenation of its pieces, wherever they are split; bytes
// that differ anywhere (or a longer or shorter key) are another key.
TEST(ResponseCacheTest, KeysInPiecesAreTheirConcatenation) {
  for (bool colliding : {false, true}) {
    ResponseCacheOptions options;
    if (colliding) options.hash = [](absl::string_view) { return uint64_t{7}; };
    ResponseCache cache(options);
    const std::string a = "header", b = "payload-bytes";
    const absl::string_view lead_pieces[] = {a, b};
    ResponseCache::Lookup lead = cache.Find(lead_pieces, nullptr);
    ASSERT_NE(lead.lead, nullptr);
    cache.Complete(lead.lead, Answer(3.0f));
    EXPECT_NE(cache.Find("headerpayload-bytes", nullptr).hit, nullptr) << colliding;
    const absl::string_view split[] = {"head", "", "erpayload", "-bytes"};
    ASSERT_NE(cache.Find(split, nullptr).hit, nullptr) << colliding;
    EXPECT_EQ(First(cache.Find(split, nullptr).hit), 3.0f);
    const absl::string_view other[] = {"header", "payload-bytez"};
    EXPECT_NE(cache.Find(other, nullptr).lead, nullptr) << colliding;
    const absl::string_view longer[] = {"header", "payload-bytes", "!"};
    EXPECT_NE(cache.Find(longer, nullptr).lead, nullptr) << colliding;
    const absl::string_view shorter[] = {"header", "payload-byte"};
    EXPECT_NE(cache.Find(shorter, nullptr).lead, nullptr) << colliding;
    EXPECT_EQ(cache.stats().hits, 3) << colliding;
  }
}

TEST(ResponseCacheTest, ForcedCollisionsNeverMixAnswers) {
  ResponseCacheOptions options;
  options.hash = [](absl::string_view) { return uint64_t{7}; };  // every key collides
  ResponseCache cache(options);
  for (int i = 0; i < 20; ++i) {
    ResponseCache::Lookup lookup = cache.Find("key-" + std::to_string(i), nullptr);
    ASSERT_NE(lookup.lead, nullptr) << i;
    cache.Complete(lookup.lead, Answer(static_cast<float>(i)));
  }
  for (int i = 19; i >= 0; --i) {
    ResponseCache::Lookup lookup = cache.Find("key-" + std::to_string(i), nullptr);
    ASSERT_NE(lookup.hit, nullptr) << i;
    EXPECT_EQ(First(lookup.hit), static_cast<float>(i));
  }
  // A colliding key never seen is a miss, not someone else's answer.
  ResponseCache::Lookup other = cache.Find("key-x", nullptr);
  EXPECT_EQ(other.hit, nullptr);
  EXPECT_NE(other.lead, nullptr);
  cache.Complete(other.lead, nullptr);
}

TEST(ResponseCacheTest, LeastRecentlyUsedGoFirstWithinTheByteBound) {
  ResponseCacheOptions options;
  // Each entry: 5 key bytes + 64 storage bytes (one float, padded) = 69.
  options.max_bytes = 3 * 69;
  ResponseCache cache(options);
  for (const char* key : {"key-1", "key-2", "key-3"}) {
    cache.Complete(cache.Find(key, nullptr).lead, Answer(1));
  }
  EXPECT_NE(cache.Find("key-1", nullptr).hit, nullptr);  // key-1 is now the most recent
  cache.Complete(cache.Find("key-4", nullptr).lead, Answer(4));
  ResponseCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.evictions, 1);
  EXPECT_EQ(stats.entries, 3);
  EXPECT_LE(stats.bytes, options.max_bytes);
  EXPECT_NE(cache.Find("key-1", nullptr).hit, nullptr);
  EXPECT_NE(cache.Find("key-3", nullptr).hit, nullptr);
  EXPECT_NE(cache.Find("key-4", nullptr).hit, nullptr);
  ResponseCache::Lookup evicted = cache.Find("key-2", nullptr);
  EXPECT_EQ(evicted.hit, nullptr);
  cache.Complete(evicted.lead, nullptr);
}

TEST(ResponseCacheTest, AnswersLargerThanTheBoundAreNotCached) {
  ResponseCacheOptions options;
  options.max_bytes = 100;
  ResponseCache cache(options);
  cache.Complete(cache.Find("big", nullptr).lead, Answer(1, 1000));
  EXPECT_EQ(cache.stats().entries, 0);
  EXPECT_EQ(cache.stats().bytes, 0);
}

TEST(ResponseCacheTest, SingleFlightWaitersGetTheLeadersAnswer) {
  ResponseCache cache({});
  ResponseCache::Lookup lead = cache.Find("same", nullptr);
  ASSERT_NE(lead.lead, nullptr);
  std::vector<float> got;
  for (int i = 0; i < 3; ++i) {
    ResponseCache::Lookup join = cache.Find("same", [&](std::shared_ptr<const CachedResponse> a) {
      got.push_back(a != nullptr ? First(a) : -1);
    });
    EXPECT_TRUE(join.joined);
    EXPECT_EQ(join.lead, nullptr);
  }
  EXPECT_TRUE(got.empty());
  cache.Complete(lead.lead, Answer(2.5f));
  EXPECT_EQ(got, (std::vector<float>{2.5f, 2.5f, 2.5f}));
  EXPECT_EQ(cache.stats().joined, 3);
  // Completing twice changes nothing.
  cache.Complete(lead.lead, Answer(9));
  EXPECT_EQ(First(cache.Find("same", nullptr).hit), 2.5f);
}

TEST(ResponseCacheTest, AFailedLeaderSendsWaitersToRunThemselves) {
  ResponseCache cache({});
  ResponseCache::Lookup lead = cache.Find("k", nullptr);
  bool called = false;
  std::shared_ptr<const CachedResponse> seen = Answer(1);
  cache.Find("k", [&](std::shared_ptr<const CachedResponse> a) {
    called = true;
    seen = a;
  });
  cache.Complete(lead.lead, nullptr);
  EXPECT_TRUE(called);
  EXPECT_EQ(seen, nullptr);
  // Nothing was cached: the next lookup leads again.
  EXPECT_NE(cache.Find("k", nullptr).lead, nullptr);
}

// Under ThreadSanitizer: many threads looking up, leading, joining and
// completing a few keys; every answer seen is the one for its key.
TEST(ResponseCacheTest, ConcurrentLookupsSeeOnlyTheirKeysAnswers) {
  ResponseCacheOptions options;
  options.max_bytes = 4 * 70;  // smaller than the key set: evictions too
  options.hash = [](absl::string_view key) { return static_cast<uint64_t>(key.size() % 2); };
  ResponseCache cache(options);
  std::atomic<int> wrong{0}, answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const int k = (i * 7 + t) % 8;
        const std::string key = "k" + std::string(static_cast<size_t>(k), 'x');
        ResponseCache::Lookup lookup =
            cache.Find(key, [&, k](std::shared_ptr<const CachedResponse> a) {
              if (a != nullptr && First(a) != static_cast<float>(k)) wrong++;
              answered++;
            });
        if (lookup.hit != nullptr) {
          if (First(lookup.hit) != static_cast<float>(k)) wrong++;
          answered++;
        } else if (lookup.lead != nullptr) {
          cache.Complete(lookup.lead, i % 5 == 0 ? nullptr : Answer(static_cast<float>(k)));
          answered++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(answered.load(), 4 * 2000);
}

// Under ThreadSanitizer: threads released together look up one absent key
// (large, so the leader's copy of it takes a while) in each round; exactly
// one leads and every other joins or hits, however the copy and the second
// look under the lock interleave.
TEST(ResponseCacheTest, ConcurrentMissesOfOneKeyHaveOneLeader) {
  ResponseCache cache({});
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::atomic<int> arrived{0};
  std::atomic<int> leads{0}, joins{0}, hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; ++round) {
        const std::string key = std::to_string(round) + std::string(256 << 10, 'k');
        arrived++;
        while (arrived.load() < kThreads * (round + 1)) {
        }
        ResponseCache::Lookup lookup = cache.Find(key, [](std::shared_ptr<const CachedResponse>) {});
        if (lookup.lead != nullptr) {
          leads++;
          cache.Complete(lookup.lead, Answer(static_cast<float>(round)));
        } else if (lookup.joined) {
          joins++;
        } else if (lookup.hit != nullptr) {
          hits++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(leads.load(), kRounds);
  EXPECT_EQ(leads.load() + joins.load() + hits.load(), kThreads * kRounds);
  const ResponseCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.misses, kRounds);
  EXPECT_EQ(stats.joined, joins.load());
  EXPECT_EQ(stats.hits, hits.load());
}

}  // namespace
}  // namespace microbatch
