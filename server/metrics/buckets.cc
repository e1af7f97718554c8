#include "server/metrics/buckets.h"

namespace microbatch {
namespace metrics {

prometheus::Histogram::BucketBoundaries LatencySecondsBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

prometheus::Histogram::BucketBoundaries BatchSizeBuckets() {
  prometheus::Histogram::BucketBoundaries bounds;
  for (double b = 1; b <= 1024; b *= 2) bounds.push_back(b);
  return bounds;
}

}  // namespace metrics
}  // namespace microbatch
