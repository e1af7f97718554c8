#include "client/bench_report.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/plot_svg.h"
#include "nlohmann/json.hpp"

namespace microbatch {
namespace bench {

std::string LevelName(const LevelResult& r) {
  return r.mode == "concurrency" ? absl::StrCat("c=", static_cast<int64_t>(r.level))
                                 : absl::StrCat("r=", Fixed(r.level, r.level < 10 ? 2 : 0));
}

std::string ErrorsText(const LevelResult& r) {
  std::vector<std::string> parts;
  for (const auto& [code, n] : r.errors_by_code) parts.push_back(absl::StrCat(code, ":", n));
  return parts.empty() ? "0" : absl::StrJoin(parts, ",");
}

namespace {

std::string FormatJson(const BenchReport& report) {
  nlohmann::json out;
  out["target"] = report.target;
  out["method"] = report.method;
  out["model"] = report.model;
  out["version"] = report.version;
  out["rows"] = report.rows;
  out["payload_bytes"] = report.payload_bytes;
  out["deadline_ms"] = report.deadline_ms;
  out["channels"] = report.channels;
  out["levels"] = nlohmann::json::array();
  for (const LevelResult& r : report.levels) {
    nlohmann::json l;
    l["mode"] = r.mode;
    l["level"] = r.level;
    l["windows"] = r.windows;
    l["stable"] = r.stable;
    l["seconds"] = r.seconds;
    l["sent"] = r.sent;
    l["ok"] = r.ok;
    l["late"] = r.late;
    l["errors"] = r.errors;
    l["errors_by_code"] = r.errors_by_code;
    l["throughput"] = r.throughput;
    l["rows_per_s"] = r.rows_per_s;
    l["goodput"] = r.goodput;
    l["goodput_rows_per_s"] = r.goodput_rows_per_s;
    l["max_send_lag_ms"] = r.max_send_lag_ms;
    l["client_cpu_cores"] = std::isnan(r.client_cpu_cores) ? nlohmann::json() : nlohmann::json(r.client_cpu_cores);
    l["server_cpu_cores"] = std::isnan(r.server_cpu_cores) ? nlohmann::json() : nlohmann::json(r.server_cpu_cores);
    l["latency_ms"] = {{"mean", r.latency.mean}, {"p50", r.latency.p50}, {"p90", r.latency.p90},
                       {"p99", r.latency.p99},   {"p99.9", r.latency.p999}, {"max", r.latency.max}};
    if (r.server.valid) {
      l["server"] = {{"queue_wait_ms", r.server.queue_wait_ms}, {"compute_ms", r.server.compute_ms},
                     {"batch_rows", r.server.batch_rows}, {"batches", r.server.batches},
                     {"requests", r.server.requests}};
      if (!std::isnan(r.server.request_ms)) l["server"]["request_ms"] = r.server.request_ms;
    }
    out["levels"].push_back(l);
  }
  return out.dump(2) + "\n";
}

// The columns of the table and CSV formats: goodput only for open loop or a
// deadline, the server split only when /metrics was scraped.
struct ReportTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

ReportTable MakeTable(const BenchReport& report) {
  const bool any_server = std::any_of(report.levels.begin(), report.levels.end(),
                                      [](const LevelResult& r) { return r.server.valid; });
  const bool any_rate = std::any_of(report.levels.begin(), report.levels.end(),
                                    [](const LevelResult& r) { return r.mode == "rate"; });
  ReportTable table;
  std::vector<std::string>& header = table.header;
  header = {"level", "win", "req/s", "rows/s", "p50_ms", "p90_ms",
                                     "p99_ms", "p99.9_ms", "max_ms"};
  if (any_rate || report.deadline_ms > 0) {
    header.push_back("goodput/s");
    header.push_back("late");
  }
  if (any_server) {
    for (const char* h : {"srv_ms", "srv_queue_ms", "srv_compute_ms", "srv_batch"}) header.push_back(h);
  }
  header.push_back("cli_cpu");
  header.push_back("srv_cpu");
  header.push_back("errors");
  std::vector<std::vector<std::string>>& rows = table.rows;
  for (const LevelResult& r : report.levels) {
    std::vector<std::string> row = {
        LevelName(r), absl::StrCat(r.windows, r.stable ? "" : "*"), Fixed(r.throughput, 1),
        Fixed(r.rows_per_s, 1), Fixed(r.latency.p50, 2), Fixed(r.latency.p90, 2),
        Fixed(r.latency.p99, 2), Fixed(r.latency.p999, 2), Fixed(r.latency.max, 2)};
    if (any_rate || report.deadline_ms > 0) {
      row.push_back(Fixed(r.goodput, 1));
      row.push_back(absl::StrCat(r.late));
    }
    if (any_server) {
      if (r.server.valid) {
        row.push_back(Fixed(r.server.request_ms, 3));
        row.push_back(Fixed(r.server.queue_wait_ms, 3));
        row.push_back(Fixed(r.server.compute_ms, 3));
        row.push_back(Fixed(r.server.batch_rows, 2));
      } else {
        row.insert(row.end(), {"-", "-", "-", "-"});
      }
    }
    row.push_back(Fixed(r.client_cpu_cores, 2));
    row.push_back(Fixed(r.server_cpu_cores, 2));
    row.push_back(ErrorsText(r));
    rows.push_back(std::move(row));
  }
  return table;
}

std::string FormatCsv(const ReportTable& table) {
  const std::vector<std::string>& header = table.header;
  const std::vector<std::vector<std::string>>& rows = table.rows;
  std::string out;
  for (size_t i = 0; i < header.size(); ++i) out += (i ? "," : "") + CsvField(header[i]);
  out += "\n";
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) out += (i ? "," : "") + CsvField(row[i]);
    out += "\n";
  }
  return out;
}

std::string FormatText(const BenchReport& report, const ReportTable& table) {
  std::string out = absl::StrCat(report.method, " ", report.model,
                                 report.version ? absl::StrCat(" v", report.version) : "", " at ",
                                 report.target, ": ", report.rows, " row(s)/request, ",
                                 report.payload_bytes, " B payload, ", report.channels, " channel(s)",
                                 report.deadline_ms > 0 ? absl::StrCat(", deadline ", report.deadline_ms, " ms") : "",
                                 "\n");
  out += FormatTable(table.header, table.rows);
  if (std::any_of(report.levels.begin(), report.levels.end(), [](const LevelResult& r) { return !r.stable; })) {
    out += "(* not stable within the window limit)\n";
  }
  return out;
}

}  // namespace

std::string FormatReport(const BenchReport& report, const std::string& format) {
  if (format == "json") return FormatJson(report);
  const ReportTable table = MakeTable(report);
  return format == "csv" ? FormatCsv(table) : FormatText(report, table);
}

std::string PlotReport(const BenchReport& report) {
  std::vector<PlotSeries> series;
  for (const char* mode : {"concurrency", "rate"}) {
    PlotSeries p50{absl::StrCat("p50 (", mode, ")"), std::string(mode) == "rate" ? "#2ca02c" : "#1f77b4", false, {}};
    PlotSeries p99{absl::StrCat("p99 (", mode, ")"), std::string(mode) == "rate" ? "#d62728" : "#ff7f0e", true, {}};
    for (const LevelResult& r : report.levels) {
      if (r.mode != mode || r.ok == 0) continue;
      p50.points.push_back({r.throughput, r.latency.p50, LevelName(r)});
      p99.points.push_back({r.throughput, r.latency.p99, ""});
    }
    if (!p50.points.empty()) {
      series.push_back(std::move(p50));
      series.push_back(std::move(p99));
    }
  }
  return LineChartSvg(absl::StrCat(report.method, " ", report.model, ": latency vs throughput (",
                                   report.rows, " row(s)/request)"),
                      "throughput (requests/s)", "latency (ms)", series);
}

}  // namespace bench
}  // namespace microbatch
