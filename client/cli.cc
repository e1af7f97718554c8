#include "client/cli.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/http_client.h"
#include "client/metrics_scraper.h"
#include "client/open_inference.h"

namespace microbatch {
namespace {

// --help lists each option as "--name TYPE (repeatable) REQUIRED" and its
// description followed by "(default: VALUE)".
class DefaultsFormatter : public CLI::Formatter {
 public:
  std::string make_option_opts(const CLI::Option* opt) const override {
    std::string out;
    if (opt->get_type_size() != 0) {
      // A positional's name already says what it takes.
      if (!opt->get_type_name().empty() && opt->nonpositional()) absl::StrAppend(&out, " ", opt->get_type_name());
      if (opt->get_expected_max() >= CLI::detail::expected_max_vector_size) absl::StrAppend(&out, " (repeatable)");
      if (opt->get_required()) absl::StrAppend(&out, " REQUIRED");
    }
    return out;
  }

  std::string make_option_desc(const CLI::Option* opt) const override {
    std::string value = opt->get_default_str();
    if (opt->get_expected_max() == 0) {  // a flag
      if (opt->get_name() == "--help") return opt->get_description();
      value = value == "1" || value == "true" ? "on" : "off";
    }
    if (value.size() >= 2 && value.front() == '[' && value.back() == ']') value = value.substr(1, value.size() - 2);
    if (value.empty()) return opt->get_description();
    return absl::StrCat(opt->get_description(), " (default: ", value, ")");
  }
};

// ---------------------------------------------------------------------------
// Validators: an empty string accepts the value, anything else is the reason
// it is refused (CLI11 prefixes the option name).

CLI::Validator IntAtLeast(int64_t min) {
  return CLI::Validator(
      [min](std::string& value) -> std::string {
        int64_t parsed = 0;
        if (!absl::SimpleAtoi(value, &parsed)) return absl::StrCat("'", value, "' is not an integer");
        if (parsed < min) return absl::StrCat("must be >= ", min, ", got ", value);
        return "";
      },
      "");
}

CLI::Validator NumberAtLeast(double min) {
  return CLI::Validator(
      [min](std::string& value) -> std::string {
        double parsed = 0;
        if (!absl::SimpleAtod(value, &parsed)) return absl::StrCat("'", value, "' is not a number");
        if (!(parsed >= min)) return absl::StrCat("must be >= ", min, ", got ", value);
        return "";
      },
      "");
}

std::string MissingFile(const std::string& path) {
  return std::filesystem::exists(path) ? "" : absl::StrCat("file does not exist: ", path);
}

// predict --input: name=FILE.npy (the file must exist) or name=JSON.
CLI::Validator PredictInput() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        const size_t eq = value.find('=');
        if (eq == std::string::npos || eq == 0) {
          return absl::StrCat("'", value, "': expected name=FILE.npy or name=JSON");
        }
        const std::string file = value.substr(eq + 1);
        return absl::EndsWith(file, ".npy") ? MissingFile(file) : "";
      },
      "");
}

// batch --input: FILE or name=FILE; the file must exist.
CLI::Validator BatchInput() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        const size_t eq = value.find('=');
        if (eq == 0) return absl::StrCat("'", value, "': expected FILE or name=FILE");
        return MissingFile(eq == std::string::npos ? value : value.substr(eq + 1));
      },
      "");
}

CLI::Validator BatchOutput() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (absl::EndsWith(value, ".npy") || absl::EndsWith(value, ".csv")) return "";
        return absl::StrCat("'", value, "' must end in .npy or .csv");
      },
      "");
}

// bench --shape name=d1,d2,...
absl::StatusOr<std::pair<std::string, std::vector<int64_t>>> ParseShape(const std::string& value) {
  const size_t eq = value.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", value, "': expected name=d1,d2,..."));
  }
  std::vector<int64_t> dims;
  for (absl::string_view d : absl::StrSplit(value.substr(eq + 1), ',')) {
    int64_t dim = 0;
    if (!absl::SimpleAtoi(d, &dim) || dim < 0) {
      return absl::InvalidArgumentError(absl::StrCat("'", value, "': '", d, "' is not a dim (an integer >= 0)"));
    }
    dims.push_back(dim);
  }
  return std::make_pair(value.substr(0, eq), dims);
}

CLI::Validator Shape() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto shape = ParseShape(value);
        return shape.ok() ? "" : std::string(shape.status().message());
      },
      "");
}

CLI::Validator MetricsUrl() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto url = bench::NormalizeMetricsUrl(value);
        return url.ok() ? "" : std::string(url.status().message());
      },
      "");
}

CLI::Validator ExistingFile() { return CLI::Validator(MissingFile, ""); }

CLI::Validator ProtocolList() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto protocols = ParseProtocolList(value);
        return protocols.ok() ? "" : std::string(protocols.status().message());
      },
      "");
}

CLI::Validator HttpAddress() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto base = NormalizeHttpBase(value, /*tls=*/false);
        return base.ok() ? "" : std::string(base.status().message());
      },
      "");
}

void AddHttpOption(CLI::App* command, std::string* http) {
  command
      ->add_option("--http", *http,
                   "REST address of the server (its HTTP/metrics port) for --protocol rest: "
                   "[http[s]://]host:port[/prefix]; https when a TLS option is given and no scheme")
      ->type_name("HOST:PORT")
      ->check(HttpAddress());
}

// ---------------------------------------------------------------------------
// Options shared by several subcommands.

void AddTlsOptions(CLI::App* command, TlsOptions* tls) {
  const std::string group = "TLS (default: plaintext)";
  command->add_flag("--tls", tls->tls, "Connect with TLS, verifying the server against the system's root CAs")
      ->group(group);
  command->add_option("--tls_ca", tls->ca_file, "PEM CA certificate(s) that verify the server; implies --tls")
      ->type_name("FILE")
      ->check(ExistingFile())
      ->group(group);
  CLI::Option* cert =
      command->add_option("--tls_cert", tls->cert_file, "PEM client certificate for mutual TLS; implies --tls")
          ->type_name("FILE")
          ->check(ExistingFile())
          ->group(group);
  CLI::Option* key = command->add_option("--tls_key", tls->key_file, "PEM private key of --tls_cert")
                         ->type_name("FILE")
                         ->check(ExistingFile())
                         ->group(group);
  cert->needs(key);
  key->needs(cert);
  command
      ->add_option("--tls_server_name", tls->server_name,
                   "Name checked in the server certificate instead of the target's host (e.g. localhost); "
                   "needs TLS")
      ->type_name("NAME")
      ->group(group);
}

void AddConnectionOptions(CLI::App* command, ConnectionOptions* connection) {
  command->add_option("--target", connection->target, "Server address (host:port or a gRPC target URI)")
      ->type_name("HOST:PORT");
  command->add_option("--timeout_ms", connection->timeout_ms, "Deadline of each RPC in milliseconds (0: none)")
      ->type_name("MS")
      ->check(IntAtLeast(0));
  AddTlsOptions(command, &connection->tls);
}

CLI::Option* AddModelOptions(CLI::App* command, std::string* model, int64_t* version,
                             const std::string& model_help = "Model name") {
  CLI::Option* option = command->add_option("--model", *model, model_help)->type_name("NAME")->required();
  command->add_option("--version", *version, "Model version (0: the latest served)")
      ->type_name("N")
      ->check(IntAtLeast(0));
  return option;
}

// ---------------------------------------------------------------------------
// The subcommands.

// predict's --protocol and --version, as given; ParseCommandLine converts them.
struct PredictFlags {
  std::string protocol = "v1";
  std::string version = "0";
};

CLI::App* AddPredict(CLI::App& app, PredictOptions* o, PredictFlags* flags) {
  CLI::App* command = app.add_subcommand(
      "predict", "Send one inference request (v1 Predict, v2 ModelInfer or v2 REST) and print the outputs as JSON");
  AddConnectionOptions(command, &o->connection);
  command
      ->add_option("--protocol", flags->protocol,
                   "v1: microbatch.v1 Predict (gRPC); v2: Open Inference Protocol ModelInfer (gRPC, --target); "
                   "rest: Open Inference Protocol over HTTP/JSON (--http)")
      ->type_name("PROTOCOL")
      ->check(CLI::IsMember({"v1", "v2", "rest"}));
  AddHttpOption(command, &o->http);
  command->add_option("--model", o->model, "Model name")->type_name("NAME")->required();
  command
      ->add_option("--version", flags->version,
                   "Model version (0: the default version) or a version label (e.g. stable)")
      ->type_name("N|LABEL");
  command
      ->add_option("--input", o->inputs,
                   "name=FILE.npy or name=JSON, e.g. x=[[0.1,0.2]]; JSON takes the model's dtype, and a JSON "
                   "value one dimension short of the model's rank is one row")
      ->type_name("NAME=VALUE")
      ->allow_extra_args(false)
      ->check(PredictInput());
  command->add_option("--output", o->outputs, "Output to return (none given: all)")
      ->type_name("NAME")
      ->allow_extra_args(false);
  command->add_option("--request_id", o->request_id, "Request id echoed back by the server")->type_name("ID");
  command
      ->add_option("--classification", o->classification,
                   "v2 and rest: return each --output as its N highest classes, \"<value>:<index>[:<label>]\" "
                   "(the classification extension); 0: the values")
      ->type_name("N")
      ->check(IntAtLeast(0));
  return command;
}

CLI::App* AddModels(CLI::App& app, ModelsOptions* o) {
  CLI::App* command = app.add_subcommand(
      "models",
      "List every model version the server knows: its state (LOADING, READY, UNLOADING, UNAVAILABLE, FAILED and "
      "why), labels, canary percent, shadow fraction, which version is the default, and the served versions' "
      "inputs, outputs and batching settings");
  AddConnectionOptions(command, &o->connection);
  command
      ->add_option("--format", o->format,
                   "json: one object per model version; table: one line per version, without the metadata")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"json", "table"}));
  return command;
}

// `model ACTION`'s arguments as given; ConvertModelFlags converts them.
struct ModelFlags {
  double timeout_s = 60;
  std::string label_version;  // label VERSION
  CLI::Option* label_version_option = nullptr;
  bool remove = false;         // label --remove
  std::string split;           // split SPLIT
  std::string shadow_version;  // shadow VERSION: a number or "off"
  std::string shadow_fraction;
  CLI::Option* shadow_fraction_option = nullptr;
};

CLI::Validator PositiveNumber() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        double parsed = 0;
        if (!absl::SimpleAtod(value, &parsed)) return absl::StrCat("'", value, "' is not a number");
        if (!(parsed > 0)) return absl::StrCat("must be > 0, got ", value);
        return "";
      },
      "");
}

CLI::Validator CanarySplit() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto canary = ParseCanarySplit(value);
        return canary.ok() ? "" : std::string(canary.status().message());
      },
      "");
}

CLI::Validator ShadowVersion() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        int64_t version = 0;
        if (value == "off" || (absl::SimpleAtoi(value, &version) && version >= 0)) return "";
        return absl::StrCat("'", value, "' is not a version (an integer >= 1, or 0 or off to stop mirroring)");
      },
      "");
}

CLI::Validator ShadowFraction() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        double fraction = 0;
        if (absl::SimpleAtod(value, &fraction) && fraction > 0 && fraction <= 1) return "";
        return absl::StrCat("'", value, "' is not a fraction in (0, 1], e.g. 0.05");
      },
      "");
}

// The model actions: each takes NAME, --target, --timeout and the TLS options.
CLI::App* AddModel(CLI::App& app, ModelCommandOptions* o, ModelFlags* flags,
                   std::vector<std::pair<CLI::App*, ModelAction>>* actions) {
  CLI::App* model = app.add_subcommand(
      "model",
      "Change the live model repository (microbatch.v1.ModelControl): load, unload, label, split, shadow");
  model->require_subcommand(1);
  auto action = [&](const std::string& name, const std::string& description) {
    CLI::App* command = model->add_subcommand(name, description);
    command->add_option("NAME", o->model, "Model name")->type_name("NAME")->required();
    command->add_option("--target", o->connection.target, "Server address (host:port or a gRPC target URI)")
        ->type_name("HOST:PORT");
    command
        ->add_option("--timeout", flags->timeout_s,
                     "Deadline of the call in seconds; load and unload wait this long for the versions to be "
                     "READY or unloaded")
        ->type_name("SECONDS")
        ->check(PositiveNumber());
    AddTlsOptions(command, &o->connection.tls);
    return command;
  };
  CLI::App* load = action("load",
                          "Load (or reload after a config change) the versions the model's version policy selects "
                          "on disk, wait until they are READY or one FAILED, and print the model's versions "
                          "(explicit mode: --model_control_mode=explicit)");
  load->add_option("--format", o->format, "json: one object per version; table: one line per version")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"json", "table"}));
  actions->emplace_back(load, ModelAction::kLoad);

  actions->emplace_back(action("unload",
                              "Unload every version of the model once the requests queued on it are answered, "
                              "and wait until it is unloaded (explicit mode)"),
                       ModelAction::kUnload);

  CLI::App* label = action("label",
                           "Point LABEL at the READY version VERSION (atomic; loads nothing), or remove the label "
                           "(--remove, or VERSION 0)");
  label->add_option("LABEL", o->label, "Version label, e.g. stable")->type_name("LABEL")->required();
  flags->label_version_option = label->add_option("VERSION", flags->label_version, "Version number (0: remove)")
                                    ->type_name("VERSION")
                                    ->check(IntAtLeast(0));
  label->add_flag("--remove", flags->remove, "Remove LABEL instead of pointing it at a version");
  actions->emplace_back(label, ModelAction::kLabel);

  CLI::App* split = action("split",
                           "Set the canary split of unpinned requests: VERSION:PERCENT[,VERSION:PERCENT...], e.g. "
                           "3:10 (10% to version 3); none (or \"\") removes every canary");
  split->add_option("SPLIT", flags->split, "VERSION:PERCENT[,VERSION:PERCENT...] or none")
      ->type_name("SPLIT")
      ->required()
      ->check(CanarySplit());
  actions->emplace_back(split, ModelAction::kSplit);

  CLI::App* shadow = action("shadow",
                            "Mirror FRACTION of the model's requests to version VERSION and record how its outputs "
                            "diverge; VERSION off (or 0) stops mirroring");
  shadow->add_option("VERSION", flags->shadow_version, "Shadow version, or off (or 0) to stop mirroring")
      ->type_name("VERSION|off")
      ->required()
      ->check(ShadowVersion());
  flags->shadow_fraction_option =
      shadow->add_option("FRACTION", flags->shadow_fraction, "Fraction of requests mirrored, in (0, 1], e.g. 0.05")
          ->type_name("FRACTION")
          ->check(ShadowFraction());
  actions->emplace_back(shadow, ModelAction::kShadow);
  return model;
}

// `model ACTION`'s arguments into `o` (each validated by CLI11 already but
// for how they combine).
absl::Status ConvertModelFlags(const ModelFlags& flags, ModelCommandOptions* o) {
  // Capped at a year: "1e300" or "inf" must not overflow the milliseconds.
  o->connection.timeout_ms = std::max<int64_t>(1, std::llround(std::min(flags.timeout_s, 365 * 86400.0) * 1000));
  switch (o->action) {
    case ModelAction::kLabel: {
      const bool has_version = flags.label_version_option->count() > 0;
      if (has_version && flags.remove) {
        return absl::InvalidArgumentError("give VERSION or --remove, not both");
      }
      if (!has_version && !flags.remove) {
        return absl::InvalidArgumentError("VERSION is required (or --remove to remove the label)");
      }
      o->version = 0;
      if (has_version && !absl::SimpleAtoi(flags.label_version, &o->version)) {
        return absl::InvalidArgumentError(absl::StrCat("VERSION '", flags.label_version, "' is not an integer"));
      }
      break;
    }
    case ModelAction::kSplit: {
      absl::StatusOr<std::vector<std::pair<int64_t, double>>> canary = ParseCanarySplit(flags.split);
      if (!canary.ok()) return absl::InvalidArgumentError(absl::StrCat("SPLIT: ", canary.status().message()));
      o->canary = std::move(*canary);
      break;
    }
    case ModelAction::kShadow: {
      o->version = 0;
      if (flags.shadow_version != "off" && !absl::SimpleAtoi(flags.shadow_version, &o->version)) {
        return absl::InvalidArgumentError(absl::StrCat("VERSION '", flags.shadow_version, "' is not a version"));
      }
      const bool has_fraction = flags.shadow_fraction_option->count() > 0;
      if (o->version == 0 && has_fraction) {
        return absl::InvalidArgumentError(
            absl::StrCat("VERSION ", flags.shadow_version, " stops mirroring and takes no FRACTION"));
      }
      if (o->version > 0 && !has_fraction) {
        return absl::InvalidArgumentError(
            absl::StrCat("FRACTION is required with VERSION ", o->version, ": a number in (0, 1], e.g. 0.05"));
      }
      if (has_fraction && !absl::SimpleAtod(flags.shadow_fraction, &o->fraction)) {
        return absl::InvalidArgumentError(absl::StrCat("FRACTION '", flags.shadow_fraction, "' is not a number"));
      }
      break;
    }
    case ModelAction::kLoad:
    case ModelAction::kUnload: break;
  }
  return absl::OkStatus();
}

CLI::App* AddBatch(CLI::App& app, BatchOptions* o) {
  CLI::App* command = app.add_subcommand(
      "batch",
      "Stream a dataset (.npy or CSV) through BatchPredict and write the results in input order (.npy or CSV), "
      "in constant memory; --resume continues an interrupted job");
  command
      ->add_option("--target", o->targets,
                   "Server address; repeat to split the job across replicas, or use dns:///host:port with --streams")
      ->type_name("HOST:PORT")
      ->allow_extra_args(false);
  command->add_option("--streams", o->streams, "Streams to open (0: one per --target)")
      ->type_name("N")
      ->check(IntAtLeast(0));
  AddModelOptions(command, &o->model, &o->version);
  command->add_option("--input", o->inputs, "data.npy, data.csv, or name=file.npy per model input")
      ->type_name("FILE")
      ->required()
      ->allow_extra_args(false)
      ->check(BatchInput());
  command
      ->add_option("--output", o->output,
                   "out.npy or out.csv (several outputs: out.<name>.npy each); missing directories are created")
      ->type_name("FILE")
      ->required()
      ->check(BatchOutput());
  command->add_option("--outputs", o->outputs, "Output to write (none given: all)")
      ->type_name("NAME")
      ->allow_extra_args(false);
  command->add_option("--chunk-rows", o->chunk_rows, "Rows per chunk sent")->type_name("N")->check(IntAtLeast(1));
  command->add_option("--window", o->window, "Chunks in flight per stream")->type_name("N")->check(IntAtLeast(1));
  command->add_flag("--resume", o->resume, "Continue after the rows already in --output");
  command
      ->add_option("--shard-index", o->shard_index,
                   "Process only shard INDEX of --shard-count equal row ranges (< --shard-count)")
      ->type_name("INDEX")
      ->check(IntAtLeast(0));
  command->add_option("--shard-count", o->shard_count, "Number of shards the input is split into")
      ->type_name("N")
      ->check(IntAtLeast(1));
  command->add_option("--job-id", o->job_id, "Job id sent to the server (logged)")->type_name("ID");
  command
      ->add_option("--progress-seconds", o->progress_seconds,
                   "Seconds between progress lines when stderr is not a terminal")
      ->type_name("S")
      ->check(CLI::PositiveNumber);
  AddTlsOptions(command, &o->tls);
  return command;
}

CLI::App* AddBench(CLI::App& app, bench::BenchOptions* o, std::vector<std::string>* shapes,
                   std::string* protocols) {
  CLI::App* command = app.add_subcommand(
      "bench",
      "Measure throughput and latency of Predict (or Echo) under closed-loop concurrency or open-loop Poisson load");
  command->add_option("--target", o->target, "Server address (host:port or a gRPC target URI)")
      ->type_name("HOST:PORT");
  AddModelOptions(command, &o->model, &o->version, "Model name (with --echo it only defines the payload)");
  command->add_option("--rows", o->rows, "Rows per request")->type_name("N")->check(IntAtLeast(1));
  command
      ->add_option("--concurrency", o->concurrency,
                   "Closed loop: comma-separated requests kept in flight, e.g. 1,2,4,8 (1 when no "
                   "--request-rate is given)")
      ->type_name("N,...")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(IntAtLeast(1))
      ->default_str("1");
  command->add_option("--request-rate", o->request_rates, "Open loop: comma-separated Poisson arrival rates in requests/s")
      ->type_name("RATE,...")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->check(NumberAtLeast(1e-3));
  command->add_option("--deadline-ms", o->deadline_ms, "gRPC deadline per request in ms (0: none)")
      ->type_name("MS")
      ->check(IntAtLeast(0));
  command->add_option("--window-ms", o->window_ms, "Measurement window")->type_name("MS")->check(IntAtLeast(10));
  command->add_option("--warmup-ms", o->warmup_ms, "Load before the first window, not counted")
      ->type_name("MS")
      ->check(IntAtLeast(0));
  command
      ->add_option("--stability", o->stability,
                   "Stop once throughput and p99 of the last windows are within this fraction of their mean")
      ->type_name("FRACTION")
      ->check(NumberAtLeast(0));
  command->add_option("--stable-windows", o->stable_windows, "Windows the stability criterion looks at (and that are reported)")
      ->type_name("N")
      ->check(IntAtLeast(1));
  command->add_option("--max-windows", o->max_windows, "Most windows per level")->type_name("N")->check(IntAtLeast(1));
  command
      ->add_option("--rounds", o->rounds,
                   "Run the whole sequence (each level through each front end in turn) this many times; "
                   "prints each front end's throughput ratio per round and its median")
      ->type_name("N")
      ->check(IntAtLeast(1));
  command->add_option("--channels", o->channels, "gRPC channels (TCP connections) the calls are spread over")
      ->type_name("N")
      ->check(IntAtLeast(1));
  command
      ->add_option("--max-inflight", o->max_inflight,
                   "Open loop: arrivals beyond this many in flight are dropped by the client")
      ->type_name("N")
      ->check(IntAtLeast(1));
  command
      ->add_option("--shape", *shapes,
                   "name=d1,d2: dims after the batch dim for an input (none given: the metadata's, -1 read as 1)")
      ->type_name("NAME=DIMS")
      ->allow_extra_args(false)
      ->check(Shape());
  command->add_flag("--echo", o->echo, "Send to microbatch.v1.Echo (server --enable_echo) instead of Predict");
  command->add_flag("--with-echo", o->with_echo,
                    "Also run each level through microbatch.v1.Echo (server --enable_echo) with the same v1 "
                    "payload, first, and print each front end's throughput relative to it");
  command
      ->add_option("--protocol", *protocols,
                   "Front ends to load, comma-separated, each level run through each in turn: v1 (Predict), "
                   "v2 (Open Inference Protocol ModelInfer over gRPC), rest (the same over HTTP/JSON, --http)")
      ->type_name("PROTOCOL,...")
      ->check(ProtocolList());
  AddHttpOption(command, &o->http);
  command
      ->add_option("--metrics-url", o->metrics_url,
                   "[http[s]://]host:port[/path] of the server's Prometheus /metrics (path default /metrics; "
                   "https verified with --tls_ca), for the server-side split")
      ->type_name("URL")
      ->check(MetricsUrl());
  command->add_option("--format", o->format, "Report format")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"table", "csv", "json"}));
  command->add_option("--plot", o->plot, "Write the latency-throughput curve to this SVG file")->type_name("FILE");
  command->add_option("--seed", o->seed, "Seed of the random inputs and of the Poisson arrivals")->type_name("N");
  command->add_flag("--verbose", o->verbose, "Print every window to stderr");
  AddTlsOptions(command, &o->tls);
  return command;
}

// Checks across options that CLI11 does not express; the message names them.
absl::Status CheckCombinations(const CliOptions& options) {
  const TlsOptions* tls = nullptr;
  switch (options.command) {
    case Command::kPredict: tls = &options.predict.connection.tls; break;
    case Command::kModels: tls = &options.models.connection.tls; break;
    case Command::kModel: tls = &options.model.connection.tls; break;
    case Command::kBatch: tls = &options.batch.tls; break;
    case Command::kBench: tls = &options.bench.tls; break;
    case Command::kNone: break;
  }
  if (tls != nullptr && !tls->server_name.empty() && !tls->Enabled()) {
    return absl::InvalidArgumentError("--tls_server_name needs TLS: add --tls or --tls_ca");
  }
  if (options.command == Command::kBench && options.bench.echo &&
      (options.bench.protocols.size() != 1 || options.bench.protocols[0] != Protocol::kV1)) {
    return absl::InvalidArgumentError("--echo needs --protocol v1 (Echo is a microbatch.v1 service)");
  }
  if (options.command == Command::kBench && options.bench.echo && options.bench.with_echo) {
    return absl::InvalidArgumentError("--echo and --with-echo exclude each other (--with-echo already adds Echo)");
  }
  if (options.command == Command::kBatch && options.batch.shard_index >= options.batch.shard_count) {
    return absl::InvalidArgumentError(absl::StrCat("--shard-index ", options.batch.shard_index,
                                                   " must be < --shard-count ", options.batch.shard_count));
  }
  return absl::OkStatus();
}

// predict --protocol/--version and bench --protocol into `options` (each
// validated by CLI11 already but for the version's kind).
absl::Status ConvertFlags(const PredictFlags& predict, const std::string& bench_protocols, CliOptions* options) {
  absl::StatusOr<Protocol> protocol = ParseProtocol(predict.protocol);
  if (!protocol.ok()) return absl::InvalidArgumentError(absl::StrCat("--protocol: ", protocol.status().message()));
  options->predict.protocol = *protocol;
  if (options->predict.classification > 0) {
    if (*protocol == Protocol::kV1) {
      return absl::InvalidArgumentError("--classification: needs --protocol v2 or rest");
    }
    if (options->predict.outputs.empty()) {
      return absl::InvalidArgumentError("--classification: name the outputs to classify with --output");
    }
  }
  int64_t version = 0;
  if (absl::SimpleAtoi(predict.version, &version)) {
    if (version < 0) return absl::InvalidArgumentError(absl::StrCat("--version: must be >= 0, got ", version));
    options->predict.version = version;
  } else if (predict.version.empty()) {
    return absl::InvalidArgumentError("--version: empty");
  } else {
    options->predict.version_label = predict.version;
  }
  absl::StatusOr<std::vector<Protocol>> protocols = ParseProtocolList(bench_protocols);
  if (!protocols.ok()) return absl::InvalidArgumentError(absl::StrCat("--protocol: ", protocols.status().message()));
  options->bench.protocols = *protocols;
  return absl::OkStatus();
}

constexpr char kModelActions[] = "load, unload, label, split, shadow";

std::string UsageError(const std::string& command, const std::string& message) {
  const std::string name = command.empty() ? "microbatch" : absl::StrCat("microbatch ", command);
  std::string commands;
  if (command.empty()) commands = " (commands: predict, models, model, batch, bench)";
  if (command == "model") commands = absl::StrCat(" (commands: ", kModelActions, ")");
  return absl::StrCat(name, ": ", message, commands, "\nRun '", name, " --help' for the options.\n");
}

}  // namespace

CliParseResult ParseCommandLine(int argc, const char* const* argv) {
  CliParseResult result;
  CliOptions& options = result.options;
  std::vector<std::string> shapes;
  PredictFlags predict_flags;
  ModelFlags model_flags;
  std::string bench_protocols = "v1";

  CLI::App app("microbatch: the command-line client of microbatch-server", "microbatch");
  app.formatter(std::make_shared<DefaultsFormatter>());
  app.option_defaults()->always_capture_default();
  app.require_subcommand(1);
  app.set_version_flag("--version", "microbatch " MICROBATCH_VERSION, "Print the version and exit");
  app.footer(
      "Run 'microbatch COMMAND --help' for a command's options.\n"
      "Exit codes: 0 success, 1 the command failed, 2 usage error.");
  constexpr char kExitCodes[] = "Exit codes: 0 success, 1 the command failed, 2 usage error.";
  std::vector<std::pair<CLI::App*, ModelAction>> model_actions;
  const std::pair<CLI::App*, Command> commands[] = {
      {AddPredict(app, &options.predict, &predict_flags), Command::kPredict},
      {AddModels(app, &options.models), Command::kModels},
      {AddModel(app, &options.model, &model_flags, &model_actions), Command::kModel},
      {AddBatch(app, &options.batch), Command::kBatch},
      {AddBench(app, &options.bench, &shapes, &bench_protocols), Command::kBench},
  };

  for (const auto& [command, kind] : commands) command->footer(kExitCodes);
  for (const auto& [action, kind] : model_actions) action->footer(kExitCodes);
  auto parsed_command = [&]() -> std::string {
    for (const auto& [action, kind] : model_actions) {
      if (action->parsed()) return absl::StrCat("model ", action->get_name());
    }
    for (const auto& [command, kind] : commands) {
      if (command->parsed()) return command->get_name();
    }
    return "";
  };
  // CLI11 reports a first word that names no command as "a subcommand is
  // required" (and one after `model` as an unexpected argument); name it
  // instead.
  if (argc > 1 && argv[1][0] != '-' &&
      std::none_of(std::begin(commands), std::end(commands),
                   [&](const auto& command) { return command.first->get_name() == argv[1]; })) {
    result.error = UsageError("", absl::StrCat("unknown command '", argv[1], "'"));
    result.exit_code = kExitUsage;
    return result;
  }
  if (argc > 2 && std::string(argv[1]) == "model" && argv[2][0] != '-' &&
      std::none_of(model_actions.begin(), model_actions.end(),
                   [&](const auto& action) { return action.first->get_name() == argv[2]; })) {
    result.error = UsageError("model", absl::StrCat("unknown command '", argv[2], "'"));
    result.exit_code = kExitUsage;
    return result;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help or --version
    std::ostringstream out, err;
    app.exit(e, out, err);
    result.help = out.str();
    result.exit_code = kExitOk;
    return result;
  } catch (const CLI::ParseError& e) {
    result.error = UsageError(parsed_command(), e.what());
    result.exit_code = kExitUsage;
    return result;
  }
  for (const auto& [command, kind] : commands) {
    if (command->parsed()) options.command = kind;
  }
  for (const auto& [action, kind] : model_actions) {
    if (action->parsed()) options.model.action = kind;
  }
  for (const std::string& shape : shapes) {
    auto parsed = ParseShape(shape);  // validated above
    if (parsed.ok()) options.bench.shapes[parsed->first] = parsed->second;
  }
  if (absl::Status s = ConvertFlags(predict_flags, bench_protocols, &options); !s.ok()) {
    result.error = UsageError(parsed_command(), std::string(s.message()));
    result.exit_code = kExitUsage;
    return result;
  }
  if (options.command == Command::kModel) {
    if (absl::Status s = ConvertModelFlags(model_flags, &options.model); !s.ok()) {
      result.error = UsageError(parsed_command(), std::string(s.message()));
      result.exit_code = kExitUsage;
      return result;
    }
  }
  if (absl::Status s = CheckCombinations(options); !s.ok()) {
    result.error = UsageError(parsed_command(), std::string(s.message()));
    result.exit_code = kExitUsage;
    return result;
  }
  result.run = true;
  return result;
}

int RunCommandLine(int argc, const char* const* argv) {
  const CliParseResult parsed = ParseCommandLine(argc, argv);
  if (!parsed.run) {
    std::cout << parsed.help;
    std::cerr << parsed.error;
    return parsed.exit_code;
  }
  const CliOptions& options = parsed.options;
  switch (options.command) {
    case Command::kPredict: return RunPredict(options.predict);
    case Command::kModels: return RunModels(options.models);
    case Command::kModel: return RunModelCommand(options.model);
    case Command::kBatch: return RunBatch(options.batch);
    case Command::kBench: return bench::RunBench(options.bench);
    case Command::kNone: break;
  }
  return kExitUsage;
}

}  // namespace microbatch
