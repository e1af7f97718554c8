// The client's .npy reader: the fuzz input is a file given to NpyReader,
// CountCompleteRows and the batch command's row source (OpenRowSource with a
// one-input model). Every read must stay inside the file and return whole
// rows.
#include "client/batch_io.h"
#include "client/npy.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microbatch;
  const std::string path = fuzz::WriteTempFile(".npy", data, size);
  absl::StatusOr<int64_t> complete = CountCompleteRows(path);
  absl::StatusOr<std::unique_ptr<NpyReader>> reader = NpyReader::Open(path);
  if (reader.ok()) {
    NpyReader& r = **reader;
    FUZZ_CHECK(!r.shape().empty() && r.rows() >= 0);
    FUZZ_CHECK(r.dtype() != DType::kInvalid);
    // The data the header announces is in the file.
    FUZZ_CHECK(r.row_bytes() == 0 ||
               static_cast<uint64_t>(r.rows()) <= size / r.row_bytes());
    std::string rows;
    for (int64_t first : {int64_t{0}, r.rows() / 2, r.rows() - 1, r.rows()}) {
      if (first < 0) continue;
      absl::Status read = r.ReadRows(first, 3, &rows);
      if (read.ok()) {
        FUZZ_CHECK(r.row_bytes() == 0 || rows.size() % r.row_bytes() == 0);
        FUZZ_CHECK(rows.size() <= 3 * r.row_bytes());
      }
    }
  }
  // The batch command's source, for a model taking FP32 rows of any width
  // and for one taking [2, 3] rows.
  for (std::vector<int64_t> shape : {std::vector<int64_t>{-1, -1}, std::vector<int64_t>{-1, 2, 3}}) {
    v1::ModelMetadata model;
    model.set_name("m");
    v1::TensorMetadata* input = model.add_inputs();
    input->set_name("x");
    input->set_dtype(v1::FP32);
    for (int64_t d : shape) input->add_shape(d);
    absl::StatusOr<std::unique_ptr<RowSource>> source = OpenRowSource({path}, model);
    if (!source.ok()) continue;
    const int64_t total = (*source)->rows();
    FUZZ_CHECK(total >= 0);
    Tensors tensors;
    int64_t first = 0;
    for (int i = 0; i < 4 && first < total; ++i) {
      const int64_t count = std::min<int64_t>(7, total - first);
      tensors.Clear();
      if (!(*source)->Read(first, count, &tensors).ok()) break;
      FUZZ_CHECK(tensors.size() == 1);
      FUZZ_CHECK(tensors[0].shape_size() >= 1 && tensors[0].shape(0) == count);
      first += count;
    }
  }
  (void)complete;
  return 0;
}
