#include "server/v2/rest_api.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "server/core/text.h"
#include "server/v2/classify_output.h"
#include "server/v2/datatype.h"
#include "server/v2/grpc_service.h"
#include "server/v2/json_tensors.h"
#include "server/v2/statistics.h"
#include "server/service/model_control_service.h"
#include "server/service/triton_config.h"

namespace microbatch::v2 {
namespace {

constexpr char kJson[] = "application/json";

HttpResponse Error(int status, absl::string_view message) {
  HttpResponse response;
  response.status = status;
  response.content_type = kJson;
  response.body = JsonErrorBody(message);
  return response;
}

HttpResponse ErrorFor(const absl::Status& status) {
  return Error(HttpStatusFor(status.code()), status.message());
}

HttpResponse Json(std::string body) {
  HttpResponse response;
  response.content_type = kJson;
  response.body = std::move(body);
  return response;
}

// A health answer as the Open Inference Protocol writes it: 200 when true,
// else `false_status`, with {"name": model (when not empty), key: ok}
// ({"live": true}, {"ready": false}, {"name": "mlp", "ready": true}).
HttpResponse Health(absl::string_view key, bool ok, int false_status,
                    absl::string_view model = {}) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  if (!model.empty()) {
    writer.Key("name");
    writer.String(model.data(), static_cast<rapidjson::SizeType>(model.size()));
  }
  writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  writer.Bool(ok);
  writer.EndObject();
  HttpResponse response = Json(std::string(buffer.GetString(), buffer.GetSize()));
  response.status = ok ? 200 : false_status;
  return response;
}

HttpResponse MethodNotAllowed(const char* allowed) {
  HttpResponse response = Error(405, absl::StrCat("use ", allowed, " on this path"));
  response.headers.emplace_back("Allow", allowed);
  return response;
}

bool IsGet(const HttpRequest& request) { return request.method == "GET" || request.method == "HEAD"; }

void WriteString(rapidjson::Writer<rapidjson::StringBuffer>& writer, absl::string_view text) {
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

std::string ServerMetadataJson() {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("name");
  WriteString(writer, kServerName);
  writer.Key("version");
  WriteString(writer, ServerVersion());
  writer.Key("extensions");
  writer.StartArray();
  WriteString(writer, "binary_tensor_data");
  WriteString(writer, "classification");
  WriteString(writer, "model_repository");
  WriteString(writer, "model_configuration");
  WriteString(writer, "statistics");
  writer.EndArray();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string ModelMetadataJson(const ServedModel& model, const std::vector<int64_t>& versions) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("name");
  WriteString(writer, model.name);
  writer.Key("versions");
  writer.StartArray();
  for (int64_t v : versions) WriteString(writer, absl::StrCat(v));
  writer.EndArray();
  writer.Key("platform");
  WriteString(writer, PlatformName(model.plan.config.platform()));
  auto tensors = [&](const char* key, const std::vector<TensorSpec>& specs) {
    writer.Key(key);
    writer.StartArray();
    for (const TensorSpec& spec : specs) {
      writer.StartObject();
      writer.Key("name");
      WriteString(writer, spec.name);
      writer.Key("datatype");
      WriteString(writer, DatatypeName(spec.dtype));
      writer.Key("shape");
      writer.StartArray();
      for (int64_t d : model.signature.ClientShape(spec)) writer.Int64(d);
      writer.EndArray();
      writer.EndObject();
    }
    writer.EndArray();
  };
  tensors("inputs", model.signature.inputs);
  tensors("outputs", model.signature.outputs);
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Which fields WriteProto writes besides those set.
enum class JsonFields {
  // Numbers, strings, enums, lists and maps left at their defaults, but no
  // message field that is not set: Triton's model configuration JSON
  // (protobuf's always_print_primitive_fields).
  kPrimitives,
  // Also messages that are not set (written with their defaults): Triton's
  // statistics JSON.
  kAll,
};

// Writes `message` as JSON the way Triton does: proto field names, enums by
// name, 64-bit integers as numbers (protobuf's own JSON writes them as
// strings), maps as objects; never the members of a oneof not chosen.
void WriteProto(rapidjson::Writer<rapidjson::StringBuffer>& writer, const google::protobuf::Message& message,
                JsonFields which);

void WriteField(rapidjson::Writer<rapidjson::StringBuffer>& writer, const google::protobuf::Message& message,
                const google::protobuf::FieldDescriptor* field, int index, JsonFields which) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = message.GetReflection();
  const bool repeated = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      writer.Int(repeated ? r->GetRepeatedInt32(message, field, index) : r->GetInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      writer.Int64(repeated ? r->GetRepeatedInt64(message, field, index) : r->GetInt64(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      writer.Uint(repeated ? r->GetRepeatedUInt32(message, field, index) : r->GetUInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      writer.Uint64(repeated ? r->GetRepeatedUInt64(message, field, index) : r->GetUInt64(message, field));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      writer.Double(repeated ? r->GetRepeatedDouble(message, field, index) : r->GetDouble(message, field));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      writer.Double(repeated ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      writer.Bool(repeated ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field));
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      WriteString(writer, (repeated ? r->GetRepeatedEnum(message, field, index) : r->GetEnum(message, field))->name());
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      WriteString(writer, repeated ? r->GetRepeatedString(message, field, index) : r->GetString(message, field));
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      WriteProto(writer, repeated ? r->GetRepeatedMessage(message, field, index) : r->GetMessage(message, field),
                 which);
      break;
  }
}

// A map entry's key as JSON writes keys: text.
std::string MapKey(const google::protobuf::Message& entry, const google::protobuf::FieldDescriptor* key) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = entry.GetReflection();
  switch (key->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: return r->GetString(entry, key);
    case FieldDescriptor::CPPTYPE_INT32: return absl::StrCat(r->GetInt32(entry, key));
    case FieldDescriptor::CPPTYPE_INT64: return absl::StrCat(r->GetInt64(entry, key));
    case FieldDescriptor::CPPTYPE_UINT32: return absl::StrCat(r->GetUInt32(entry, key));
    case FieldDescriptor::CPPTYPE_UINT64: return absl::StrCat(r->GetUInt64(entry, key));
    case FieldDescriptor::CPPTYPE_BOOL: return r->GetBool(entry, key) ? "true" : "false";
    default: return "";  // protobuf allows no other key types
  }
}

void WriteProto(rapidjson::Writer<rapidjson::StringBuffer>& writer, const google::protobuf::Message& message,
                JsonFields which) {
  const google::protobuf::Reflection* r = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    const google::protobuf::OneofDescriptor* oneof = field->containing_oneof();
    if (oneof != nullptr && r->GetOneofFieldDescriptor(message, oneof) != field) continue;
    if (which == JsonFields::kPrimitives && !field->is_repeated() &&
        field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE && !r->HasField(message, field)) {
      continue;
    }
    fields.push_back(field);
  }
  writer.StartObject();
  for (const google::protobuf::FieldDescriptor* field : fields) {
    writer.Key(field->name().c_str());
    if (field->is_map()) {
      // Entries are messages {key, value}; written as {"key": value}.
      writer.StartObject();
      const google::protobuf::FieldDescriptor* key = field->message_type()->map_key();
      const google::protobuf::FieldDescriptor* value = field->message_type()->map_value();
      for (int i = 0; i < r->FieldSize(message, field); ++i) {
        const google::protobuf::Message& entry = r->GetRepeatedMessage(message, field, i);
        const std::string text = MapKey(entry, key);
        writer.Key(text.data(), static_cast<rapidjson::SizeType>(text.size()));
        WriteField(writer, entry, value, -1, which);
      }
      writer.EndObject();
    } else if (field->is_repeated()) {
      writer.StartArray();
      for (int i = 0; i < r->FieldSize(message, field); ++i) WriteField(writer, message, field, i, which);
      writer.EndArray();
    } else {
      WriteField(writer, message, field, -1, which);
    }
  }
  writer.EndObject();
}

std::string ProtoJson(const google::protobuf::Message& message, JsonFields which) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  WriteProto(writer, message, which);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// The body of POST /v2/repository/index: empty, or a JSON object whose
// optional "ready" (a boolean) asks for the ready versions only.
absl::StatusOr<bool> IndexOnlyReady(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return false;
  rapidjson::Document document;
  document.Parse(body.data(), body.size());
  if (document.HasParseError() || !document.IsObject()) {
    return absl::InvalidArgumentError("the repository index request must be a JSON object, e.g. {\"ready\": true}");
  }
  auto ready = document.FindMember("ready");
  if (ready == document.MemberEnd()) return false;
  if (!ready->value.IsBool()) return absl::InvalidArgumentError("'ready' must be true or false");
  return ready->value.GetBool();
}

// One infer request between its arrival and its answer.
struct RestCall {
  std::string body;
  JsonInferRequest parsed;
  HttpResponse response;
  HttpResponder respond;
};

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    case absl::StatusCode::kUnimplemented: return 501;
    default: return 500;
  }
}

absl::Status RestApi::Register(HttpServer* http) {
  return http->AddPrefixHandler("/v2", [this](HttpRequest request, HttpResponder respond) {
    Handle(std::move(request), std::move(respond));
  });
}

void RestApi::Handle(HttpRequest request, HttpResponder respond) {
  const absl::string_view rest = absl::string_view(request.path).substr(3);  // after "/v2"
  if (rest.empty() || rest == "/") {
    if (!IsGet(request)) return respond(MethodNotAllowed("GET"));
    return respond(Json(ServerMetadataJson()));
  }
  if (rest == "/health/live" || rest == "/health/ready") {
    if (!IsGet(request)) return respond(MethodNotAllowed("GET"));
    if (rest == "/health/live") return respond(Health("live", true, 400));
    return respond(Health("ready", ready_(), 400));
  }
  if (rest.substr(0, 12) == "/repository/") return Repository(std::move(request), std::move(respond));
  if (rest == "/models/stats") {  // every model's statistics (Triton's path)
    if (!IsGet(request)) return respond(MethodNotAllowed("GET"));
    return respond(Statistics("", ""));
  }
  constexpr absl::string_view kModels = "/models/";
  if (rest.substr(0, kModels.size()) != kModels) {
    return respond(Error(404, absl::StrCat("no such endpoint: ", ClientText(request.path))));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest.substr(kModels.size()), '/');
  std::string version;
  size_t next = 1;
  if (parts.size() >= 3 && parts[1] == "versions") {
    version = std::string(parts[2]);
    next = 3;
  }
  const absl::string_view action = next < parts.size() ? parts[next] : absl::string_view();
  if (parts[0].empty() || (version.empty() && next == 3) || next + 1 < parts.size() ||
      (next < parts.size() && action != "ready" && action != "infer" && action != "config" &&
       action != "stats")) {
    return respond(Error(404, absl::StrCat("no such endpoint: ", ClientText(request.path))));
  }
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(parts[0], version);
  if (!spec.ok()) return respond(ErrorFor(spec.status()));
  if (action == "infer") {
    if (request.method != "POST") return respond(MethodNotAllowed("POST"));
    return Infer(std::move(request), std::move(*spec), std::move(respond));
  }
  if (!IsGet(request)) return respond(MethodNotAllowed("GET"));
  if (action == "stats") return respond(Statistics(std::string(parts[0]), version));
  absl::StatusOr<std::shared_ptr<ServedModel>> model = engine_->Find(*spec);
  if (action == "ready") {
    if (!model.ok()) return respond(ErrorFor(model.status()));
    return respond(Health("ready", ready_(), 400, (*model)->name));
  }
  if (!model.ok()) return respond(ErrorFor(model.status()));
  if (action == "config") return respond(Json(ProtoJson(ToTritonConfig((*model)->plan.config), JsonFields::kPrimitives)));
  absl::StatusOr<ModelManager*> repository = engine_->Models();
  if (!repository.ok()) return respond(ErrorFor(repository.status()));
  respond(Json(ModelMetadataJson(**model, (*repository)->Versions((*model)->name))));
}

HttpResponse RestApi::Statistics(const std::string& model, const std::string& version) const {
  absl::StatusOr<inference::ModelStatisticsResponse> statistics = CollectStatistics(*engine_, model, version);
  if (!statistics.ok()) return ErrorFor(statistics.status());
  return Json(ProtoJson(*statistics, JsonFields::kAll));
}

void RestApi::Repository(HttpRequest request, HttpResponder respond) {
  const absl::string_view rest = absl::string_view(request.path).substr(3 + 12);  // after "/v2/repository/"
  if (request.method != "POST") return respond(MethodNotAllowed("POST"));
  absl::StatusOr<ModelManager*> models = engine_->Models();
  if (!models.ok()) return respond(ErrorFor(models.status()));
  if (rest == "index") {
    absl::StatusOr<bool> only_ready_or = IndexOnlyReady(request.body);
    if (!only_ready_or.ok()) return respond(ErrorFor(only_ready_or.status()));
    const bool only_ready = *only_ready_or;
    admin_pool_->Schedule([models = *models, only_ready, respond = std::move(respond)] {
      rapidjson::StringBuffer buffer;
      rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
      writer.StartArray();
      for (const ModelVersionIndex& row : models->Index()) {
        if (only_ready && row.state != "READY") continue;
        writer.StartObject();
        writer.Key("name");
        WriteString(writer, row.model);
        writer.Key("version");
        WriteString(writer, absl::StrCat(row.version));
        writer.Key("state");
        WriteString(writer, TritonState(row.state));
        writer.Key("reason");
        WriteString(writer, row.reason);
        writer.EndObject();
      }
      writer.EndArray();
      respond(Json(std::string(buffer.GetString(), buffer.GetSize())));
    });
    return;
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest, '/');
  if (parts.size() != 3 || parts[0] != "models" || parts[1].empty() ||
      (parts[2] != "load" && parts[2] != "unload")) {
    return respond(Error(404, absl::StrCat("no such endpoint: ", ClientText(request.path))));
  }
  const bool load = parts[2] == "load";
  std::string name(parts[1]);
  admin_pool_->Schedule([models = *models, load, name = std::move(name), respond = std::move(respond)] {
    const absl::Time deadline = absl::Now() + kDefaultAdminDeadline;
    absl::Status status = load ? models->LoadModel(name, deadline) : models->UnloadModel(name, deadline);
    respond(status.ok() ? Json("{}") : ErrorFor(status));
  });
}

void RestApi::Infer(HttpRequest request, ModelSpec spec, HttpResponder respond) {
  const absl::Time received = absl::Now();
  if (!gate_.Enter()) {
    const absl::Status status = DrainGate::Draining();
    engine_->RecordRefused(RpcMethod::kRestInfer, status, received);
    return respond(ErrorFor(status));
  }
  auto* call = new RestCall;
  call->body = std::move(request.body);
  call->respond = std::move(respond);

  size_t json_bytes = call->body.size();
  absl::Status parsed = absl::OkStatus();
  auto header = request.headers.find("inference-header-content-length");
  if (header != request.headers.end()) {
    uint64_t value = 0;
    if (!absl::SimpleAtoi(header->second, &value) || value > call->body.size()) {
      parsed = absl::InvalidArgumentError(absl::StrCat(
          "Inference-Header-Content-Length '", ClientText(header->second),
          "' is not a byte count within the body's ", call->body.size(), " bytes"));
    } else {
      json_bytes = static_cast<size_t>(value);
    }
  }
  if (parsed.ok()) parsed = ParseInferRequest(call->body, json_bytes, &call->parsed);

  InferenceRequest inference;
  // A short model run may happen on this HTTP thread, before Infer returns;
  // the HTTP server then answers without suspending the connection.
  inference.may_run_inline = true;
  inference.method = RpcMethod::kRestInfer;
  inference.model = std::move(spec);
  inference.id = call->parsed.id;
  auto key = request.headers.find("x-routing-key");
  inference.routing_key = key != request.headers.end() ? key->second : call->parsed.id;
  inference.received = received;
  inference.timeout = absl::Microseconds(call->parsed.timeout_us);
  inference.wire_bytes = static_cast<int64_t>(call->body.size());
  inference.input_error = parsed;
  if (parsed.ok()) {
    inference.inputs = call->parsed.inputs;
    inference.outputs = call->parsed.outputs;
  }
  InferenceCallbacks callbacks;
  callbacks.on_outputs = [call](const InferenceResult& result) {
    const JsonInferRequest& parsed = call->parsed;
    std::vector<JsonOutput> outputs;
    outputs.reserve(result.selected.size());
    // The classification extension's answers (and their binary form), by
    // output; sized once (when asked for), as `outputs` points into them.
    std::vector<Classification> classified;
    std::vector<std::string> serialized;
    if (std::any_of(parsed.classification.begin(), parsed.classification.end(),
                    [](int64_t count) { return count > 0; })) {
      classified.resize(result.selected.size());
      serialized.resize(result.selected.size());
    }
    for (size_t k = 0; k < result.selected.size(); ++k) {
      const size_t index = static_cast<size_t>(result.selected[k]);
      const TensorSpec& spec = result.model.signature.outputs[index];
      JsonOutput output;
      output.name = spec.name;
      output.dtype = result.outputs.dtype(index);
      output.shape = result.model.signature.ToClientShape(result.outputs.shape(index));
      output.data = result.outputs.data(index);
      output.binary = parsed.outputs.empty() ? parsed.binary_by_default : parsed.binary_outputs[k];
      const int64_t class_count = parsed.outputs.empty() ? 0 : parsed.classification[k];
      if (class_count > 0) {
        absl::StatusOr<Classification> classes = ClassifyOutput(result, index, class_count);
        if (!classes.ok()) return classes.status();
        classified[k] = *std::move(classes);
        output.strings = &classified[k].classes;
        output.shape = classified[k].shape;
        if (output.binary) {
          serialized[k] = SerializeBytesTensor(classified[k].classes);
          output.data = serialized[k];
        }
      }
      outputs.push_back(std::move(output));
    }
    EncodedResponse encoded = EncodeInferResponse(result.model.name, result.model.version,
                                                  parsed.has_id ? &parsed.id : nullptr, outputs);
    call->response.status = 200;
    call->response.body = std::move(encoded.body);
    if (encoded.has_binary) {
      call->response.content_type = "application/octet-stream";
      call->response.headers.emplace_back("Inference-Header-Content-Length",
                                          absl::StrCat(encoded.json_bytes));
    } else {
      call->response.content_type = kJson;
    }
    return absl::OkStatus();
  };
  callbacks.on_done = [this, call](const absl::Status& status) {
    HttpResponse response = status.ok() ? std::move(call->response) : ErrorFor(status);
    HttpResponder respond = std::move(call->respond);
    delete call;
    respond(std::move(response));
    gate_.Exit();
  };
  engine_->Infer(std::move(inference), std::move(callbacks));
}

}  // namespace microbatch::v2
