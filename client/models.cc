#include "client/models.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "microbatch/v1/inference.grpc.pb.h"
#include "microbatch/v1/model_control.grpc.pb.h"

namespace microbatch {
namespace {

int Fail(const std::string& message) {
  std::cerr << "microbatch: " << message << "\n";
  return 1;
}

// "FAILED_PRECONDITION: the server polls ...": the code's name first, as
// every command prints an RPC error.
std::string RpcError(const grpc::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())), ": ",
                      status.error_message());
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const ConnectionOptions& connection) {
  absl::StatusOr<ChannelFactory> channels = ChannelFactory::Create(connection.tls);
  if (!channels.ok()) return channels.status();
  return channels->NewChannel(connection.target, grpc::ChannelArguments());
}

void SetDeadline(const ConnectionOptions& connection, grpc::ClientContext* context) {
  if (connection.timeout_ms > 0) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(connection.timeout_ms));
  }
}

const char* StateName(v1::VersionState state) {
  switch (state) {
    case v1::VERSION_STATE_LOADING: return "LOADING";
    case v1::VERSION_STATE_READY: return "READY";
    case v1::VERSION_STATE_UNLOADING: return "UNLOADING";
    case v1::VERSION_STATE_UNAVAILABLE: return "UNAVAILABLE";
    case v1::VERSION_STATE_FAILED: return "FAILED";
    default: return "UNKNOWN";
  }
}

nlohmann::json TensorsJson(const google::protobuf::RepeatedPtrField<v1::TensorMetadata>& tensors) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : tensors) {
    out.push_back({{"name", t.name()},
                   {"dtype", DTypeName(static_cast<DType>(t.dtype()))},
                   {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())}});
  }
  return out;
}

nlohmann::json ModelJson(const v1::ModelMetadata& model) {
  nlohmann::json m;
  m["name"] = model.name();
  m["version"] = model.version();
  m["versions"] = std::vector<int64_t>(model.versions().begin(), model.versions().end());
  m["platform"] = model.platform();
  m["device"] = model.device();
  m["inputs"] = TensorsJson(model.inputs());
  m["outputs"] = TensorsJson(model.outputs());
  m["batching"] = {{"max_batch_size", model.batching().max_batch_size()},
                   {"max_queue_delay_microseconds", model.batching().max_queue_delay_microseconds()},
                   {"max_queue_size", model.batching().max_queue_size()},
                   {"instance_count", model.batching().instance_count()}};
  return m;
}

// A percent, fraction or duration as short text: 10, 2.5, 0.05.
std::string Number(double value) { return absl::StrCat(value); }

// Left-aligned columns, two spaces apart, no trailing blanks.
std::string LeftAlignedTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) line += "  ";
      line += row[c];
      line.append(width[c] - row[c].size(), ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

template <typename Request, typename Response, typename Call>
int Unary(const ModelCommandOptions& options, const Request& request, Response* response, Call call) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(options.connection);
  if (!channel.ok()) return Fail(std::string(channel.status().message()));
  auto stub = v1::ModelControl::NewStub(*channel);
  grpc::ClientContext context;
  SetDeadline(options.connection, &context);
  const grpc::Status status = call(*stub, &context, request, response);
  if (status.ok()) return 0;
  std::string message = RpcError(status);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      (options.action == ModelAction::kLoad || options.action == ModelAction::kUnload)) {
    absl::StrAppend(&message, " (after --timeout ", Number(options.connection.timeout_ms / 1000.0),
                    " s; the server may still be working on it: see 'microbatch models')");
  }
  return Fail(message);
}

int Load(const ModelCommandOptions& options) {
  v1::LoadModelRequest request;
  request.set_model(options.model);
  v1::LoadModelResponse response;
  const int code = Unary(options, request, &response, [](auto& stub, auto* context, auto& req, auto* resp) {
    return stub.LoadModel(context, req, resp);
  });
  if (code != 0) return code;
  if (options.format == "table") {
    std::cout << VersionsTable(response.versions(), "");
  } else {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::ModelVersionStatus& status : response.versions()) out.push_back(VersionStatusJson(status));
    std::cout << out.dump(2) << "\n";
  }
  return 0;
}

int Unload(const ModelCommandOptions& options) {
  v1::UnloadModelRequest request;
  request.set_model(options.model);
  v1::UnloadModelResponse response;
  const int code = Unary(options, request, &response, [](auto& stub, auto* context, auto& req, auto* resp) {
    return stub.UnloadModel(context, req, resp);
  });
  if (code == 0) std::cout << options.model << ": unloaded\n";
  return code;
}

int Label(const ModelCommandOptions& options) {
  v1::SetLabelRequest request;
  request.set_model(options.model);
  request.set_label(options.label);
  request.set_version(options.version);
  v1::SetLabelResponse response;
  const int code = Unary(options, request, &response, [](auto& stub, auto* context, auto& req, auto* resp) {
    return stub.SetLabel(context, req, resp);
  });
  if (code != 0) return code;
  if (options.version == 0) {
    std::cout << options.model << ": label " << options.label << " removed\n";
  } else {
    std::cout << options.model << ": label " << options.label << " -> version " << options.version << "\n";
  }
  return 0;
}

int Split(const ModelCommandOptions& options) {
  v1::SetCanaryRequest request;
  request.set_model(options.model);
  for (const auto& [version, percent] : options.canary) {
    v1::CanarySplit* split = request.add_canary();
    split->set_version(version);
    split->set_percent(percent);
  }
  v1::SetCanaryResponse response;
  const int code = Unary(options, request, &response, [](auto& stub, auto* context, auto& req, auto* resp) {
    return stub.SetCanary(context, req, resp);
  });
  if (code != 0) return code;
  if (options.canary.empty()) {
    std::cout << options.model << ": no canary\n";
  } else {
    std::cout << options.model << ": canary "
              << absl::StrJoin(options.canary, ", ",
                               [](std::string* out, const std::pair<int64_t, double>& c) {
                                 absl::StrAppend(out, "version ", c.first, " ", Number(c.second), "%");
                               })
              << " of unpinned requests\n";
  }
  return 0;
}

int Shadow(const ModelCommandOptions& options) {
  v1::SetShadowRequest request;
  request.set_model(options.model);
  request.set_version(options.version);
  request.set_fraction(options.version == 0 ? 0 : options.fraction);
  v1::SetShadowResponse response;
  const int code = Unary(options, request, &response, [](auto& stub, auto* context, auto& req, auto* resp) {
    return stub.SetShadow(context, req, resp);
  });
  if (code != 0) return code;
  if (options.version == 0) {
    std::cout << options.model << ": no shadow\n";
  } else {
    std::cout << options.model << ": shadow version " << options.version << ", fraction "
              << Number(options.fraction) << " of requests mirrored\n";
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<int64_t, double>>> ParseCanarySplit(const std::string& text) {
  std::vector<std::pair<int64_t, double>> canary;
  const absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  if (trimmed.empty() || trimmed == "none") return canary;
  std::set<int64_t> seen;
  double total = 0;
  for (absl::string_view part : absl::StrSplit(trimmed, ',')) {
    part = absl::StripAsciiWhitespace(part);
    const size_t colon = part.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", part, "': expected VERSION:PERCENT, e.g. 3:10"));
    }
    const absl::string_view version_text = part.substr(0, colon);
    absl::string_view percent_text = part.substr(colon + 1);
    absl::ConsumeSuffix(&percent_text, "%");
    int64_t version = 0;
    if (!absl::SimpleAtoi(version_text, &version) || version < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", part, "': version '", version_text, "' is not an integer >= 1"));
    }
    double percent = 0;
    if (!absl::SimpleAtod(percent_text, &percent) || !(percent > 0 && percent <= 100)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", part, "': percent '", percent_text, "' is not a number in (0, 100]"));
    }
    if (!seen.insert(version).second) {
      return absl::InvalidArgumentError(absl::StrCat("version ", version, " is listed twice"));
    }
    total += percent;
    canary.emplace_back(version, percent);
  }
  if (total > 100 + 1e-9) {
    return absl::InvalidArgumentError(absl::StrCat("the percents sum to ", Number(total), ", more than 100"));
  }
  return canary;
}

nlohmann::json VersionStatusJson(const v1::ModelVersionStatus& status) {
  nlohmann::json out;
  out["name"] = status.model();
  out["version"] = status.version();
  out["state"] = StateName(status.state());
  out["reason"] = status.reason();
  out["labels"] = std::vector<std::string>(status.labels().begin(), status.labels().end());
  out["canary_percent"] = status.canary_percent();
  out["shadow_fraction"] = status.shadow_fraction();
  out["default"] = status.is_default();
  return out;
}

nlohmann::json ModelsJson(const v1::ListModelsResponse& served, const v1::RepositoryIndexResponse* index) {
  std::map<std::pair<std::string, int64_t>, nlohmann::json> entries;
  for (const v1::ModelMetadata& model : served.models()) {
    entries[{model.name(), model.version()}] = ModelJson(model);
  }
  if (index != nullptr) {
    for (const v1::ModelVersionStatus& status : index->versions()) {
      nlohmann::json& entry = entries[{status.model(), status.version()}];
      const nlohmann::json state = VersionStatusJson(status);
      for (const auto& [key, value] : state.items()) entry[key] = value;
    }
  }
  nlohmann::json out = nlohmann::json::array();
  for (auto& [key, entry] : entries) out.push_back(std::move(entry));
  return out;
}

std::string VersionsTable(const google::protobuf::RepeatedPtrField<v1::ModelVersionStatus>& versions,
                          const std::string& control_mode) {
  std::vector<std::vector<std::string>> rows = {
      {"MODEL", "VERSION", "STATE", "DEFAULT", "LABELS", "CANARY", "SHADOW", "REASON"}};
  for (const v1::ModelVersionStatus& v : versions) {
    rows.push_back({v.model(), absl::StrCat(v.version()), StateName(v.state()), v.is_default() ? "yes" : "-",
                    v.labels().empty() ? "-" : absl::StrJoin(v.labels(), ","),
                    v.canary_percent() > 0 ? absl::StrCat(Number(v.canary_percent()), "%") : "-",
                    v.shadow_fraction() > 0 ? Number(v.shadow_fraction()) : "-", v.reason()});
  }
  std::string out = LeftAlignedTable(rows);
  if (!control_mode.empty()) absl::StrAppend(&out, "(model control mode: ", control_mode, ")\n");
  return out;
}

int RunModels(const ModelsOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(options.connection);
  if (!channel.ok()) return Fail(std::string(channel.status().message()));
  v1::ListModelsResponse served;
  {
    grpc::ClientContext context;
    SetDeadline(options.connection, &context);
    const grpc::Status status = v1::Inference::NewStub(*channel)->ListModels(&context, {}, &served);
    if (!status.ok()) return Fail(RpcError(status));
  }
  v1::RepositoryIndexResponse index;
  bool have_index = true;
  {
    grpc::ClientContext context;
    SetDeadline(options.connection, &context);
    const grpc::Status status = v1::ModelControl::NewStub(*channel)->RepositoryIndex(&context, {}, &index);
    // A server without ModelControl: the metadata alone, as before.
    if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      have_index = false;
    } else if (!status.ok()) {
      return Fail(RpcError(status));
    }
  }
  if (options.format == "table") {
    if (!have_index) return Fail("the server has no microbatch.v1.ModelControl service: use --format json");
    std::cout << VersionsTable(index.versions(), index.control_mode());
    return 0;
  }
  std::cout << ModelsJson(served, have_index ? &index : nullptr).dump(2) << "\n";
  return 0;
}

int RunModelCommand(const ModelCommandOptions& options) {
  switch (options.action) {
    case ModelAction::kLoad: return Load(options);
    case ModelAction::kUnload: return Unload(options);
    case ModelAction::kLabel: return Label(options);
    case ModelAction::kSplit: return Split(options);
    case ModelAction::kShadow: return Shadow(options);
  }
  return 1;
}

}  // namespace microbatch
