#include "server/metrics/process_metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <optional>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace metrics {
namespace {

using ::testing::HasSubstr;

// The value of the sample line starting with `series` followed by a space.
std::optional<double> SampleValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

TEST(ProcessMetricsTest, PlausibleValues) {
  Registry registry;
  ASSERT_TRUE(RegisterProcessMetrics(&registry).ok());
  const std::string text = registry.Expose();
  for (const char* type : {"# TYPE process_cpu_seconds_total counter",
                           "# TYPE process_resident_memory_bytes gauge",
                           "# TYPE process_virtual_memory_bytes gauge",
                           "# TYPE process_open_fds gauge", "# TYPE process_max_fds gauge",
                           "# TYPE process_start_time_seconds gauge"}) {
    EXPECT_THAT(text, HasSubstr(type));
  }
  std::optional<double> rss = SampleValue(text, "process_resident_memory_bytes");
  std::optional<double> vsize = SampleValue(text, "process_virtual_memory_bytes");
  ASSERT_TRUE(rss && vsize);
  EXPECT_GT(*rss, 1 << 20);
  EXPECT_GE(*vsize, *rss);
  std::optional<double> cpu = SampleValue(text, "process_cpu_seconds_total");
  ASSERT_TRUE(cpu);
  EXPECT_GE(*cpu, 0);
  std::optional<double> open_fds = SampleValue(text, "process_open_fds");
  std::optional<double> max_fds = SampleValue(text, "process_max_fds");
  ASSERT_TRUE(open_fds && max_fds);
  EXPECT_GE(*open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(*max_fds, *open_fds);
  std::optional<double> start = SampleValue(text, "process_start_time_seconds");
  ASSERT_TRUE(start);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(*start, now + 1);
  EXPECT_GT(*start, now - 3600);
}

TEST(ProcessMetricsTest, OpenFdsCountsNewDescriptors) {
  Registry registry;
  ASSERT_TRUE(RegisterProcessMetrics(&registry).ok());
  const double before = *SampleValue(registry.Expose(), "process_open_fds");
  int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  const double during = *SampleValue(registry.Expose(), "process_open_fds");
  close(fd);
  EXPECT_EQ(during, before + 1);
}

TEST(ProcessMetricsTest, SecondRegistrationFails) {
  Registry registry;
  ASSERT_TRUE(RegisterProcessMetrics(&registry).ok());
  EXPECT_EQ(RegisterProcessMetrics(&registry).code(), absl::StatusCode::kAlreadyExists);
}

TEST(BuildInfoTest, GaugeIsOne) {
  Registry registry;
  ASSERT_TRUE(RegisterBuildInfo(&registry, {{"version", "0.1.0"}, {"commit", "abc\"1"}}).ok());
  EXPECT_EQ(registry.Expose(),
            "# HELP microbatch_build_info Build information; the value is always 1.\n"
            "# TYPE microbatch_build_info gauge\n"
            "microbatch_build_info{version=\"0.1.0\",commit=\"abc\\\"1\"} 1\n");
  Registry other;
  EXPECT_EQ(RegisterBuildInfo(&other, {{"bad-name", "x"}}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace metrics
}  // namespace microbatch
