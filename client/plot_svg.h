// A small, dependency-free SVG line chart for latency-throughput curves.
#ifndef MICROBATCH_CLIENT_PLOT_SVG_H_
#define MICROBATCH_CLIENT_PLOT_SVG_H_

#include <string>
#include <vector>

namespace microbatch {
namespace bench {

struct PlotPoint {
  double x = 0;
  double y = 0;
  std::string label;  // drawn next to the point (e.g. "c=8"); may be empty
};

struct PlotSeries {
  std::string name;   // legend entry
  std::string color;  // any SVG color, e.g. "#1f77b4"
  bool dashed = false;
  std::vector<PlotPoint> points;  // joined in the given order
};

// 1-2-5 ticks covering [lo, hi] with about `target` steps; lo <= hi.
std::vector<double> NiceTicks(double lo, double hi, int target);

// A standalone SVG document: linear axes from 0 to the largest value (with
// ticks), one polyline with dots per series, a legend and a title.
std::string LineChartSvg(const std::string& title, const std::string& x_label,
                         const std::string& y_label, const std::vector<PlotSeries>& series);

}  // namespace bench
}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_PLOT_SVG_H_
