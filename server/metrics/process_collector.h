// The standard Prometheus process metrics, read from /proc at each scrape.
#ifndef MICROBATCH_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define MICROBATCH_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace microbatch {
namespace metrics {

// Collects (Linux only):
//   process_cpu_seconds_total      user + system CPU time (counter)
//   process_resident_memory_bytes  resident set size
//   process_virtual_memory_bytes   virtual memory size
//   process_open_fds               open file descriptors
//   process_max_fds                soft RLIMIT_NOFILE (+Inf when unlimited)
//   process_start_time_seconds     Unix time the process started (computed
//                                  once, at construction)
// A metric whose source cannot be read at scrape time is left out.
// Thread-safe: Collect() may run concurrently.
class ProcessCollector final : public prometheus::Collectable {
 public:
  ProcessCollector();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  double ticks_per_second_;
  double page_bytes_;
  double start_time_seconds_;  // NaN when /proc could not be read
};

}  // namespace metrics
}  // namespace microbatch

#endif  // MICROBATCH_SERVER_METRICS_PROCESS_COLLECTOR_H_
