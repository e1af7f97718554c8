#include "server/service/batch_framing.h"

#include "absl/strings/str_cat.h"

namespace microbatch {

int64_t ChunkSentRows(const v1::BatchChunk& chunk) {
  const auto& sent = chunk.inputs();
  if (sent.empty() || sent[0].shape_size() == 0 || sent[0].shape(0) <= 0) return 0;
  return sent[0].shape(0);
}

absl::StatusOr<BatchFraming::Kind> BatchFraming::Classify(
    const v1::BatchPredictRequest& message) const {
  if (message.has_header()) {
    if (have_header_) {
      return absl::InvalidArgumentError("a second BatchJobHeader; send it only first");
    }
    return Kind::kHeader;
  }
  if (!have_header_) {
    return absl::InvalidArgumentError("the first BatchPredict message must be a BatchJobHeader");
  }
  if (!message.has_chunk()) return absl::InvalidArgumentError("empty BatchPredictRequest");
  return Kind::kChunk;
}

absl::Status BatchFraming::AcceptHeader(const v1::BatchJobHeader& header) {
  if (have_header_) {
    return absl::InvalidArgumentError("a second BatchJobHeader; send it only first");
  }
  if (header.start_offset() < 0 || header.start_offset() > kMaxJobOffset) {
    return absl::InvalidArgumentError(absl::StrCat("start_offset must be in [0, ", kMaxJobOffset,
                                                   "], got ", header.start_offset()));
  }
  have_header_ = true;
  start_offset_ = next_offset_ = header.start_offset();
  return absl::OkStatus();
}

absl::StatusOr<ChunkPosition> BatchFraming::AcceptChunk(const v1::BatchChunk& chunk) {
  if (!have_header_) {
    return absl::InvalidArgumentError("the first BatchPredict message must be a BatchJobHeader");
  }
  if (chunk.sequence() != next_sequence_) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk sequence ", chunk.sequence(), ", expected ", next_sequence_));
  }
  // Checked before any arithmetic on the offset.
  const int64_t rows = ChunkSentRows(chunk);
  if (rows > kMaxJobOffset - next_offset_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk sequence ", next_sequence_, ": ", rows, " rows after offset ", next_offset_,
        " would pass the largest job offset ", kMaxJobOffset));
  }
  ChunkPosition position{next_sequence_, next_offset_, rows};
  ++next_sequence_;
  next_offset_ += rows;
  return position;
}

}  // namespace microbatch
