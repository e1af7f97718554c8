// BatchPredict framing: the fuzz input is a stream of length-prefixed
// messages (2-byte little-endian length, then the bytes), each decoded from a
// grpc::ByteBuffer with ParseBody (wire.h) as the reactor does, then checked
// by BatchFraming (batch_framing.h); chunks are also converted and validated
// against a model signature like BatchPredictReactor::AcceptChunk does. The
// stream ends at the first error, as the real one does. Checks: offsets
// advance by exactly the rows of each chunk and never pass kMaxJobOffset,
// sequences count up, and a chunk that validates has the rows the framing
// counted.
#include <grpcpp/grpcpp.h>

#include "server/core/signature.h"
#include "server/service/batch_framing.h"
#include "server/service/convert.h"
#include "server/service/wire.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  grpc_init();  // ByteBuffer and slices outside any channel or server
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microbatch;
  static const ModelSignature signature = {
      {{"x", DType::kFloat32, {4}}, {"ids", DType::kInt64, {-1}}},
      {{"y", DType::kFloat32, {4}}}};
  BatchFraming framing;
  int64_t chunks = 0;
  size_t pos = 0;
  while (pos + 2 <= size) {
    const size_t length = std::min<size_t>(data[pos] | (data[pos + 1] << 8), size - pos - 2);
    pos += 2;
    grpc::Slice slice(data + pos, length);
    pos += length;
    grpc::ByteBuffer body(&slice, 1);
    v1::BatchPredictRequest message;
    if (!ParseBody(body, &message).ok()) return 0;
    absl::StatusOr<BatchFraming::Kind> kind = framing.Classify(message);
    if (!kind.ok()) {
      FUZZ_CHECK(kind.status().code() == absl::StatusCode::kInvalidArgument);
      return 0;
    }
    if (*kind == BatchFraming::Kind::kHeader) {
      FUZZ_CHECK(!framing.have_header());
      if (!framing.AcceptHeader(message.header()).ok()) return 0;
      FUZZ_CHECK(framing.next_offset() == message.header().start_offset());
      FUZZ_CHECK(framing.next_offset() >= 0 && framing.next_offset() <= kMaxJobOffset);
      continue;
    }
    const int64_t offset_before = framing.next_offset();
    absl::StatusOr<ChunkPosition> position = framing.AcceptChunk(message.chunk());
    if (!position.ok()) {
      FUZZ_CHECK(framing.next_offset() == offset_before);
      return 0;
    }
    FUZZ_CHECK(position->sequence == chunks++);
    FUZZ_CHECK(position->offset == offset_before);
    FUZZ_CHECK(position->rows >= 0);
    FUZZ_CHECK(framing.next_offset() == offset_before + position->rows);
    FUZZ_CHECK(framing.next_offset() <= kMaxJobOffset);
    FUZZ_CHECK(framing.next_sequence() == chunks);
    absl::StatusOr<std::vector<RequestTensor>> tensors = ToRequestTensors(message.chunk().inputs());
    if (!tensors.ok()) continue;
    absl::StatusOr<ValidatedInputs> validated = ValidateInputs(signature, *tensors, 0);
    if (validated.ok()) FUZZ_CHECK(validated->rows == position->rows);
  }
  return 0;
}
