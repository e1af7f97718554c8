// One ModelInfer request between its arrival and its answer, shared by the
// unary ModelInfer and the streaming ModelStreamInfer: the decoded messages,
// the views of their inputs the engine reads, and the answer's outputs.
#ifndef MICROBATCH_SERVER_V2_INFER_CALL_H_
#define MICROBATCH_SERVER_V2_INFER_CALL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "inference/grpc_predict_v2.pb.h"
#include "server/service/inference.h"

namespace microbatch::v2 {

// The decoded messages of one call and the bytes of its typed inputs; the
// request's views point into it, so it lives until the call is answered.
struct InferCall {
  inference::ModelInferRequest request;
  inference::ModelInferResponse response;
  // One per input, sized once: the views point into them.
  std::vector<std::string> typed;
  // Per requested output: the classification extension's class count (the
  // output parameter "classification"), 0 for the output's values.
  std::vector<int64_t> classification;
};

// Views of the request's inputs (into `call`, which must outlive them).
// Errors: INVALID_ARGUMENT for raw and typed contents mixed, a raw buffer
// count that is not the input count, an unknown datatype or typed contents
// that do not decode.
absl::Status ToRequestTensors(InferCall* call, std::vector<RequestTensor>* tensors);

// `call`'s request as the engine takes it (model, id, outputs, inputs, and
// the request parameter `timeout` as its deadline; an input error is left
// in input_error for the engine to report).
absl::StatusOr<InferenceRequest> ToInferenceRequest(InferCall* call, absl::Time received);

// Fills `response` with `result` (model, version, the request's id and the
// selected outputs as raw_output_contents; an output the request asked to
// classify as a BYTES tensor of its top classes). Errors: those of
// ClassifyOutput.
absl::Status FillInferResponse(const InferenceResult& result, const InferCall& call,
                               inference::ModelInferResponse* response);

}  // namespace microbatch::v2

#endif  // MICROBATCH_SERVER_V2_INFER_CALL_H_
