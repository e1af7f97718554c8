// `microbatch models` (what the server serves and every version it knows, with
// its lifecycle state) and `microbatch model load|unload|label|split|shadow`
// (microbatch.v1.ModelControl, the live model repository; README, "Model
// lifecycle").
#ifndef MICROBATCH_CLIENT_MODELS_H_
#define MICROBATCH_CLIENT_MODELS_H_

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "client/predict.h"
#include "microbatch/v1/inference.pb.h"
#include "microbatch/v1/model_control.pb.h"

namespace microbatch {

struct ModelsOptions {
  ConnectionOptions connection;
  std::string format = "json";  // "json" or "table"
};

enum class ModelAction { kLoad, kUnload, kLabel, kSplit, kShadow };

// The options of `microbatch model ACTION`. connection.timeout_ms comes from
// --timeout (seconds, default 60): the deadline of every RPC, including the
// wait of load and unload.
struct ModelCommandOptions {
  ModelAction action = ModelAction::kLoad;
  ConnectionOptions connection{"localhost:8500", {}, 60000};
  std::string model;             // NAME
  std::string format = "json";   // load: how the versions are printed ("json" or "table")
  std::string label;             // label: LABEL
  int64_t version = 0;           // label: VERSION, 0 removes; shadow: VERSION, 0 clears
  std::vector<std::pair<int64_t, double>> canary;  // split: (version, percent); empty clears
  double fraction = 0;           // shadow: FRACTION in (0, 1]
};

// split's VERSION:PERCENT[,VERSION:PERCENT...] ("3:10", "3:10%,4:5"); "none"
// or "" is no canary. INVALID_ARGUMENT naming the bad part: a version that
// is not an integer >= 1, a percent outside (0, 100], a version listed twice,
// percents summing to more than 100.
absl::StatusOr<std::vector<std::pair<int64_t, double>>> ParseCanarySplit(const std::string& text);

// The JSON that `models` prints: an array with one object per model version,
// by name then version. A served (READY) version has the keys it always had
// (name, version, versions, platform, device, inputs, outputs, batching);
// every version the repository index knows (`index`; null when the server
// has no ModelControl service) adds
//   "state": "READY"|"LOADING"|"UNLOADING"|"UNAVAILABLE"|"FAILED",
//   "reason": "..." (why FAILED, or a detail; may be empty),
//   "labels": ["stable"], "canary_percent": 10, "shadow_fraction": 0.05,
//   "default": true (unpinned requests go to this version)
// and a version that is not served (loading, failed, on disk only) has only
// name, version and those keys.
nlohmann::json ModelsJson(const v1::ListModelsResponse& served, const v1::RepositoryIndexResponse* index);

// One version of the repository index as the JSON objects above (name,
// version and the state keys).
nlohmann::json VersionStatusJson(const v1::ModelVersionStatus& status);

// The index as a table: MODEL VERSION STATE DEFAULT LABELS CANARY SHADOW
// REASON, one line per version; `control_mode` ("poll", "explicit"), when
// not empty, on a last line.
std::string VersionsTable(const google::protobuf::RepeatedPtrField<v1::ModelVersionStatus>& versions,
                          const std::string& control_mode);

// Each prints on stdout and returns the exit code: 0, or 1 after printing
// the error on stderr ("microbatch: CODE: the server's message").
int RunModels(const ModelsOptions& options);
int RunModelCommand(const ModelCommandOptions& options);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_MODELS_H_
