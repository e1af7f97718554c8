#include "server/v2/statistics.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/service/model_manager.h"

namespace microbatch::v2 {
namespace {

void Fill(const DurationStatistic& from, inference::StatisticDuration* to) {
  to->set_count(from.count);
  to->set_ns(from.ns);
}

void Describe(const ServedModel& served, inference::ModelStatistics* out) {
  const InferenceStatisticsSnapshot s = served.metrics->Statistics();
  out->set_name(served.name);
  out->set_version(absl::StrCat(served.version));
  out->set_last_inference(s.last_inference_ms);
  out->set_inference_count(s.inference_count);
  out->set_execution_count(s.execution_count);
  inference::InferStatistics* stats = out->mutable_inference_stats();
  Fill(s.success, stats->mutable_success());
  Fill(s.fail, stats->mutable_fail());
  Fill(s.queue, stats->mutable_queue());
  // Gathering inputs and splitting outputs are part of the measured compute.
  Fill({s.compute_infer.count, 0}, stats->mutable_compute_input());
  Fill(s.compute_infer, stats->mutable_compute_infer());
  Fill({s.compute_infer.count, 0}, stats->mutable_compute_output());
  Fill(s.cache_hit, stats->mutable_cache_hit());
  Fill(s.cache_miss, stats->mutable_cache_miss());
  for (const BatchSizeStatistic& batch : s.batches) {
    inference::InferBatchStatistics* b = out->add_batch_stats();
    b->set_batch_size(static_cast<uint64_t>(batch.batch_size));
    Fill({batch.compute.count, 0}, b->mutable_compute_input());
    Fill(batch.compute, b->mutable_compute_infer());
    Fill({batch.compute.count, 0}, b->mutable_compute_output());
  }
}

}  // namespace

absl::StatusOr<inference::ModelStatisticsResponse> CollectStatistics(const InferenceEngine& engine,
                                                                      const std::string& name,
                                                                      const std::string& version) {
  inference::ModelStatisticsResponse response;
  if (!version.empty() || !name.empty()) {
    // Validates the name and version and says what is served when not found.
    absl::StatusOr<std::shared_ptr<ServedModel>> found = engine.Find(name, version);
    if (!found.ok()) return found.status();
    if (!version.empty()) {
      Describe(**found, response.add_model_stats());
      return response;
    }
  }
  absl::StatusOr<ModelManager*> models = engine.Models();
  if (!models.ok()) return models.status();
  std::vector<std::shared_ptr<const ServedModel>> served = (*models)->All();
  std::sort(served.begin(), served.end(), [](const auto& a, const auto& b) {
    return a->name != b->name ? a->name < b->name : a->version < b->version;
  });
  for (const auto& model : served) {
    if (name.empty() || model->name == name) Describe(*model, response.add_model_stats());
  }
  return response;
}

}  // namespace microbatch::v2
