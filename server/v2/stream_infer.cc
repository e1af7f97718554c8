#include "server/v2/stream_infer.h"

#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "server/service/convert.h"
#include "server/service/unary_infer.h"
#include "server/service/wire.h"
#include "server/v2/infer_call.h"

namespace microbatch::v2 {
namespace {

// The response of a request that failed: its error, with the request's id
// and model so the client can tell which one.
inference::ModelStreamInferResponse ErrorResponse(const inference::ModelInferRequest& request,
                                                  const absl::Status& status) {
  inference::ModelStreamInferResponse response;
  response.set_error_message(std::string(status.message()));
  response.mutable_infer_response()->set_id(request.id());
  response.mutable_infer_response()->set_model_name(request.model_name());
  response.mutable_infer_response()->set_model_version(request.model_version());
  return response;
}

}  // namespace

StreamInferReactor::StreamInferReactor(InferenceEngine* engine, DrainGate* gate,
                                       grpc::CallbackServerContext* context)
    : engine_(engine), gate_(gate), context_(context) {
  Steps steps;
  {
    MutexLock lock(&mu_);
    steps = Plan();
  }
  constructed_.store(true, std::memory_order_release);  // before the first read can complete
  Run(steps);
}

void StreamInferReactor::SeeConstruction() const { (void)constructed_.load(std::memory_order_acquire); }

void StreamInferReactor::OnReadDone(bool ok) {
  SeeConstruction();
  if (!ok) {
    Steps steps;
    {
      MutexLock lock(&mu_);
      reading_ = false;
      reads_done_ = true;
      steps = Plan();
    }
    return Run(steps);
  }
  // reading_ stays true until the request is handed over, so that an answer
  // the engine gives inline cannot finish the stream under this reaction.
  {
    MutexLock lock(&mu_);
    ++pending_;
  }
  Submit(incoming_);  // not under mu_: the engine may answer inline
  incoming_.Clear();
  Steps steps;
  {
    MutexLock lock(&mu_);
    reading_ = false;
    steps = Plan();
  }
  Run(steps);
}

void StreamInferReactor::Submit(const grpc::ByteBuffer& body) {
  const absl::Time received = absl::Now();
  auto call = std::make_unique<InferCall>();
  if (absl::Status parsed = ParseBody(body, &call->request); !parsed.ok()) {
    engine_->RecordRefused(RpcMethod::kModelInfer, parsed, received);
    return Answer(ErrorResponse(call->request, parsed));
  }
  if (!gate_->Enter()) return Answer(ErrorResponse(call->request, DrainGate::Draining()));
  absl::StatusOr<InferenceRequest> inference = ToInferenceRequest(call.get(), received);
  if (!inference.ok()) {
    engine_->RecordRefused(RpcMethod::kModelInfer, inference.status(), received);
    gate_->Exit();
    return Answer(ErrorResponse(call->request, inference.status()));
  }
  SetFromCallContext(context_, call->request.id(), &*inference);
  inference->may_run_inline = false;  // the next read should not wait behind a model run
  inference->wire_bytes = static_cast<int64_t>(body.Length());

  InferCall* raw_call = call.release();
  auto response = std::make_shared<inference::ModelStreamInferResponse>();
  InferenceCallbacks callbacks;
  callbacks.on_outputs = [raw_call, response](const InferenceResult& result) {
    return FillInferResponse(result, *raw_call, response->mutable_infer_response());
  };
  callbacks.on_done = [this, raw_call, response](const absl::Status& status) {
    if (!status.ok()) *response = ErrorResponse(raw_call->request, status);
    delete raw_call;
    gate_->Exit();
    Answer(*response);
  };
  engine_->Infer(*std::move(inference), std::move(callbacks));
}

void StreamInferReactor::Answer(const inference::ModelStreamInferResponse& response) {
  auto body = std::make_unique<grpc::ByteBuffer>();
  const absl::Status serialized = SerializeBody(response, body.get());
  Steps steps;
  {
    MutexLock lock(&mu_);
    --pending_;
    if (!serialized.ok()) broken_ = true;  // cannot happen for a message we built; ends the stream
    if (!broken_) queue_.push_back(std::move(body));
    steps = Plan();
  }
  Run(steps);
}

void StreamInferReactor::OnWriteDone(bool ok) {
  SeeConstruction();
  Steps steps;
  {
    MutexLock lock(&mu_);
    writing_.reset();
    if (!ok) {
      broken_ = true;
      queue_.clear();
    }
    steps = Plan();
  }
  Run(steps);
}

void StreamInferReactor::OnCancel() {
  SeeConstruction();
  Steps steps;
  {
    MutexLock lock(&mu_);
    broken_ = true;
    queue_.clear();
    steps = Plan();
  }
  Run(steps);
}

void StreamInferReactor::OnDone() {
  SeeConstruction();
  delete this;
}

StreamInferReactor::Steps StreamInferReactor::Plan() {
  Steps steps;
  if (finished_) return steps;
  if (writing_ == nullptr && !queue_.empty() && !broken_) {
    writing_ = std::move(queue_.front());
    queue_.pop_front();
    steps.write = writing_.get();
  }
  // Read on while the client sends and the engine holds few of its requests.
  if (!reading_ && !reads_done_ && !broken_ && pending_ < kMaxPendingRequests) {
    reading_ = true;
    steps.read = true;
  }
  // Done once nothing is in flight: no read, no request in the engine, no
  // write, nothing left to write.
  const bool reads_over = reads_done_ || (broken_ && !reading_);
  if (reads_over && pending_ == 0 && writing_ == nullptr && (queue_.empty() || broken_)) {
    finished_ = true;
    steps.finish = true;
    steps.status = broken_ ? grpc::Status::CANCELLED : grpc::Status::OK;
  }
  return steps;
}

void StreamInferReactor::Run(const Steps& steps) {
  // Finish is last: once it is called the reactor may be deleted.
  if (steps.write != nullptr) StartWrite(steps.write);
  if (steps.read) StartRead(&incoming_);
  if (steps.finish) Finish(steps.status);
}

}  // namespace microbatch::v2
