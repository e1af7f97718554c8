#include "client/plot_svg.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace microbatch {
namespace bench {
namespace {

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string TickLabel(double v) {
  if (v == 0) return "0";
  if (std::fabs(v) >= 1000) return absl::StrFormat("%.0f", v);
  if (std::fabs(v) >= 10) return absl::StrFormat("%.4g", v);
  return absl::StrFormat("%.3g", v);
}

}  // namespace

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + 1;
  if (target < 1) target = 1;
  const double raw = (hi - lo) / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  const double first = std::floor(lo / step) * step;
  for (int i = 0; i < 1000; ++i) {
    const double t = first + i * step;
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
    if (t >= hi - step * 1e-9) break;
  }
  return ticks;
}

std::string LineChartSvg(const std::string& title, const std::string& x_label,
                         const std::string& y_label, const std::vector<PlotSeries>& series) {
  constexpr double kWidth = 760, kHeight = 480;
  constexpr double kLeft = 80, kRight = 170, kTop = 44, kBottom = 60;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  double max_x = 0, max_y = 0;
  for (const PlotSeries& s : series) {
    for (const PlotPoint& p : s.points) {
      if (std::isfinite(p.x)) max_x = std::max(max_x, p.x);
      if (std::isfinite(p.y)) max_y = std::max(max_y, p.y);
    }
  }
  const std::vector<double> xt = NiceTicks(0, max_x > 0 ? max_x : 1, 6);
  const std::vector<double> yt = NiceTicks(0, max_y > 0 ? max_y : 1, 6);
  const double x_max = xt.back(), y_max = yt.back();
  auto px = [&](double x) { return kLeft + plot_w * std::clamp(x / x_max, 0.0, 1.0); };
  auto py = [&](double y) { return kTop + plot_h * (1 - std::clamp(y / y_max, 0.0, 1.0)); };

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      kWidth, kHeight, kWidth, kHeight);
  absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
                        kLeft + plot_w / 2, Escape(title));
  // Grid and ticks.
  for (double t : xt) {
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                          px(t), kTop, px(t), kTop + plot_h, px(t), kTop + plot_h + 16, TickLabel(t));
  }
  for (double t : yt) {
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                          kLeft, py(t), kLeft + plot_w, py(t), kLeft - 6, py(t) + 4, TickLabel(t));
  }
  absl::StrAppendFormat(&svg,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                        "stroke=\"#333\"/>\n",
                        kLeft, kTop, plot_w, plot_h);
  absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                        kLeft + plot_w / 2, kHeight - 16, Escape(x_label));
  absl::StrAppendFormat(&svg,
                        "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
                        kTop + plot_h / 2, Escape(y_label));
  // Series.
  int index = 0;
  for (const PlotSeries& s : series) {
    std::string points;
    for (const PlotPoint& p : s.points) {
      if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
      absl::StrAppendFormat(&points, "%.1f,%.1f ", px(p.x), py(p.y));
    }
    absl::StrAppendFormat(&svg,
                          "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"%s\"/>\n",
                          Escape(s.color), s.dashed ? " stroke-dasharray=\"6 4\"" : "", points);
    for (const PlotPoint& p : s.points) {
      if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
      absl::StrAppendFormat(&svg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", px(p.x),
                            py(p.y), Escape(s.color));
      if (!p.label.empty()) {
        absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\">%s</text>",
                              px(p.x) + 5, py(p.y) - 5, Escape(s.color), Escape(p.label));
      }
      svg += "\n";
    }
    const double ly = kTop + 10 + 20 * index;
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                          "stroke-width=\"2\"%s/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                          kLeft + plot_w + 12, ly, kLeft + plot_w + 36, ly, Escape(s.color),
                          s.dashed ? " stroke-dasharray=\"6 4\"" : "", kLeft + plot_w + 42, ly + 4,
                          Escape(s.name));
    ++index;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace bench
}  // namespace microbatch
