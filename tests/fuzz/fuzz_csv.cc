// The client's CSV reader: the fuzz input is a file given to CsvReader (every
// dtype), ValidateCsv, CountCsvRows and the batch command's row source.
// Rows read must hold columns x element size bytes each.
#include "client/batch_io.h"
#include "client/csv.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microbatch;
  const std::string path = fuzz::WriteTempFile(".csv", data, size);
  (void)CountCsvRows(path);
  for (DType dtype : {DType::kFloat32, DType::kInt64, DType::kUInt8, DType::kBool, DType::kFloat16,
                      DType::kBFloat16, DType::kFloat64, DType::kInt8}) {
    absl::StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
    if (!reader.ok()) break;
    const size_t columns = (*reader)->columns().size();
    FUZZ_CHECK(columns >= 1);
    std::string out;
    int64_t total = 0;
    for (int i = 0; i < 64; ++i) {
      const size_t before = out.size();
      absl::StatusOr<int64_t> n = (*reader)->ReadRows(5, dtype, &out);
      if (!n.ok() || *n == 0) break;
      FUZZ_CHECK(*n > 0 && *n <= 5);
      FUZZ_CHECK(out.size() - before == static_cast<size_t>(*n) * columns * DTypeSize(dtype));
      total += *n;
    }
    absl::StatusOr<int64_t> validated = ValidateCsv(path, dtype);
    if (validated.ok()) FUZZ_CHECK(*validated >= total || total == 64 * 5);
  }
  v1::ModelMetadata model;
  model.set_name("m");
  v1::TensorMetadata* input = model.add_inputs();
  input->set_name("x");
  input->set_dtype(v1::FP32);
  input->add_shape(-1);
  input->add_shape(-1);
  absl::StatusOr<std::unique_ptr<RowSource>> source = OpenRowSource({path}, model);
  if (source.ok()) {
    Tensors tensors;
    const int64_t total = (*source)->rows();
    for (int64_t first = 0; first < total && first < 64;) {
      const int64_t count = std::min<int64_t>(5, total - first);
      tensors.Clear();
      if (!(*source)->Read(first, count, &tensors).ok()) break;
      FUZZ_CHECK(tensors.size() == 1 && tensors[0].shape_size() == 2);
      FUZZ_CHECK(tensors[0].shape(0) == count);
      FUZZ_CHECK(tensors[0].data().size() == static_cast<size_t>(count * tensors[0].shape(1)) * 4);
      first += count;
    }
  }
  return 0;
}
