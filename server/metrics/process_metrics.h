// Standard Prometheus process metrics and a build-info gauge.
#ifndef MICROBATCH_SERVER_METRICS_PROCESS_METRICS_H_
#define MICROBATCH_SERVER_METRICS_PROCESS_METRICS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/metrics/metrics.h"

namespace microbatch {
namespace metrics {

// Registers, as scrape-time callbacks reading /proc (Linux only):
//   process_cpu_seconds_total      user + system CPU time
//   process_resident_memory_bytes  resident set size
//   process_virtual_memory_bytes   virtual memory size
//   process_open_fds               open file descriptors
//   process_max_fds                soft RLIMIT_NOFILE (+Inf when unlimited)
//   process_start_time_seconds     Unix time the process started (computed
//                                  once, here)
// A metric whose source cannot be read at scrape time is left without a
// sample. Returns an error when /proc cannot be read now or a name is already
// registered. Thread-safe (see Registry).
absl::Status RegisterProcessMetrics(Registry* registry);

// Registers the gauge `microbatch_build_info{<labels>} 1`, e.g.
// RegisterBuildInfo(&registry, {{"version", "0.1.0"}, {"commit", "abc123"}}).
// Label names are validated as for any family.
absl::Status RegisterBuildInfo(Registry* registry,
                               const std::vector<std::pair<std::string, std::string>>& labels);

}  // namespace metrics
}  // namespace microbatch

#endif  // MICROBATCH_SERVER_METRICS_PROCESS_METRICS_H_
