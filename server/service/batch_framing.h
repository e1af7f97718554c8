// The framing rules of a BatchPredict stream, without gRPC or a model: which
// message may come next, the chunk sequence numbers and the job's row
// offsets. BatchPredictReactor (batch_stream.h) applies them to every message
// it reads; they are separate so that they can be unit-tested and fuzzed.
//
// Rules. The first message is a BatchJobHeader whose start_offset is in
// [0, kMaxJobOffset]; every later message is a BatchChunk whose sequence is
// 0, 1, 2, ... and whose rows keep the job's offset <= kMaxJobOffset. A second
// header, a chunk before the header, a message with neither, a wrong sequence
// or an offset overflow is INVALID_ARGUMENT and ends the stream.
#ifndef MICROBATCH_SERVER_SERVICE_BATCH_FRAMING_H_
#define MICROBATCH_SERVER_SERVICE_BATCH_FRAMING_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "microbatch/v1/inference.pb.h"

namespace microbatch {

// Largest row offset of a job: offsets and row counts stay far from int64
// overflow (2^62 rows is more than any dataset).
constexpr int64_t kMaxJobOffset = int64_t{1} << 62;

// The rows a chunk claims, as the client counts them: the first dimension of
// its first input when that is positive, else 0. Defined even for a chunk
// that fails validation, so that the stream's offsets still advance by what
// the client sent.
int64_t ChunkSentRows(const v1::BatchChunk& chunk);

// Where a chunk sits in the job.
struct ChunkPosition {
  int64_t sequence = 0;
  int64_t offset = 0;  // row offset of the chunk's first row
  int64_t rows = 0;    // ChunkSentRows()
};

// The framing state of one stream. Not thread-safe (the reactor holds its
// lock). Invariants: next_offset() <= kMaxJobOffset; next_sequence() counts
// the chunks accepted.
class BatchFraming {
 public:
  enum class Kind { kHeader, kChunk };

  // What `message` is, if it may come now: INVALID_ARGUMENT for a second
  // header, a chunk before the header, or a message that is neither.
  absl::StatusOr<Kind> Classify(const v1::BatchPredictRequest& message) const;

  // Checks the header's start_offset and, when OK, starts the job at it.
  // Call only after Classify() returned kHeader.
  absl::Status AcceptHeader(const v1::BatchJobHeader& header);

  // Checks the chunk's sequence and that its rows keep the offset in range;
  // when OK returns its position and advances past it. Call only after
  // Classify() returned kChunk.
  absl::StatusOr<ChunkPosition> AcceptChunk(const v1::BatchChunk& chunk);

  bool have_header() const { return have_header_; }
  int64_t next_sequence() const { return next_sequence_; }
  // Row offset of the next chunk's first row.
  int64_t next_offset() const { return next_offset_; }
  // The header's start_offset (0 before the header).
  int64_t start_offset() const { return start_offset_; }
  // Index of the next message in the stream (the header is message 0), for
  // error messages.
  int64_t next_message_index() const { return next_sequence_ + (have_header_ ? 1 : 0); }

 private:
  bool have_header_ = false;
  int64_t next_sequence_ = 0;
  int64_t next_offset_ = 0;
  int64_t start_offset_ = 0;
};

}  // namespace microbatch

#endif  // MICROBATCH_SERVER_SERVICE_BATCH_FRAMING_H_
