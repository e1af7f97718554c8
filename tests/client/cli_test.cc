// The command line of `microbatch`, parsed in process (no server): usage
// errors exit 2 naming the option, --help exits 0 and lists every option with
// its default, and values land in the options structs.
#include "client/cli.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

CliParseResult Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "microbatch");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

// The help entry of `option`: from "  --option" to the next option or group.
std::string HelpEntry(const std::string& help, const std::string& option) {
  const size_t start = help.find("  " + option + " ");
  if (start == std::string::npos) return "";
  size_t end = help.find("\n  -", start + 1);
  end = std::min(end, help.find("\n\n", start));
  return help.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

void ExpectUsageError(const std::vector<std::string>& args, const std::string& message) {
  const CliParseResult result = Parse(args);
  std::string joined;
  for (const std::string& a : args) joined += a + " ";
  EXPECT_FALSE(result.run) << joined;
  EXPECT_EQ(result.exit_code, kExitUsage) << joined;
  EXPECT_THAT(result.error, HasSubstr(message)) << joined;
  EXPECT_THAT(result.help, IsEmpty()) << joined;
}

const std::vector<std::string> kTlsOptions = {"--tls", "--tls_ca", "--tls_cert", "--tls_key", "--tls_server_name"};

struct HelpCase {
  std::string command;
  // option -> its default as --help shows it ("" : no default shown).
  std::vector<std::pair<std::string, std::string>> options;
};

const std::vector<HelpCase>& HelpCases() {
  static const auto* cases = new std::vector<HelpCase>{
      {"predict",
       {{"--target", "localhost:8500"}, {"--timeout_ms", "30000"}, {"--protocol", "v1"},
        {"--http", "localhost:8502"}, {"--model", ""}, {"--version", "0"}, {"--input", ""}, {"--output", ""},
        {"--request_id", ""}, {"--tls", "off"}}},
      {"models", {{"--target", "localhost:8500"}, {"--timeout_ms", "30000"}, {"--format", "json"}, {"--tls", "off"}}},
      {"model load", {{"NAME", ""}, {"--target", "localhost:8500"}, {"--timeout", "60"}, {"--format", "json"},
                      {"--tls", "off"}}},
      {"model unload", {{"NAME", ""}, {"--target", "localhost:8500"}, {"--timeout", "60"}, {"--tls", "off"}}},
      {"model label",
       {{"NAME", ""}, {"LABEL", ""}, {"VERSION", ""}, {"--remove", "off"}, {"--target", "localhost:8500"},
        {"--timeout", "60"}, {"--tls", "off"}}},
      {"model split", {{"NAME", ""}, {"SPLIT", ""}, {"--target", "localhost:8500"}, {"--timeout", "60"},
                       {"--tls", "off"}}},
      {"model shadow",
       {{"NAME", ""}, {"VERSION", ""}, {"FRACTION", ""}, {"--target", "localhost:8500"}, {"--timeout", "60"},
        {"--tls", "off"}}},
      {"batch",
       {{"--target", "localhost:8500"}, {"--streams", "0"}, {"--model", ""}, {"--version", "0"}, {"--input", ""},
        {"--output", ""}, {"--outputs", ""}, {"--chunk-rows", "1024"}, {"--window", "4"}, {"--resume", "off"},
        {"--shard-index", "0"}, {"--shard-count", "1"}, {"--job-id", ""}, {"--progress-seconds", "5"},
        {"--tls", "off"}}},
      {"bench",
       {{"--target", "localhost:8500"}, {"--model", ""}, {"--version", "0"}, {"--rows", "1"},
        {"--concurrency", "1"}, {"--request-rate", ""}, {"--deadline-ms", "0"}, {"--window-ms", "5000"},
        {"--warmup-ms", "2000"}, {"--stability", "0.1"}, {"--stable-windows", "3"}, {"--max-windows", "10"},
        {"--channels", "4"}, {"--max-inflight", "20000"}, {"--shape", ""}, {"--echo", "off"},
        {"--with-echo", "off"}, {"--protocol", "v1"}, {"--http", "localhost:8502"},
        {"--metrics-url", ""}, {"--format", "table"}, {"--plot", ""}, {"--seed", "1"}, {"--verbose", "off"},
        {"--tls", "off"}}},
  };
  return *cases;
}

std::vector<std::string> Words(const std::string& command, std::vector<std::string> more) {
  std::vector<std::string> words = absl::StrSplit(command, ' ');
  words.insert(words.end(), more.begin(), more.end());
  return words;
}

TEST(CliTest, HelpExitsZeroAndListsEveryOptionWithItsDefault) {
  for (const HelpCase& c : HelpCases()) {
    const CliParseResult result = Parse(Words(c.command, {"--help"}));
    EXPECT_FALSE(result.run);
    EXPECT_EQ(result.exit_code, kExitOk) << c.command;
    EXPECT_THAT(result.error, IsEmpty());
    EXPECT_THAT(result.help, HasSubstr("Usage: microbatch " + c.command)) << c.command;
    for (const auto& [option, default_value] : c.options) {
      const std::string entry = HelpEntry(result.help, option);
      ASSERT_FALSE(entry.empty()) << c.command << " --help lacks " << option << ":\n" << result.help;
      if (!default_value.empty()) {
        EXPECT_THAT(entry, HasSubstr("(default: " + default_value + ")")) << c.command << " " << option;
      } else {
        EXPECT_THAT(entry, ::testing::Not(HasSubstr("(default:"))) << c.command << " " << option;
      }
    }
    for (const std::string& option : kTlsOptions) {
      EXPECT_FALSE(HelpEntry(result.help, option).empty()) << c.command << " --help lacks " << option;
    }
    if (c.command != "models" && c.command.rfind("model ", 0) != 0) {
      EXPECT_THAT(HelpEntry(result.help, "--model"), HasSubstr("REQUIRED"));
    }
    if (c.command.rfind("model ", 0) == 0) {
      EXPECT_THAT(HelpEntry(result.help, "NAME"), HasSubstr("REQUIRED")) << c.command;
      EXPECT_THAT(result.help, HasSubstr("2 usage error")) << c.command;
    }
  }
}

TEST(CliTest, TopLevelHelpListsTheCommands) {
  const CliParseResult result = Parse({"--help"});
  EXPECT_EQ(result.exit_code, kExitOk);
  for (const char* command : {"predict", "models", "model", "batch", "bench"}) {
    EXPECT_THAT(result.help, HasSubstr(command));
  }
  EXPECT_THAT(result.help, HasSubstr("2 usage error"));
  const CliParseResult model = Parse({"model", "--help"});
  EXPECT_EQ(model.exit_code, kExitOk);
  for (const char* action : {"load", "unload", "label", "split", "shadow"}) {
    EXPECT_THAT(model.help, HasSubstr(action));
  }
}

TEST(CliTest, NoOrUnknownSubcommandIsAUsageError) {
  ExpectUsageError({}, "subcommand is required");
  ExpectUsageError({"frobnicate"}, "frobnicate");
  ExpectUsageError({"frobnicate", "--model", "m"}, "unknown command 'frobnicate'");
  ExpectUsageError({"--model", "mlp"}, "subcommand is required");
}

TEST(CliTest, UnknownOptionIsAUsageErrorNamingIt) {
  TempDir dir("cli_unknown_option");
  const std::string in = dir.path() + "/in.npy";
  std::ofstream(in) << "x";
  ExpectUsageError({"predict", "--model", "m", "--bogus", "1"}, "--bogus");
  ExpectUsageError({"models", "--bogus"}, "--bogus");
  ExpectUsageError({"batch", "--model", "m", "--input", in, "--output", "o.npy", "--bogus", "1"}, "--bogus");
  ExpectUsageError({"bench", "--model", "m", "--bogus", "1"}, "--bogus");
  // Old spellings that never existed stay errors, e.g. bench's options use dashes.
  ExpectUsageError({"bench", "--model", "m", "--window_ms", "10"}, "--window_ms");
}

TEST(CliTest, MissingRequiredOptionIsAUsageErrorNamingIt) {
  TempDir dir("cli_required");
  const std::string in = dir.path() + "/in.npy";
  std::ofstream(in) << "x";
  ExpectUsageError({"predict"}, "--model is required");
  ExpectUsageError({"bench", "--concurrency", "1"}, "--model is required");
  ExpectUsageError({"batch", "--input", in, "--output", "y.npy"}, "--model is required");
  ExpectUsageError({"batch", "--model", "m", "--output", "y.npy"}, "--input is required");
  ExpectUsageError({"batch", "--model", "m", "--input", in}, "--output is required");
}

TEST(CliTest, BadValuesAreUsageErrorsNamingTheOption) {
  ExpectUsageError({"bench", "--model", "m", "--concurrency", "abc"}, "--concurrency");
  ExpectUsageError({"bench", "--model", "m", "--concurrency", "abc"}, "'abc' is not an integer");
  ExpectUsageError({"bench", "--model", "m", "--concurrency", "1,0"}, "--concurrency: must be >= 1, got 0");
  ExpectUsageError({"bench", "--model", "m", "--request-rate", "fast"}, "--request-rate");
  ExpectUsageError({"bench", "--model", "m", "--format", "xml"}, "--format");
  ExpectUsageError({"bench", "--model", "m", "--rows", "0"}, "--rows");
  ExpectUsageError({"bench", "--model", "m", "--window-ms", "5"}, "--window-ms: must be >= 10");
  ExpectUsageError({"bench", "--model", "m", "--stability", "x"}, "--stability");
  ExpectUsageError({"bench", "--model", "m", "--shape", "x"}, "--shape");
  ExpectUsageError({"bench", "--model", "m", "--shape", "x=1,a"}, "--shape");
  ExpectUsageError({"bench", "--model", "m", "--metrics-url", "ftp://h:1"}, "--metrics-url");
  ExpectUsageError({"bench", "--model", "m", "--metrics-url", "localhost"}, "--metrics-url");
  ExpectUsageError({"predict", "--model", "m", "--version", "-2"}, "--version");
  ExpectUsageError({"predict", "--model", "m", "--protocol", "v2", "--output", "y", "--classification", "-1"},
                   "--classification: must be >= 0, got -1");
  ExpectUsageError({"predict", "--model", "m", "--output", "y", "--classification", "3"},
                   "--classification: needs --protocol v2 or rest");
  ExpectUsageError({"predict", "--model", "m", "--protocol", "rest", "--classification", "3"},
                   "--classification: name the outputs to classify with --output");
  ExpectUsageError({"predict", "--model", "m", "--input", "[1,2]"}, "--input");
  ExpectUsageError({"predict", "--model", "m", "--input", "x=/no/such/file.npy"}, "does not exist");
  ExpectUsageError({"models", "--timeout_ms", "-1"}, "--timeout_ms");
  ExpectUsageError({"batch", "--model", "m", "--input", "/no/such.npy", "--output", "o.npy"},
                   "--input: file does not exist: /no/such.npy");
  TempDir dir("cli_bad_values");
  const std::string in = dir.path() + "/in.npy";
  std::ofstream(in) << "x";
  const std::vector<std::string> batch = {"batch", "--model", "m", "--input", in, "--output", "o.npy"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = batch;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  ExpectUsageError(with({"--chunk-rows", "0"}), "--chunk-rows");
  ExpectUsageError(with({"--window", "-1"}), "--window");
  ExpectUsageError(with({"--progress-seconds", "0"}), "--progress-seconds");
  ExpectUsageError(with({"--shard-count", "0"}), "--shard-count");
  ExpectUsageError(with({"--shard-index", "2", "--shard-count", "2"}), "--shard-index 2 must be < --shard-count 2");
  ExpectUsageError({"batch", "--model", "m", "--input", in, "--output", "o.txt"}, "--output");
  // One value per occurrence: a second word is not taken as another input.
  ExpectUsageError(with({"--input", in, in}), in);
}

TEST(CliTest, TlsUsageErrors) {
  TempDir dir("cli_tls");
  const std::string pem = dir.path() + "/x.pem";
  std::ofstream(pem) << "x";
  ExpectUsageError({"models", "--tls_ca", "/no/such/ca.pem"}, "--tls_ca: file does not exist: /no/such/ca.pem");
  ExpectUsageError({"models", "--tls_cert", pem}, "--tls_cert requires --tls_key");
  ExpectUsageError({"predict", "--model", "m", "--tls_key", pem}, "--tls_key requires --tls_cert");
  ExpectUsageError({"batch", "--model", "m", "--input", pem, "--output", "o.npy", "--tls_cert", pem, "--tls_key",
                    "/no/such/key.pem"},
                   "--tls_key: file does not exist");
  ExpectUsageError({"bench", "--model", "m", "--tls_server_name", "localhost"}, "--tls_server_name needs TLS");
}

TEST(CliTest, PredictOptions) {
  const CliParseResult result =
      Parse({"predict", "--model", "pair", "--input", "a=[[1,2,3]]", "--input=b=[[4,5,6]]", "--output", "sum",
             "--request_id", "r1", "--target=host:1", "--timeout_ms", "500", "--version", "2"});
  ASSERT_TRUE(result.run) << result.error;
  ASSERT_EQ(result.options.command, Command::kPredict);
  const PredictOptions& o = result.options.predict;
  EXPECT_EQ(o.model, "pair");
  EXPECT_EQ(o.version, 2);
  EXPECT_THAT(o.inputs, ElementsAre("a=[[1,2,3]]", "b=[[4,5,6]]"));
  EXPECT_THAT(o.outputs, ElementsAre("sum"));
  EXPECT_EQ(o.request_id, "r1");
  EXPECT_EQ(o.connection.target, "host:1");
  EXPECT_EQ(o.connection.timeout_ms, 500);
  EXPECT_FALSE(o.connection.tls.Enabled());
}

TEST(CliTest, PredictProtocols) {
  CliParseResult result = Parse({"predict", "--model", "m"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.predict.protocol, Protocol::kV1);
  EXPECT_EQ(result.options.predict.http, "localhost:8502");
  EXPECT_EQ(result.options.predict.version, 0);
  EXPECT_EQ(result.options.predict.version_label, "");

  result = Parse({"predict", "--model", "m", "--protocol", "v2", "--version", "3"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.predict.protocol, Protocol::kV2);
  EXPECT_EQ(result.options.predict.version, 3);
  EXPECT_EQ(result.options.predict.version_label, "");

  result = Parse({"predict", "--model", "m", "--protocol=rest", "--http", "https://h:9/prefix", "--version",
                  "stable"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.predict.protocol, Protocol::kRest);
  EXPECT_EQ(result.options.predict.http, "https://h:9/prefix");
  EXPECT_EQ(result.options.predict.version, 0);
  EXPECT_EQ(result.options.predict.version_label, "stable");

  ExpectUsageError({"predict", "--model", "m", "--protocol", "v3"}, "--protocol");
  ExpectUsageError({"predict", "--model", "m", "--protocol", "v2", "--version", "-1"}, "--version: must be >= 0");
  ExpectUsageError({"predict", "--model", "m", "--http", "localhost"}, "--http: expected [http[s]://]host:port");
  ExpectUsageError({"predict", "--model", "m", "--http", "ftp://h:1"}, "--http: scheme must be http or https");
}

TEST(CliTest, BenchProtocols) {
  CliParseResult result = Parse({"bench", "--model", "m"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_THAT(result.options.bench.protocols, ElementsAre(Protocol::kV1));
  EXPECT_EQ(result.options.bench.http, "localhost:8502");

  result = Parse({"bench", "--model", "m", "--protocol", "v1,v2,rest", "--http", "127.0.0.1:9"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_THAT(result.options.bench.protocols, ElementsAre(Protocol::kV1, Protocol::kV2, Protocol::kRest));
  EXPECT_EQ(result.options.bench.http, "127.0.0.1:9");

  result = Parse({"bench", "--model", "m", "--protocol", "rest,v2"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_THAT(result.options.bench.protocols, ElementsAre(Protocol::kRest, Protocol::kV2));

  result = Parse({"bench", "--model", "m", "--protocol", "v1,v2", "--with-echo"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_TRUE(result.options.bench.with_echo);
  EXPECT_FALSE(result.options.bench.echo);
  EXPECT_THAT(result.options.bench.protocols, ElementsAre(Protocol::kV1, Protocol::kV2));

  ExpectUsageError({"bench", "--model", "m", "--protocol", "v1,v1"}, "--protocol: protocol 'v1' is listed twice");
  ExpectUsageError({"bench", "--model", "m", "--protocol", "v1,grpc"}, "'grpc' is not a protocol (v1, v2 or rest)");
  ExpectUsageError({"bench", "--model", "m", "--protocol", "v2", "--echo"}, "--echo needs --protocol v1");
  ExpectUsageError({"bench", "--model", "m", "--echo", "--with-echo"}, "--echo and --with-echo exclude each other");
  ExpectUsageError({"bench", "--model", "m", "--http", "h"}, "--http");
}

TEST(CliTest, ModelsDefaultsAndTls) {
  CliParseResult result = Parse({"models"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.command, Command::kModels);
  EXPECT_EQ(result.options.models.connection.target, "localhost:8500");
  EXPECT_EQ(result.options.models.connection.timeout_ms, 30000);

  TempDir dir("cli_models_tls");
  const std::string ca = dir.path() + "/ca.pem", cert = dir.path() + "/c.pem", key = dir.path() + "/k.pem";
  for (const std::string& f : {ca, cert, key}) std::ofstream(f) << "x";
  result = Parse({"models", "--tls_ca", ca, "--tls_cert", cert, "--tls_key", key, "--tls_server_name", "localhost"});
  ASSERT_TRUE(result.run) << result.error;
  const TlsOptions& tls = result.options.models.connection.tls;
  EXPECT_EQ(tls.ca_file, ca);
  EXPECT_EQ(tls.cert_file, cert);
  EXPECT_EQ(tls.key_file, key);
  EXPECT_EQ(tls.server_name, "localhost");
  EXPECT_TRUE(tls.Enabled());
  result = Parse({"models", "--tls"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_TRUE(result.options.models.connection.tls.Enabled());
}

TEST(CliTest, BatchOptionsAsScriptsAndManifestsSpellThem) {
  TempDir dir("cli_batch");
  const std::string a = dir.path() + "/a.npy", b = dir.path() + "/b.npy";
  std::ofstream(a) << "x";
  std::ofstream(b) << "x";
  // deploy/batch/indexed-job.yaml and tests/server/*.cc spellings.
  CliParseResult result = Parse({"batch", "--target=dns:///microbatch-headless:8500", "--streams=2", "--model=mlp",
                                 "--input=" + a, "--output=" + dir.path() + "/out/shard-3.npy", "--shard-index=3",
                                 "--shard-count=4", "--chunk-rows=4096", "--resume", "--progress-seconds=0.5"});
  ASSERT_TRUE(result.run) << result.error;
  ASSERT_EQ(result.options.command, Command::kBatch);
  BatchOptions o = result.options.batch;
  EXPECT_THAT(o.targets, ElementsAre("dns:///microbatch-headless:8500"));
  EXPECT_EQ(o.streams, 2);
  EXPECT_EQ(o.shard_index, 3);
  EXPECT_EQ(o.shard_count, 4);
  EXPECT_EQ(o.chunk_rows, 4096);
  EXPECT_TRUE(o.resume);
  EXPECT_EQ(o.window, 4);
  EXPECT_EQ(o.progress_seconds, 0.5);

  result = Parse({"batch", "--target", "h1:1", "--target", "h2:2", "--model", "pair", "--input", "a=" + a,
                  "--input", "b=" + b, "--output", "o.csv", "--outputs", "sum", "--outputs", "product", "--window",
                  "8", "--job-id", "j"});
  ASSERT_TRUE(result.run) << result.error;
  o = result.options.batch;
  EXPECT_THAT(o.targets, ElementsAre("h1:1", "h2:2"));
  EXPECT_THAT(o.inputs, ElementsAre("a=" + a, "b=" + b));
  EXPECT_THAT(o.outputs, ElementsAre("sum", "product"));
  EXPECT_EQ(o.window, 8);
  EXPECT_EQ(o.job_id, "j");
  EXPECT_FALSE(o.resume);

  result = Parse({"batch", "--model", "m", "--input", a, "--output", "o.npy"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_THAT(result.options.batch.targets, ElementsAre("localhost:8500"));
}

TEST(CliTest, BenchOptionsAsScriptsSpellThem) {
  // scripts/bench.sh spellings.
  CliParseResult result =
      Parse({"bench", "--target", "localhost:1", "--metrics-url", "localhost:2", "--window-ms", "100",
             "--warmup-ms", "50", "--max-windows", "3", "--format", "json", "--echo", "--model", "identity",
             "--shape", "x=256", "--concurrency", "16,64", "--request-rate", "10,20.5", "--deadline-ms", "100",
             "--plot", "p.svg", "--shape", "y=2,3", "--rounds", "3"});
  ASSERT_TRUE(result.run) << result.error;
  ASSERT_EQ(result.options.command, Command::kBench);
  const bench::BenchOptions& o = result.options.bench;
  EXPECT_EQ(o.target, "localhost:1");
  EXPECT_EQ(o.metrics_url, "localhost:2");
  EXPECT_EQ(o.window_ms, 100);
  EXPECT_EQ(o.warmup_ms, 50);
  EXPECT_EQ(o.max_windows, 3);
  EXPECT_EQ(o.format, "json");
  EXPECT_TRUE(o.echo);
  EXPECT_FALSE(o.with_echo);
  EXPECT_EQ(o.model, "identity");
  EXPECT_THAT(o.concurrency, ElementsAre(16, 64));
  EXPECT_THAT(o.request_rates, ElementsAre(10, 20.5));
  EXPECT_EQ(o.deadline_ms, 100);
  EXPECT_EQ(o.plot, "p.svg");
  EXPECT_EQ(o.rounds, 3);
  EXPECT_THAT(o.shapes, ElementsAre(Pair("x", ElementsAre(256)), Pair("y", ElementsAre(2, 3))));

  result = Parse({"bench", "--model", "m"});
  ASSERT_TRUE(result.run) << result.error;
  const bench::BenchOptions defaults;
  EXPECT_THAT(result.options.bench.concurrency, IsEmpty());  // RunBench: concurrency 1
  EXPECT_EQ(result.options.bench.window_ms, defaults.window_ms);
  EXPECT_EQ(result.options.bench.channels, 4);
  EXPECT_EQ(result.options.bench.format, "table");
  EXPECT_EQ(result.options.bench.seed, 1u);
  EXPECT_EQ(result.options.bench.rounds, 1);
  ExpectUsageError({"bench", "--model", "m", "--rounds", "0"}, "--rounds");
}

TEST(CliTest, ModelsFormat) {
  CliParseResult result = Parse({"models", "--format", "table"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.models.format, "table");
  EXPECT_EQ(Parse({"models"}).options.models.format, "json");
  ExpectUsageError({"models", "--format", "xml"}, "--format");
}

TEST(CliTest, ModelLoadAndUnload) {
  CliParseResult result = Parse({"model", "load", "mlp"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.command, Command::kModel);
  const ModelCommandOptions& o = result.options.model;
  EXPECT_EQ(o.action, ModelAction::kLoad);
  EXPECT_EQ(o.model, "mlp");
  EXPECT_EQ(o.connection.target, "localhost:8500");
  EXPECT_EQ(o.connection.timeout_ms, 60000);
  EXPECT_EQ(o.format, "json");
  EXPECT_FALSE(o.connection.tls.Enabled());

  result = Parse({"model", "load", "--target", "h:1", "--timeout", "2.5", "--format=table", "--tls", "mlp"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.model.model, "mlp");
  EXPECT_EQ(result.options.model.connection.target, "h:1");
  EXPECT_EQ(result.options.model.connection.timeout_ms, 2500);
  EXPECT_EQ(result.options.model.format, "table");
  EXPECT_TRUE(result.options.model.connection.tls.Enabled());

  result = Parse({"model", "unload", "mlp", "--timeout", "300"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.model.action, ModelAction::kUnload);
  EXPECT_EQ(result.options.model.model, "mlp");
  EXPECT_EQ(result.options.model.connection.timeout_ms, 300000);

  ExpectUsageError({"model"}, "A subcommand is required");
  ExpectUsageError({"model"}, "(commands: load, unload, label, split, shadow)");
  ExpectUsageError({"model", "reload", "mlp"}, "microbatch model: unknown command 'reload'");
  ExpectUsageError({"model", "load"}, "microbatch model load: NAME is required");
  ExpectUsageError({"model", "load", "a", "b"}, "b");
  EXPECT_EQ(Parse({"model", "load", "mlp", "--timeout", "inf"}).options.model.connection.timeout_ms,
            int64_t{365} * 86400 * 1000);
  ExpectUsageError({"model", "load", "mlp", "--timeout", "0"}, "--timeout: must be > 0, got 0");
  ExpectUsageError({"model", "load", "mlp", "--timeout", "nan"}, "--timeout");
  ExpectUsageError({"model", "load", "mlp", "--timeout", "soon"}, "--timeout: 'soon' is not a number");
  ExpectUsageError({"model", "load", "mlp", "--format", "xml"}, "--format");
  ExpectUsageError({"model", "unload", "mlp", "--bogus"}, "--bogus");
  ExpectUsageError({"model", "unload", "mlp", "--format", "json"}, "--format");  // load only
  ExpectUsageError({"model", "unload", "mlp", "--timeout_ms", "5"}, "--timeout_ms");
  ExpectUsageError({"model", "unload", "mlp", "--tls_server_name", "localhost"}, "--tls_server_name needs TLS");
  ExpectUsageError({"model", "load", "mlp", "--tls_ca", "/no/such/ca.pem"}, "--tls_ca: file does not exist");
}

TEST(CliTest, ModelLabel) {
  CliParseResult result = Parse({"model", "label", "mlp", "stable", "2"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.model.action, ModelAction::kLabel);
  EXPECT_EQ(result.options.model.model, "mlp");
  EXPECT_EQ(result.options.model.label, "stable");
  EXPECT_EQ(result.options.model.version, 2);

  for (const std::vector<std::string>& remove :
       {std::vector<std::string>{"model", "label", "mlp", "stable", "--remove"},
        std::vector<std::string>{"model", "label", "mlp", "stable", "0"}}) {
    result = Parse(remove);
    ASSERT_TRUE(result.run) << result.error;
    EXPECT_EQ(result.options.model.label, "stable");
    EXPECT_EQ(result.options.model.version, 0);
  }

  ExpectUsageError({"model", "label", "mlp"}, "LABEL is required");
  ExpectUsageError({"model", "label", "mlp", "stable"}, "VERSION is required (or --remove to remove the label)");
  ExpectUsageError({"model", "label", "mlp", "stable", "2", "--remove"}, "give VERSION or --remove, not both");
  ExpectUsageError({"model", "label", "mlp", "stable", "two"}, "VERSION: 'two' is not an integer");
  ExpectUsageError({"model", "label", "mlp", "stable", "-1"}, "-1");
  ExpectUsageError({"model", "label", "mlp", "stable", "2", "3"}, "3");
}

TEST(CliTest, ModelSplit) {
  CliParseResult result = Parse({"model", "split", "mlp", "3:10"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.model.action, ModelAction::kSplit);
  EXPECT_THAT(result.options.model.canary, ElementsAre(Pair(3, 10.0)));

  result = Parse({"model", "split", "mlp", "3:10%,4:2.5"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_THAT(result.options.model.canary, ElementsAre(Pair(3, 10.0), Pair(4, 2.5)));

  for (const char* clear : {"none", ""}) {
    result = Parse({"model", "split", "mlp", clear});
    ASSERT_TRUE(result.run) << clear << ": " << result.error;
    EXPECT_THAT(result.options.model.canary, IsEmpty());
  }

  ExpectUsageError({"model", "split", "mlp"}, "SPLIT is required");
  ExpectUsageError({"model", "split", "mlp", "3"}, "'3': expected VERSION:PERCENT, e.g. 3:10");
  ExpectUsageError({"model", "split", "mlp", "x:10"}, "'x:10': version 'x' is not an integer >= 1");
  ExpectUsageError({"model", "split", "mlp", "0:10"}, "version '0' is not an integer >= 1");
  ExpectUsageError({"model", "split", "mlp", "3:0"}, "percent '0' is not a number in (0, 100]");
  ExpectUsageError({"model", "split", "mlp", "3:101"}, "percent '101' is not a number in (0, 100]");
  ExpectUsageError({"model", "split", "mlp", "3:ten"}, "percent 'ten'");
  ExpectUsageError({"model", "split", "mlp", "3:10,3:5"}, "version 3 is listed twice");
  ExpectUsageError({"model", "split", "mlp", "3:60,4:50"}, "the percents sum to 110, more than 100");
}

TEST(CliTest, ModelShadow) {
  CliParseResult result = Parse({"model", "shadow", "mlp", "4", "0.05"});
  ASSERT_TRUE(result.run) << result.error;
  EXPECT_EQ(result.options.model.action, ModelAction::kShadow);
  EXPECT_EQ(result.options.model.version, 4);
  EXPECT_DOUBLE_EQ(result.options.model.fraction, 0.05);

  for (const char* off : {"off", "0"}) {
    result = Parse({"model", "shadow", "mlp", off});
    ASSERT_TRUE(result.run) << off << ": " << result.error;
    EXPECT_EQ(result.options.model.version, 0);
  }

  ExpectUsageError({"model", "shadow", "mlp"}, "VERSION is required");
  ExpectUsageError({"model", "shadow", "mlp", "4"}, "FRACTION is required with VERSION 4");
  ExpectUsageError({"model", "shadow", "mlp", "off", "0.5"}, "VERSION off stops mirroring and takes no FRACTION");
  ExpectUsageError({"model", "shadow", "mlp", "four", "0.5"}, "'four' is not a version");
  ExpectUsageError({"model", "shadow", "mlp", "4", "0"}, "FRACTION: '0' is not a fraction in (0, 1]");
  ExpectUsageError({"model", "shadow", "mlp", "4", "1.5"}, "'1.5' is not a fraction in (0, 1]");
}

}  // namespace
}  // namespace microbatch
