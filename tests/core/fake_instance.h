// A ModelInstance for batcher tests: doubles an FP32 input of shape [rows, 1],
// records each batch it ran, and can be held inside Run() until released.
#ifndef MICROBATCH_TESTS_CORE_FAKE_INSTANCE_H_
#define MICROBATCH_TESTS_CORE_FAKE_INSTANCE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/batcher.h"
#include "server/core/clock.h"
#include "server/core/signature.h"
#include "server/core/sync.h"

namespace microbatch::testing {

// An FP32 output of shape [values->size(), 1] that keeps `values` alive.
inline TensorView FloatColumn(std::shared_ptr<std::vector<float>> values) {
  TensorView out;
  out.dtype = DType::kFloat32;
  out.shape = {static_cast<int64_t>(values->size()), 1};
  out.data = values->data();
  out.byte_size = values->size() * sizeof(float);
  out.owner = std::move(values);
  return out;
}

// Shared by the test and the instances it creates. Thread-safe.
class FakeModel {
 public:
  // While held, Run() blocks after recording its batch until Release().
  void Hold() {
    MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    MutexLock lock(&mu_);
    held_ = false;
    cv_.NotifyAll();
  }
  // Next Run() returns this error.
  void FailNext(absl::Status status) {
    MutexLock lock(&mu_);
    fail_next_ = std::move(status);
  }
  // Blocks until `n` batches have started.
  void WaitForBatches(size_t n) {
    MutexLock lock(&mu_);
    while (batches_.size() < n) cv_.Wait(&mu_);
  }
  // The input values of each batch started so far.
  std::vector<std::vector<float>> batches() {
    MutexLock lock(&mu_);
    return batches_;
  }
  // Each Run() moves `clock` forward by `cost`, as a model taking that long.
  void SetCost(FakeClock* clock, absl::Duration cost) {
    MutexLock lock(&mu_);
    clock_ = clock;
    cost_ = cost;
  }
  // Each Run() also moves `clock` forward by `per_row` for each of its rows.
  void SetCostPerRow(FakeClock* clock, absl::Duration per_row) {
    MutexLock lock(&mu_);
    clock_ = clock;
    cost_per_row_ = per_row;
  }
  // Runs that started on an instance while another run was on it (a batcher
  // bug: each instance runs one batch at a time).
  int instance_overlaps() {
    MutexLock lock(&mu_);
    return overlaps_;
  }
  void RecordOverlap() {
    MutexLock lock(&mu_);
    ++overlaps_;
  }
  int max_concurrent() {
    MutexLock lock(&mu_);
    return max_running_;
  }

  absl::StatusOr<std::vector<TensorView>> Run(absl::Span<const TensorView> inputs) {
    const TensorView& in = inputs[0];
    const float* values = static_cast<const float*>(in.data);
    std::vector<float> seen(values, values + in.rows());
    absl::Status fail;
    FakeClock* clock = nullptr;
    absl::Duration cost;
    {
      MutexLock lock(&mu_);
      batches_.push_back(seen);
      ++running_;
      max_running_ = std::max(max_running_, running_);
      cv_.NotifyAll();
      while (held_) cv_.Wait(&mu_);
      --running_;
      fail = std::move(fail_next_);
      fail_next_ = absl::OkStatus();
      clock = clock_;
      cost = cost_ + cost_per_row_ * static_cast<double>(in.rows());
    }
    if (clock != nullptr) clock->Advance(cost);
    if (!fail.ok()) return fail;
    auto doubled = std::make_shared<std::vector<float>>(seen);
    for (float& v : *doubled) v *= 2;
    return std::vector<TensorView>{FloatColumn(std::move(doubled))};
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fail_next_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<float>> batches_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int max_running_ ABSL_GUARDED_BY(mu_) = 0;
  int overlaps_ ABSL_GUARDED_BY(mu_) = 0;
  FakeClock* clock_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Duration cost_ ABSL_GUARDED_BY(mu_);
  absl::Duration cost_per_row_ ABSL_GUARDED_BY(mu_);
};

class FakeInstance : public ModelInstance {
 public:
  explicit FakeInstance(FakeModel* model) : model_(model) {}
  absl::StatusOr<std::vector<TensorView>> Run(absl::Span<const TensorView> inputs) override {
    if (running_.fetch_add(1) != 0) model_->RecordOverlap();
    absl::StatusOr<std::vector<TensorView>> outputs = model_->Run(inputs);
    running_.fetch_sub(1);
    return outputs;
  }

 private:
  FakeModel* model_;
  std::atomic<int> running_{0};
};

inline std::vector<std::unique_ptr<ModelInstance>> FakeInstances(FakeModel* model, int n) {
  std::vector<std::unique_ptr<ModelInstance>> instances;
  for (int i = 0; i < n; ++i) instances.push_back(std::make_unique<FakeInstance>(model));
  return instances;
}

}  // namespace microbatch::testing

#endif  // MICROBATCH_TESTS_CORE_FAKE_INSTANCE_H_
