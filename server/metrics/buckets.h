// Bucket layouts shared by the server's histograms. Dashboards and the
// PrometheusRule in deploy/ depend on them: change them only on purpose.
#ifndef MICROBATCH_SERVER_METRICS_BUCKETS_H_
#define MICROBATCH_SERVER_METRICS_BUCKETS_H_

#include <prometheus/histogram.h>

namespace microbatch {
namespace metrics {

// Request, queue and compute latency in seconds: 50us, 100us, 250us, 500us,
// 1ms, ... (1-2.5-5 steps) ..., 5s, 10s.
prometheus::Histogram::BucketBoundaries LatencySecondsBuckets();
// Batch sizes in rows: 1, 2, 4, ..., 1024.
prometheus::Histogram::BucketBoundaries BatchSizeBuckets();

}  // namespace metrics
}  // namespace microbatch

#endif  // MICROBATCH_SERVER_METRICS_BUCKETS_H_
