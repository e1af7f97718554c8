// The client side of the Open Inference Protocol (KServe "v2"), next to
// microbatch's own v1 API: which protocol a command speaks, and the pure
// (no I/O) conversions between protocol-neutral requests/results and the v2
// wire forms, gRPC (inference.GRPCInferenceService) and REST/JSON.
//
// Tensors are carried as v1::Tensor whatever the protocol: dtype, shape and
// `data`, the dense little-endian row-major bytes (BOOL: one byte, 0 or 1).
// The v2 datatype strings are DTypeName's ("FP32", "INT64", "BOOL", ...);
// other v2 datatypes (UINT16, UINT32, UINT64, BYTES) are refused with an
// error naming the tensor.
#ifndef MICROBATCH_CLIENT_OPEN_INFERENCE_H_
#define MICROBATCH_CLIENT_OPEN_INFERENCE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tensor/tensor.h"
#include "inference/grpc_predict_v2.pb.h"
#include "microbatch/v1/inference.pb.h"
#include "microbatch/v1/tensor.pb.h"

namespace microbatch {

// The front end a command talks to.
enum class Protocol {
  kV1,    // microbatch.v1.Inference over gRPC (the default)
  kV2,    // inference.GRPCInferenceService (Open Inference Protocol) over gRPC
  kRest,  // the Open Inference Protocol over HTTP/JSON
};

// "v1", "v2" or "rest".
std::string ProtocolName(Protocol protocol);
// The inverse of ProtocolName; INVALID_ARGUMENT naming `name` otherwise.
absl::StatusOr<Protocol> ParseProtocol(absl::string_view name);
// "v1,v2,rest": a non-empty comma-separated list without repeats, in order.
absl::StatusOr<std::vector<Protocol>> ParseProtocolList(absl::string_view list);

// The v2 `model_version` for a v1-style version: 0 (the default version) is
// "", N is "N".
std::string V2Version(int64_t version);

// One inference, whatever the protocol.
struct InferRequestSpec {
  std::string model;
  std::string version;  // v2 form: "" (default version), "3", or a label
  std::string id;       // request id, echoed back; empty: none
  std::vector<v1::Tensor> inputs;
  std::vector<std::string> outputs;  // outputs to return; empty: all
  // v2 and REST: each of `outputs` (which must not be empty) comes back as
  // its `classification` highest classes (Triton's classification
  // extension); 0: as its values.
  int64_t classification = 0;
};

// An output that came back as a BYTES tensor (e.g. classified).
struct BytesOutput {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<std::string> elements;  // row-major
};

// What came back, whatever the protocol.
struct InferResult {
  std::string model;
  std::string version;  // the version that answered, as text ("3")
  std::string id;
  std::vector<v1::Tensor> outputs;  // in the server's order
  std::vector<BytesOutput> bytes_outputs;  // BYTES outputs, in the server's order
};

// A declared input or output of a model. dtype is kInvalid for a datatype
// the client has no DType for (`datatype` keeps the server's string).
struct DeclaredTensor {
  std::string name;
  std::string datatype;
  DType dtype = DType::kInvalid;
  std::vector<int64_t> shape;  // -1: variable (the batch dimension first)
};

// A model's metadata, whatever the protocol.
struct ModelInfo {
  std::string name;
  std::vector<std::string> versions;
  std::vector<DeclaredTensor> inputs;
  std::vector<DeclaredTensor> outputs;
};

// The signature of microbatch.v1 metadata (versions as text).
ModelInfo SignatureFromV1(const v1::ModelMetadata& metadata);

// INVALID_ARGUMENT naming the tensor when its dtype is invalid, a dimension
// is negative, or `data` is not exactly elements x element size bytes.
absl::Status CheckTensor(const v1::Tensor& tensor);

// ---------------------------------------------------------------------------
// gRPC (inference.GRPCInferenceService).

// ModelInferRequest with every input's bytes in raw_input_contents (one
// buffer per input, in input order) and `outputs` as requested outputs.
// Errors: CheckTensor's.
absl::StatusOr<inference::ModelInferRequest> BuildModelInferRequest(const InferRequestSpec& spec);

// The outputs of a ModelInferResponse, byte-exact: from raw_output_contents
// when present (then one buffer per output, each exactly elements x element
// size bytes), else from each output's typed `contents` (FP32 fp32_contents,
// FP64 fp64_contents, INT64 int64_contents, INT32/INT16/INT8 int_contents,
// UINT8 uint_contents, BOOL bool_contents; integer values must fit the
// datatype). INTERNAL naming the output for anything else: a count that does
// not match the shape, an unknown datatype, FP16/BF16 without raw contents.
absl::StatusOr<InferResult> ParseModelInferResponse(const inference::ModelInferResponse& response);

// The signature of a ModelMetadataResponse.
ModelInfo SignatureFromV2(const inference::ModelMetadataResponse& metadata);

// ---------------------------------------------------------------------------
// REST (HTTP/JSON).

// "/v2/models/NAME" or "/v2/models/NAME/versions/VERSION" (empty version:
// the first), each segment percent-encoded (RFC 3986 unreserved characters
// kept).
std::string RestModelPath(absl::string_view model, absl::string_view version);
// RestModelPath + "/infer".
std::string RestInferPath(absl::string_view model, absl::string_view version);

// The body of POST .../infer:
//   {"id":"...","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32",
//    "data":[1,2,3,4,5,6]}],"outputs":[{"name":"y"}]}
// "id" only when set, "outputs" only when outputs are requested. `data` is
// flat row-major, each number the shortest text that parses back to the same
// value of the datatype (FP32, FP16 and BF16: the float's, FP64: the
// double's; integers as integers; BOOL as true/false); NaN and infinities as
// the bare tokens NaN, Infinity, -Infinity (as Python's json writes them and
// microbatch-server reads them). Errors: CheckTensor's.
absl::StatusOr<std::string> BuildRestInferBody(const InferRequestSpec& spec);

// The result of an infer answer with HTTP status `http_status` and `body`.
// 2xx: {"model_name","model_version","id","outputs":[{"name","datatype",
// "shape","data"}]} with flat (or nested) row-major data; floats also as the
// bare tokens or strings NaN, Infinity, -Infinity, each rounded once,
// straight to the datatype (a shortest float text that parses to a double
// exactly between two values of the datatype is resolved to the value it is
// the shortest text of); BOOL as true/false (or 0/1); integers must be
// integral and fit the datatype. INTERNAL naming the output when it does
// not decode. Other statuses: the error of RestError.
absl::StatusOr<InferResult> ParseRestInferResponse(long http_status, absl::string_view body);

// The signature in a 2xx answer to GET RestModelPath: {"name","versions",
// "platform","inputs":[{"name","datatype","shape"}],"outputs":[...]};
// RestError for other statuses, INTERNAL when the body does not decode.
absl::StatusOr<ModelInfo> ParseRestModelMetadata(long http_status, absl::string_view body);

// max_batch_size in a 2xx answer to GET RestModelPath + "/config" (Triton's
// model configuration extension); nullopt for other statuses or a body
// without it (a server without the extension).
std::optional<int64_t> ParseRestMaxBatchSize(long http_status, absl::string_view body);

// The status of a non-2xx answer: the code of HttpStatusToCode and the
// message "HTTP <status>: <error>", where <error> is the body's "error"
// string, or the body itself (up to 200 bytes) when it is not such JSON.
absl::Status RestError(long http_status, absl::string_view body);

// The gRPC code of an HTTP status: 400 INVALID_ARGUMENT, 401
// UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 408 and 504
// DEADLINE_EXCEEDED, 409 ABORTED, 413 and 429 RESOURCE_EXHAUSTED, 499
// CANCELLED, 501 UNIMPLEMENTED, 503 UNAVAILABLE, other 4xx
// FAILED_PRECONDITION, other 5xx INTERNAL, 2xx OK, anything else UNKNOWN.
absl::StatusCode HttpStatusToCode(long http_status);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_OPEN_INFERENCE_H_
