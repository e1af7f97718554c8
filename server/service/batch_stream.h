// The server side of BatchPredict: one reactor per stream.
//
// Protocol. The first message is a BatchJobHeader (model, version, outputs,
// job id, start offset); every later message is a BatchChunk with sequence
// numbers 0, 1, 2, ... The server answers each chunk with one
// BatchChunkResult, in sequence order, carrying the row offset it covers
// (start_offset + rows of the chunks before it). An invalid chunk (dtype,
// shape, byte length, ...) gets an in-band error and the stream goes on; a
// missing or repeated header, an out-of-order sequence, a message that does
// not decode, or row counts that would overflow the job's offset end the
// stream with INVALID_ARGUMENT. A stream ends OK only when every chunk read
// was answered; every error status after the header says where to resume:
// its message ends "resume the job at offset N" and the trailing metadata
// "microbatch-resume-offset" holds N (the offset just past the last chunk
// answered).
//
// Flow control. At most `window` chunks are in flight per stream (read but
// not yet written back); the next read starts only when one is written, so a
// client that reads slowly slows the server down instead of filling its
// memory.
//
// Priority. Chunks are split into tasks of at most max_batch_size rows,
// queued as Priority::kBulk: Predict requests on the same model always go
// first, and bulk rows only top up batches.
//
// Drain. After BeginDrain() a stream reads no new chunks, answers those it
// has, then ends with UNAVAILABLE and the trailing metadata
// "microbatch-resume-offset" (the offset to resume the job from elsewhere).
#ifndef MICROBATCH_SERVER_SERVICE_BATCH_STREAM_H_
#define MICROBATCH_SERVER_SERVICE_BATCH_STREAM_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>

#include "microbatch/v1/inference.grpc.pb.h"
#include "server/core/memory_budget.h"
#include "server/core/sync.h"
#include "server/service/batch_framing.h"
#include "server/service/model_manager.h"

namespace microbatch {

class BatchStreamRegistry;

// Deletes itself once the RPC is done and none of its tasks is queued or
// running. Thread-safe: gRPC reactions and batcher callbacks may run
// concurrently.
class BatchPredictReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // `repository` null means models are still loading (the stream is refused
  // with UNAVAILABLE). `registry` and `metrics` are not owned.
  // `budget` (not owned) bounds the bytes of the chunks in flight, over all
  // streams and Predict calls: a chunk that does not fit ends the stream with
  // RESOURCE_EXHAUSTED and the offset to resume from.
  BatchPredictReactor(grpc::CallbackServerContext* context, ModelManager* repository,
                      ServerMetrics* metrics, MemoryBudget* budget, BatchStreamRegistry* registry,
                      int window);

  // Stops reading; ends the stream with UNAVAILABLE once in-flight chunks
  // are answered.
  void BeginDrain();
  // Keeps the reactor alive until the matching Unpin(); only for a registered
  // reactor, under the registry's lock.
  void Pin();
  void Unpin();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  struct Chunk;

  ~BatchPredictReactor() override;
  // Takes the chunk just read; called with mu_ held.
  void AcceptChunk() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the answer to one part of a chunk's task (TaskOutputs::task_row()
  // and rows() say which rows).
  void OnPartDone(Chunk* chunk, const absl::Status& status, const TaskOutputs& outputs);
  // Starts whatever read, write or finish the state allows. Call without mu_.
  void Pump();
  void FailStream(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops `count` refs; deletes the reactor when they were the last and the
  // RPC is done.
  void Unref(int64_t count = 1);

  grpc::CallbackServerContext* const context_;
  ModelManager* const repository_;
  ServerMetrics* const metrics_;
  MemoryBudget* const budget_;
  BatchStreamRegistry* const registry_;
  const int window_;
  std::atomic<bool> cancelled_{false};

  Mutex mu_;
  grpc::ByteBuffer read_buffer_;
  // The encoded chunk result being written.
  grpc::ByteBuffer write_buffer_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<ServedModel> model_ ABSL_GUARDED_BY(mu_);
  std::vector<int> selected_outputs_ ABSL_GUARDED_BY(mu_);
  // Header, sequence numbers and row offsets of the messages read.
  BatchFraming framing_ ABSL_GUARDED_BY(mu_);
  // Offset just past the last chunk written back.
  int64_t answered_offset_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::unique_ptr<Chunk>> window_chunks_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // The first error that ends the stream, and the status it ended with.
  std::optional<absl::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  // Queued or running tasks plus pins; the reactor is deleted once the RPC
  // is done and this is zero.
  int64_t refs_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// The live streams, so that a drain reaches all of them. Thread-safe. Lock
// order: the registry's lock, then a reactor's; a reactor never calls the
// registry with its own lock held.
class BatchStreamRegistry {
 public:
  // Returns false when draining already began (the stream should refuse).
  bool Add(BatchPredictReactor* reactor);
  void Remove(BatchPredictReactor* reactor);
  void BeginDrain();
  bool draining();
  // Live streams.
  int64_t size();

 private:
  Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<BatchPredictReactor*> reactors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_BATCH_STREAM_H_
