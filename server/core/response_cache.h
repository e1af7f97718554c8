// A bounded response cache for one model version, with single flight: a
// request whose exact inputs were answered before is answered from memory;
// one whose twin is already running waits for that run instead of running
// again.
#ifndef MICROBATCH_SERVER_CORE_RESPONSE_CACHE_H_
#define MICROBATCH_SERVER_CORE_RESPONSE_CACHE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tensor/tensor.h"
#include "server/core/sync.h"

namespace microbatch {

// Every output of the model for one request, owned. Immutable once built.
struct CachedResponse {
  // Views into `storage`, in signature order; the first dimension is `rows`.
  std::vector<TensorView> outputs;
  std::string storage;
  int64_t rows = 0;

  // Copies `outputs` (each with `rows` rows; `data` of output i in
  // `bytes[i]`).
  static std::shared_ptr<const CachedResponse> Copy(absl::Span<const DType> dtypes,
                                                    absl::Span<const std::vector<int64_t>> shapes,
                                                    absl::Span<const absl::string_view> bytes,
                                                    int64_t rows);
};

struct ResponseCacheOptions {
  // Bytes the entries (key and outputs) may take; the least recently used go
  // first. An answer larger than this is not cached. Default 64 MiB.
  int64_t max_bytes = int64_t{64} << 20;
  // Hash of a key. Default: XXH3 (64 bits) of the key's pieces as they lie
  // (a set hash is given them joined). Keys are always compared in full, so
  // a collision never returns another request's answer (tests inject a hash
  // that always collides).
  std::function<uint64_t(absl::string_view)> hash;
};

// Thread-safe.
class ResponseCache {
 public:
  // Called with the leader's answer when it is in, or with null when the
  // leader failed (the waiter then runs its request itself). Runs on the
  // thread that completes the flight, without the cache's lock.
  using Waiter = std::function<void(std::shared_ptr<const CachedResponse>)>;
  // The one request computing an answer for a key.
  class Flight;

  struct Lookup {
    // A hit: the answer.
    std::shared_ptr<const CachedResponse> hit;
    // The key is being computed: `waiter` will be called.
    bool joined = false;
    // A miss: the caller computes the answer and must call Complete (with
    // the answer or null), exactly once.
    std::shared_ptr<Flight> lead;
  };

  struct Stats {
    int64_t hits = 0;
    int64_t misses = 0;     // lookups that led a computation
    int64_t joined = 0;     // lookups that waited for another's computation
    int64_t evictions = 0;
    int64_t bytes = 0;
    int64_t entries = 0;
  };

  explicit ResponseCache(ResponseCacheOptions options);
  ~ResponseCache();
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  // Looks up the key made of `pieces` (not owned; the key is their
  // concatenation: the exact bytes that identify a request). Hits and joins
  // hash and compare the pieces where they lie; only a lookup that leads
  // copies them, without holding the cache's lock. `waiter` is kept only
  // when the result says joined. Of concurrent lookups of one absent key,
  // exactly one leads.
  Lookup Find(absl::Span<const absl::string_view> pieces, Waiter waiter);
  // The same for a key in one piece.
  Lookup Find(absl::string_view key, Waiter waiter) { return Find(absl::MakeConstSpan(&key, 1), std::move(waiter)); }
  // Ends `flight`: caches `answer` (unless null or too large) and calls the
  // flight's waiters with it.
  void Complete(const std::shared_ptr<Flight>& flight, std::shared_ptr<const CachedResponse> answer);

  Stats stats() const;

 private:
  struct Entry {
    std::string key;
    uint64_t hash = 0;
    std::shared_ptr<const CachedResponse> answer;
    int64_t bytes = 0;
  };
  using Lru = std::list<Entry>;

  // A hit (fills result->hit) or a join (keeps *waiter, sets
  // result->joined): true. Neither: false, nothing changed.
  bool FindLocked(uint64_t hash, absl::Span<const absl::string_view> pieces, Waiter* waiter,
                  Lookup* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ResponseCacheOptions options_;
  mutable Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // most recently used first
  std::unordered_multimap<uint64_t, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  std::unordered_multimap<uint64_t, std::shared_ptr<Flight>> flights_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_CORE_RESPONSE_CACHE_H_
