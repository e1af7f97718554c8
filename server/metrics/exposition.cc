#include "server/metrics/exposition.h"

#include <prometheus/text_serializer.h>

#include <algorithm>

namespace microbatch {
namespace metrics {

void Exposition::Add(std::weak_ptr<prometheus::Collectable> collectable) {
  MutexLock lock(&mu_);
  collectables_.push_back(std::move(collectable));
}

std::vector<prometheus::MetricFamily> Exposition::Collect() const {
  std::vector<std::shared_ptr<prometheus::Collectable>> live;
  {
    MutexLock lock(&mu_);
    collectables_.erase(std::remove_if(collectables_.begin(), collectables_.end(),
                                       [](const auto& c) { return c.expired(); }),
                        collectables_.end());
    for (const auto& weak : collectables_) {
      if (auto strong = weak.lock()) live.push_back(std::move(strong));
    }
  }
  // Collect without the lock: collectors may take locks of their own.
  std::vector<prometheus::MetricFamily> families;
  for (const auto& collectable : live) {
    std::vector<prometheus::MetricFamily> more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return families;
}

std::string Exposition::Serialize() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace metrics
}  // namespace microbatch
