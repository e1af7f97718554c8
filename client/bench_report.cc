#include "client/bench_report.h"

#include <algorithm>
#include <cmath>
#include <optional>

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

bool ShowsProtocols(const BenchReport& report) {
  if (report.protocols.size() > 1) return true;
  return std::any_of(report.levels.begin(), report.levels.end(),
                     [](const LevelResult& r) { return r.protocol != "v1"; });
}

namespace {

// The result of `protocol` at the level of `like`, or null.
const LevelResult* FindLevel(const BenchReport& report, const std::string& protocol, const LevelResult& like) {
  for (const LevelResult& r : report.levels) {
    if (r.protocol == protocol && r.mode == like.mode && r.level == like.level && r.round == like.round) return &r;
  }
  return nullptr;
}

// Throughput of `protocol` relative to `base`'s at the level (and round) of
// `base`; nullopt when either is missing or base's is 0.
std::optional<double> RatioTo(const BenchReport& report, const std::string& protocol, const LevelResult& base) {
  const LevelResult* o = FindLevel(report, protocol, base);
  if (o == nullptr || base.throughput <= 0) return std::nullopt;
  return o->throughput / base.throughput;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace

std::string ThroughputRatios(const BenchReport& report) {
  if (report.protocols.size() < 2) return "";
  const std::string& base = report.protocols[0].protocol;
  const bool rounds = report.rounds > 1;
  std::string out;
  for (const LevelResult& r : report.levels) {
    if (r.protocol != base) continue;
    std::vector<std::string> parts;
    for (size_t p = 1; p < report.protocols.size(); ++p) {
      const std::string& other = report.protocols[p].protocol;
      const std::optional<double> ratio = RatioTo(report, other, r);
      parts.push_back(absl::StrCat(other, "/", base, " ", ratio ? Fixed(*ratio, 3) : "-"));
    }
    absl::StrAppend(&out, rounds ? absl::StrCat("round ", r.round, " ") : "", LevelName(r), " throughput ",
                    absl::StrJoin(parts, ", "), "\n");
  }
  if (!rounds) return out;
  // Each ratio's median over the rounds, per level of the first round.
  for (const LevelResult& first : report.levels) {
    if (first.protocol != base || first.round != 1) continue;
    std::vector<std::string> parts;
    for (size_t p = 1; p < report.protocols.size(); ++p) {
      const std::string& other = report.protocols[p].protocol;
      std::vector<double> ratios;
      for (const LevelResult& r : report.levels) {
        if (r.protocol != base || r.mode != first.mode || r.level != first.level) continue;
        if (const std::optional<double> ratio = RatioTo(report, other, r)) ratios.push_back(*ratio);
      }
      parts.push_back(absl::StrCat(other, "/", base, " ", ratios.empty() ? "-" : Fixed(Median(ratios), 3)));
    }
    absl::StrAppend(&out, "median of ", report.rounds, " rounds: ", LevelName(first), " throughput ",
                    absl::StrJoin(parts, ", "), "\n");
  }
  return out;
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
  out["rounds"] = report.rounds;
  out["protocols"] = nlohmann::json::array();
  for (const ProtocolInfo& p : report.protocols) {
    out["protocols"].push_back({{"protocol", p.protocol},
                                {"target", p.target},
                                {"method", p.method},
                                {"payload_bytes", p.payload_bytes},
                                {"channels", p.channels}});
  }
  out["levels"] = nlohmann::json::array();
  for (const LevelResult& r : report.levels) {
    nlohmann::json l;
    l["protocol"] = r.protocol;
    l["round"] = r.round;
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
  const bool any_protocol = ShowsProtocols(report);
  ReportTable table;
  std::vector<std::string>& header = table.header;
  header = {"level", "win", "req/s", "rows/s", "p50_ms", "p90_ms",
                                     "p99_ms", "p99.9_ms", "max_ms"};
  if (any_protocol) header.insert(header.begin(), "proto");
  if (report.rounds > 1) header.insert(header.begin(), "round");
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
    if (any_protocol) row.insert(row.begin(), r.protocol);
    if (report.rounds > 1) row.insert(row.begin(), absl::StrCat(r.round));
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
  const std::string deadline =
      report.deadline_ms > 0 ? absl::StrCat(", deadline ", report.deadline_ms, " ms") : "";
  std::string out;
  if (report.protocols.size() <= 1) {
    out = absl::StrCat(report.method, " ", report.model, report.version ? absl::StrCat(" v", report.version) : "",
                       " at ", report.target, ": ", report.rows, " row(s)/request, ", report.payload_bytes,
                       " B payload, ",
                       report.channels > 0 ? absl::StrCat(report.channels, " channel(s)")
                                           : std::string("a kept-alive connection per request in flight"),
                       deadline, "\n");
  } else {
    out = absl::StrCat(report.model, report.version ? absl::StrCat(" v", report.version) : "", ": ", report.rows,
                       " row(s)/request", deadline, "; each level through ", report.protocols.size(),
                       " front ends in turn:\n");
    for (const ProtocolInfo& p : report.protocols) {
      absl::StrAppend(&out, "  ", p.protocol, ": ", p.method, " at ", p.target, ", ", p.payload_bytes,
                      " B payload, ",
                      p.channels > 0 ? absl::StrCat(p.channels, " channel(s)")
                                     : std::string("a kept-alive connection per request in flight"),
                      "\n");
    }
  }
  out += FormatTable(table.header, table.rows);
  if (std::any_of(report.levels.begin(), report.levels.end(), [](const LevelResult& r) { return !r.stable; })) {
    out += "(* not stable within the window limit)\n";
  }
  out += ThroughputRatios(report);
  return out;
}

}  // namespace

std::string FormatReport(const BenchReport& report, const std::string& format) {
  if (format == "json") return FormatJson(report);
  const ReportTable table = MakeTable(report);
  return format == "csv" ? FormatCsv(table) : FormatText(report, table);
}

std::string PlotReport(const BenchReport& report) {
  std::vector<std::string> protocols;
  for (const ProtocolInfo& p : report.protocols) protocols.push_back(p.protocol);
  if (protocols.empty()) protocols.push_back("v1");
  const bool named = ShowsProtocols(report);
  // p50 and p99 colors of each (protocol, mode) series, in order.
  static constexpr const char* kColors[][2] = {{"#1f77b4", "#ff7f0e"}, {"#2ca02c", "#d62728"},
                                               {"#9467bd", "#8c564b"}, {"#e377c2", "#7f7f7f"},
                                               {"#bcbd22", "#17becf"}, {"#393b79", "#637939"}};
  std::vector<PlotSeries> series;
  size_t color = 0;
  for (const std::string& protocol : protocols) {
    for (const char* mode : {"concurrency", "rate"}) {
      const std::string label = named ? absl::StrCat(mode, ", ", protocol) : std::string(mode);
      const auto& colors = kColors[color % (sizeof(kColors) / sizeof(kColors[0]))];
      PlotSeries p50{absl::StrCat("p50 (", label, ")"), colors[0], false, {}};
      PlotSeries p99{absl::StrCat("p99 (", label, ")"), colors[1], true, {}};
      for (const LevelResult& r : report.levels) {
        if (r.protocol != protocol || r.mode != mode || r.ok == 0 || r.round != 1) continue;
        p50.points.push_back({r.throughput, r.latency.p50, LevelName(r)});
        p99.points.push_back({r.throughput, r.latency.p99, ""});
      }
      if (!p50.points.empty()) {
        series.push_back(std::move(p50));
        series.push_back(std::move(p99));
        ++color;
      }
    }
  }
  return LineChartSvg(absl::StrCat(named ? "" : absl::StrCat(report.method, " "), report.model,
                                   ": latency vs throughput (", report.rows, " row(s)/request)"),
                      "throughput (requests/s)", "latency (ms)", series);
}

}  // namespace bench
}  // namespace microbatch
