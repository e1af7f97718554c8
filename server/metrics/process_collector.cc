#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <prometheus/client_metric.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace microbatch {
namespace metrics {
namespace {

// The whole content of a (size-less) procfs file, or nullopt.
std::optional<std::string> ReadFile(const char* path) {
  FILE* file = std::fopen(path, "r");
  if (file == nullptr) return std::nullopt;
  std::string content;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0) content.append(buf, n);
  std::fclose(file);
  return content;
}

// The fields of /proc/self/stat this file uses (see proc(5)).
struct ProcStat {
  double utime_ticks = 0;
  double stime_ticks = 0;
  double start_ticks = 0;  // since boot
  double vsize_bytes = 0;
  double rss_pages = 0;
};

std::optional<ProcStat> ReadProcStat() {
  std::optional<std::string> content = ReadFile("/proc/self/stat");
  if (!content) return std::nullopt;
  // The command name (field 2) may contain spaces and parentheses; fields
  // from 3 on follow the last ')'.
  size_t paren = content->rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*content).substr(paren + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state), so field k is fields[k - 3].
  auto field = [&fields](size_t k, double* out) {
    uint64_t value;
    if (fields.size() <= k - 3 || !absl::SimpleAtoi(fields[k - 3], &value)) return false;
    *out = static_cast<double>(value);
    return true;
  };
  ProcStat stat;
  if (!field(14, &stat.utime_ticks) || !field(15, &stat.stime_ticks) ||
      !field(22, &stat.start_ticks) || !field(23, &stat.vsize_bytes) ||
      !field(24, &stat.rss_pages)) {
    return std::nullopt;
  }
  return stat;
}

std::optional<double> BootTimeSeconds() {
  std::optional<std::string> content = ReadFile("/proc/stat");
  if (!content) return std::nullopt;
  for (absl::string_view line : absl::StrSplit(*content, '\n')) {
    int64_t btime;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtoi(line, &btime)) {
      return static_cast<double>(btime);
    }
  }
  return std::nullopt;
}

std::optional<double> OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  const std::string own_fd = absl::StrCat(dirfd(dir));
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (name != "." && name != ".." && name != own_fd) ++count;
  }
  closedir(dir);
  return count;
}

std::optional<double> MaxFds() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
  if (limit.rlim_cur == RLIM_INFINITY) return INFINITY;
  return static_cast<double>(limit.rlim_cur);
}

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

ProcessCollector::ProcessCollector()
    : ticks_per_second_(static_cast<double>(sysconf(_SC_CLK_TCK))),
      page_bytes_(static_cast<double>(sysconf(_SC_PAGESIZE))),
      start_time_seconds_(NAN) {
  std::optional<ProcStat> stat = ReadProcStat();
  std::optional<double> boot_time = BootTimeSeconds();
  if (stat && boot_time && ticks_per_second_ > 0) {
    start_time_seconds_ = *boot_time + stat->start_ticks / ticks_per_second_;
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;
  if (std::optional<ProcStat> s = ReadProcStat(); s && ticks_per_second_ > 0) {
    families.push_back(Family("process_cpu_seconds_total",
                              "Total user and system CPU time spent in seconds.",
                              MetricType::Counter,
                              (s->utime_ticks + s->stime_ticks) / ticks_per_second_));
    families.push_back(Family("process_resident_memory_bytes", "Resident memory size in bytes.",
                              MetricType::Gauge, s->rss_pages * page_bytes_));
    families.push_back(Family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                              MetricType::Gauge, s->vsize_bytes));
  }
  if (std::optional<double> fds = OpenFds()) {
    families.push_back(Family("process_open_fds", "Number of open file descriptors.",
                              MetricType::Gauge, *fds));
  }
  if (std::optional<double> max = MaxFds()) {
    families.push_back(Family("process_max_fds", "Maximum number of open file descriptors.",
                              MetricType::Gauge, *max));
  }
  if (!std::isnan(start_time_seconds_)) {
    families.push_back(Family("process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.",
                              MetricType::Gauge, start_time_seconds_));
  }
  return families;
}

}  // namespace metrics
}  // namespace microbatch
