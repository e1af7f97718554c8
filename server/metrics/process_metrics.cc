#include "server/metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>

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

// An unlabeled collector: one sample when `read` succeeds, none otherwise.
Collector CollectOne(std::function<std::optional<double>()> read) {
  return [read = std::move(read)] {
    std::vector<Sample> samples;
    if (std::optional<double> value = read()) samples.push_back({{}, *value});
    return samples;
  };
}

}  // namespace

absl::Status RegisterProcessMetrics(Registry* registry) {
  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page_bytes = static_cast<double>(sysconf(_SC_PAGESIZE));
  std::optional<ProcStat> stat = ReadProcStat();
  std::optional<double> boot_time = BootTimeSeconds();
  if (!stat || !boot_time || ticks_per_second <= 0 || page_bytes <= 0) {
    return absl::UnavailableError("cannot read /proc/self/stat or /proc/stat");
  }

  absl::StatusOr<Family<Gauge>*> start_time =
      registry->AddGauge("process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.");
  if (!start_time.ok()) return start_time.status();
  (*start_time)->WithLabels({})->Set(*boot_time + stat->start_ticks / ticks_per_second);

  struct Callback {
    MetricType type;
    const char* name;
    const char* help;
    std::function<std::optional<double>()> read;
  };
  const Callback callbacks[] = {
      {MetricType::kCounter, "process_cpu_seconds_total",
       "Total user and system CPU time spent in seconds.",
       [ticks_per_second]() -> std::optional<double> {
         std::optional<ProcStat> s = ReadProcStat();
         if (!s) return std::nullopt;
         return (s->utime_ticks + s->stime_ticks) / ticks_per_second;
       }},
      {MetricType::kGauge, "process_resident_memory_bytes", "Resident memory size in bytes.",
       [page_bytes]() -> std::optional<double> {
         std::optional<ProcStat> s = ReadProcStat();
         if (!s) return std::nullopt;
         return s->rss_pages * page_bytes;
       }},
      {MetricType::kGauge, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
       []() -> std::optional<double> {
         std::optional<ProcStat> s = ReadProcStat();
         if (!s) return std::nullopt;
         return s->vsize_bytes;
       }},
      {MetricType::kGauge, "process_open_fds", "Number of open file descriptors.", OpenFds},
      {MetricType::kGauge, "process_max_fds", "Maximum number of open file descriptors.",
       MaxFds},
  };
  for (const Callback& callback : callbacks) {
    absl::Status status =
        registry->AddCallback(callback.type, callback.name, callback.help, {},
                              CollectOne(callback.read));
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status RegisterBuildInfo(Registry* registry,
                               const std::vector<std::pair<std::string, std::string>>& labels) {
  std::vector<std::string> names, values;
  for (const auto& [name, value] : labels) {
    names.push_back(name);
    values.push_back(value);
  }
  absl::StatusOr<Family<Gauge>*> family = registry->AddGauge(
      "microbatch_build_info", "Build information; the value is always 1.", std::move(names));
  if (!family.ok()) return family.status();
  (*family)->WithLabels(values)->Set(1);
  return absl::OkStatus();
}

}  // namespace metrics
}  // namespace microbatch
