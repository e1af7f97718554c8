// Triton's statistics extension (ModelStatistics over gRPC, GET
// /v2/models[/{m}[/versions/{v}]]/stats over REST): the cumulative
// statistics of served model versions, read from their metrics.
#ifndef MICROBATCH_SERVER_V2_STATISTICS_H_
#define MICROBATCH_SERVER_V2_STATISTICS_H_

#include <string>

#include "absl/status/statusor.h"
#include "inference/grpc_predict_v2.pb.h"
#include "server/service/inference.h"

namespace microbatch::v2 {

// The statistics of every served version (empty `name`), of every served
// version of `name` (empty `version`), or of one version (a number or a
// label), ordered by name and version. Errors: NOT_FOUND for a model or
// version that is not served, INVALID_ARGUMENT for a malformed version,
// UNAVAILABLE before the models are loaded. Thread-safe.
absl::StatusOr<inference::ModelStatisticsResponse> CollectStatistics(const InferenceEngine& engine,
                                                                      const std::string& name,
                                                                      const std::string& version);

}  // namespace microbatch::v2

#endif  // MICROBATCH_SERVER_V2_STATISTICS_H_
