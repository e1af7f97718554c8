// The BatchPredict framing rules (server/service/batch_framing.h), without a
// stream.
#include "server/service/batch_framing.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace microbatch {
namespace {

using ::testing::HasSubstr;

v1::BatchPredictRequest Header(int64_t start_offset) {
  v1::BatchPredictRequest message;
  message.mutable_header()->set_model("m");
  message.mutable_header()->set_start_offset(start_offset);
  return message;
}

v1::BatchPredictRequest Chunk(int64_t sequence, std::vector<int64_t> shape) {
  v1::BatchPredictRequest message;
  message.mutable_chunk()->set_sequence(sequence);
  v1::Tensor* tensor = message.mutable_chunk()->add_inputs();
  tensor->set_name("x");
  for (int64_t d : shape) tensor->add_shape(d);
  return message;
}

TEST(BatchFramingTest, HeaderThenChunksAdvanceSequenceAndOffset) {
  BatchFraming framing;
  EXPECT_EQ(framing.next_message_index(), 0);
  ASSERT_EQ(*framing.Classify(Header(100)), BatchFraming::Kind::kHeader);
  ASSERT_TRUE(framing.AcceptHeader(Header(100).header()).ok());
  EXPECT_EQ(framing.start_offset(), 100);
  EXPECT_EQ(framing.next_message_index(), 1);
  for (int64_t s = 0; s < 3; ++s) {
    v1::BatchPredictRequest chunk = Chunk(s, {10, 4});
    ASSERT_EQ(*framing.Classify(chunk), BatchFraming::Kind::kChunk);
    absl::StatusOr<ChunkPosition> position = framing.AcceptChunk(chunk.chunk());
    ASSERT_TRUE(position.ok()) << position.status();
    EXPECT_EQ(position->sequence, s);
    EXPECT_EQ(position->offset, 100 + 10 * s);
    EXPECT_EQ(position->rows, 10);
  }
  EXPECT_EQ(framing.next_sequence(), 3);
  EXPECT_EQ(framing.next_offset(), 130);
  EXPECT_EQ(framing.next_message_index(), 4);
}

TEST(BatchFramingTest, OrderViolationsAreInvalidArgument) {
  BatchFraming framing;
  absl::StatusOr<BatchFraming::Kind> kind = framing.Classify(Chunk(0, {1}));
  EXPECT_EQ(kind.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(kind.status().message(), HasSubstr("must be a BatchJobHeader"));
  EXPECT_FALSE(framing.AcceptChunk(Chunk(0, {1}).chunk()).ok());
  EXPECT_EQ(framing.Classify(v1::BatchPredictRequest()).status().code(),
            absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(framing.AcceptHeader(Header(0).header()).ok());
  EXPECT_THAT(framing.Classify(Header(0)).status().message(), HasSubstr("a second BatchJobHeader"));
  EXPECT_FALSE(framing.AcceptHeader(Header(0).header()).ok());
  EXPECT_THAT(framing.Classify(v1::BatchPredictRequest()).status().message(),
              HasSubstr("empty BatchPredictRequest"));
  absl::StatusOr<ChunkPosition> skipped = framing.AcceptChunk(Chunk(1, {1}).chunk());
  EXPECT_THAT(skipped.status().message(), HasSubstr("chunk sequence 1, expected 0"));
  // Failed checks change nothing.
  EXPECT_EQ(framing.next_sequence(), 0);
  EXPECT_EQ(framing.next_offset(), 0);
}

TEST(BatchFramingTest, StartOffsetMustBeInRange) {
  for (int64_t bad : {int64_t{-1}, kMaxJobOffset + 1, INT64_MIN, INT64_MAX}) {
    BatchFraming framing;
    absl::Status status = framing.AcceptHeader(Header(bad).header());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(framing.have_header());
  }
  BatchFraming framing;
  EXPECT_TRUE(framing.AcceptHeader(Header(kMaxJobOffset).header()).ok());
  // At the largest offset only chunks without rows still fit.
  EXPECT_TRUE(framing.AcceptChunk(Chunk(0, {0, 4}).chunk()).ok());
  EXPECT_THAT(framing.AcceptChunk(Chunk(1, {1, 4}).chunk()).status().message(),
              HasSubstr("would pass the largest job offset"));
}

TEST(BatchFramingTest, RowCountsNeverOverflowTheOffset) {
  BatchFraming framing;
  ASSERT_TRUE(framing.AcceptHeader(Header(kMaxJobOffset - 5).header()).ok());
  EXPECT_FALSE(framing.AcceptChunk(Chunk(0, {INT64_MAX}).chunk()).ok());
  EXPECT_FALSE(framing.AcceptChunk(Chunk(0, {6}).chunk()).ok());
  absl::StatusOr<ChunkPosition> last = framing.AcceptChunk(Chunk(0, {5}).chunk());
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(framing.next_offset(), kMaxJobOffset);
}

TEST(BatchFramingTest, SentRowsOfMalformedChunksAreZero) {
  EXPECT_EQ(ChunkSentRows(v1::BatchChunk()), 0);
  EXPECT_EQ(ChunkSentRows(Chunk(0, {}).chunk()), 0);
  EXPECT_EQ(ChunkSentRows(Chunk(0, {-7, 3}).chunk()), 0);
  EXPECT_EQ(ChunkSentRows(Chunk(0, {INT64_MIN}).chunk()), 0);
  EXPECT_EQ(ChunkSentRows(Chunk(0, {7, 3}).chunk()), 7);
}

}  // namespace
}  // namespace microbatch
