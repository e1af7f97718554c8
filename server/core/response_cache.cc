#include "server/core/response_cache.h"

#include <cstring>
#include <iterator>
#include <utility>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace microbatch {

class ResponseCache::Flight {
 public:
  std::string key;
  uint64_t hash = 0;
  std::vector<Waiter> waiters;  // guarded by the cache's mu_
  bool completed = false;       // guarded by the cache's mu_
};

std::shared_ptr<const CachedResponse> CachedResponse::Copy(
    absl::Span<const DType> dtypes, absl::Span<const std::vector<int64_t>> shapes,
    absl::Span<const absl::string_view> bytes, int64_t rows) {
  auto response = std::make_shared<CachedResponse>();
  size_t total = 0;
  for (absl::string_view b : bytes) total += (b.size() + 63) / 64 * 64;  // keep each output aligned
  response->storage.resize(total);
  response->rows = rows;
  size_t offset = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::memcpy(response->storage.data() + offset, bytes[i].data(), bytes[i].size());
    TensorView view;
    view.dtype = dtypes[i];
    view.shape = shapes[i];
    view.data = response->storage.data() + offset;
    view.byte_size = bytes[i].size();
    response->outputs.push_back(std::move(view));
    offset += (bytes[i].size() + 63) / 64 * 64;
  }
  return response;
}

ResponseCache::ResponseCache(ResponseCacheOptions options) : options_(std::move(options)) {}

ResponseCache::~ResponseCache() = default;

namespace {

std::string Join(absl::Span<const absl::string_view> pieces) {
  size_t size = 0;
  for (absl::string_view piece : pieces) size += piece.size();
  std::string joined;
  joined.reserve(size);
  for (absl::string_view piece : pieces) joined.append(piece.data(), piece.size());
  return joined;
}

uint64_t Xxh3(absl::Span<const absl::string_view> pieces) {
  if (pieces.size() == 1) return XXH3_64bits(pieces[0].data(), pieces[0].size());
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  for (absl::string_view piece : pieces) XXH3_64bits_update(&state, piece.data(), piece.size());
  return XXH3_64bits_digest(&state);
}

// Whether `key` is the concatenation of `pieces`.
bool SameKey(const std::string& key, absl::Span<const absl::string_view> pieces) {
  size_t offset = 0;
  for (absl::string_view piece : pieces) {
    if (key.size() - offset < piece.size() ||
        (!piece.empty() && std::memcmp(key.data() + offset, piece.data(), piece.size()) != 0)) {
      return false;
    }
    offset += piece.size();
  }
  return offset == key.size();
}

}  // namespace

bool ResponseCache::FindLocked(uint64_t hash, absl::Span<const absl::string_view> pieces,
                               Waiter* waiter, Lookup* result) {
  auto [begin, end] = index_.equal_range(hash);
  for (auto it = begin; it != end; ++it) {
    if (SameKey(it->second->key, pieces)) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++stats_.hits;
      result->hit = it->second->answer;
      return true;
    }
  }
  auto [fbegin, fend] = flights_.equal_range(hash);
  for (auto it = fbegin; it != fend; ++it) {
    if (SameKey(it->second->key, pieces)) {
      it->second->waiters.push_back(std::move(*waiter));
      ++stats_.joined;
      result->joined = true;
      return true;
    }
  }
  return false;
}

ResponseCache::Lookup ResponseCache::Find(absl::Span<const absl::string_view> pieces, Waiter waiter) {
  const uint64_t hash = options_.hash ? options_.hash(Join(pieces)) : Xxh3(pieces);
  Lookup result;
  {
    MutexLock lock(&mu_);
    if (FindLocked(hash, pieces, &waiter, &result)) return result;
  }
  // A miss. The leader's copy of the key (it may be megabytes) is made
  // without the lock, which other lookups of the model need; then the
  // lookup is repeated, since another caller may have led or completed the
  // same key meanwhile.
  auto flight = std::make_shared<Flight>();
  flight->key = Join(pieces);
  flight->hash = hash;
  MutexLock lock(&mu_);
  if (FindLocked(hash, pieces, &waiter, &result)) return result;
  flights_.emplace(hash, flight);
  ++stats_.misses;
  result.lead = std::move(flight);
  return result;
}

void ResponseCache::Complete(const std::shared_ptr<Flight>& flight,
                             std::shared_ptr<const CachedResponse> answer) {
  std::vector<Waiter> waiters;
  {
    MutexLock lock(&mu_);
    if (flight->completed) return;
    flight->completed = true;
    auto [begin, end] = flights_.equal_range(flight->hash);
    for (auto it = begin; it != end; ++it) {
      if (it->second == flight) {
        flights_.erase(it);
        break;
      }
    }
    waiters = std::move(flight->waiters);
    if (answer != nullptr) {
      const int64_t bytes = static_cast<int64_t>(flight->key.size() + answer->storage.size());
      if (bytes <= options_.max_bytes) {
        // No lookup reads a completed flight's key: it moves to its entry.
        lru_.push_front(Entry{std::move(flight->key), flight->hash, answer, bytes});
        index_.emplace(flight->hash, lru_.begin());
        stats_.bytes += bytes;
        ++stats_.entries;
        EvictLocked();
      }
    }
  }
  for (Waiter& waiter : waiters) waiter(answer);
}

void ResponseCache::EvictLocked() {
  while (stats_.bytes > options_.max_bytes && !lru_.empty()) {
    Entry& victim = lru_.back();
    auto [begin, end] = index_.equal_range(victim.hash);
    for (auto it = begin; it != end; ++it) {
      if (it->second == std::prev(lru_.end())) {
        index_.erase(it);
        break;
      }
    }
    stats_.bytes -= victim.bytes;
    --stats_.entries;
    ++stats_.evictions;
    lru_.pop_back();
  }
}

ResponseCache::Stats ResponseCache::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace microbatch
