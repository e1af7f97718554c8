// What a /metrics scrape returns: the families of a prometheus-cpp Registry
// plus those of other Collectables (scrape-time collectors), serialized in
// the Prometheus text format 0.0.4 by prometheus-cpp's TextSerializer.
//
//   auto registry = std::make_shared<prometheus::Registry>();
//   Exposition exposition;
//   exposition.Add(registry);
//   exposition.Add(std::make_shared<ProcessCollector>());
//   std::string text = exposition.Serialize();
#ifndef MICROBATCH_SERVER_METRICS_EXPOSITION_H_
#define MICROBATCH_SERVER_METRICS_EXPOSITION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "absl/base/thread_annotations.h"
#include "server/core/sync.h"

namespace microbatch {
namespace metrics {

// A Collectable whose families come from a function called at each scrape.
// The function must be thread-safe (scrapes may overlap).
class FunctionCollector final : public prometheus::Collectable {
 public:
  explicit FunctionCollector(std::function<std::vector<prometheus::MetricFamily>()> collect)
      : collect_(std::move(collect)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return collect_(); }

 private:
  const std::function<std::vector<prometheus::MetricFamily>()> collect_;
};

// Thread-safe: Add and Serialize may run concurrently. Collectables are held
// weakly: one that has been destroyed is skipped (and forgotten).
class Exposition {
 public:
  // Appends `collectable`; its families are serialized after those added
  // before it.
  void Add(std::weak_ptr<prometheus::Collectable> collectable);

  // Every family of every live collectable, in the order they were added.
  std::vector<prometheus::MetricFamily> Collect() const;
  // Collect(), in the text exposition format 0.0.4. Families without any
  // sample are left out (prometheus-cpp writes their HELP/TYPE only when they
  // have samples).
  std::string Serialize() const;

 private:
  mutable Mutex mu_;
  mutable std::vector<std::weak_ptr<prometheus::Collectable>> collectables_ ABSL_GUARDED_BY(mu_);
};

}  // namespace metrics
}  // namespace microbatch

#endif  // MICROBATCH_SERVER_METRICS_EXPOSITION_H_
