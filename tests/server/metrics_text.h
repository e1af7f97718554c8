// Reading samples out of a Prometheus text exposition, for tests.
#ifndef MICROBATCH_TESTS_SERVER_METRICS_TEXT_H_
#define MICROBATCH_TESTS_SERVER_METRICS_TEXT_H_

#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <utility>

namespace microbatch::testing {

// A series written as `name{a="x",b="y"}` (or just `name`) split into its
// name and label set, so that label order does not matter.
inline std::pair<std::string, std::map<std::string, std::string>> ParseSeries(const std::string& series) {
  std::map<std::string, std::string> labels;
  const size_t brace = series.find('{');
  if (brace == std::string::npos) return {series, labels};
  static const std::regex kPair(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  const std::string body = series.substr(brace);
  for (std::sregex_iterator it(body.begin(), body.end(), kPair), end; it != end; ++it) {
    labels[(*it)[1]] = (*it)[2];
  }
  return {series.substr(0, brace), labels};
}

// The value of the sample whose name and label set equal those of `series`,
// or -1.
inline double Sample(const std::string& exposition, const std::string& series) {
  const auto wanted = ParseSeries(series);
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    if (ParseSeries(line.substr(0, space)) == wanted) return std::stod(line.substr(space + 1));
  }
  return -1;
}

}  // namespace microbatch::testing

#endif  // MICROBATCH_TESTS_SERVER_METRICS_TEXT_H_
