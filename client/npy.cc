#include "client/npy.h"

#include <cstring>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace microbatch {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

struct Descr {
  const char* text;
  DType dtype;
};
constexpr Descr kDescrs[] = {
    {"<f4", DType::kFloat32}, {"<f8", DType::kFloat64}, {"<f2", DType::kFloat16},
    {"<i8", DType::kInt64},   {"<i4", DType::kInt32},   {"<i2", DType::kInt16},
    {"|i1", DType::kInt8},    {"|u1", DType::kUInt8},   {"|b1", DType::kBool},
};

std::string DescrOf(DType dtype) {
  for (const Descr& d : kDescrs) {
    if (d.dtype == dtype) return d.text;
  }
  return "";
}

struct Header {
  DType dtype = DType::kInvalid;
  std::vector<int64_t> shape;
  uint64_t data_offset = 0;
};

// Value of 'key' in the header dict: the text after "'key':" up to the next
// top-level comma or closing brace.
bool DictValue(absl::string_view dict, absl::string_view key, std::string* value) {
  const std::string quoted = absl::StrCat("'", key, "'");
  size_t pos = dict.find(quoted);
  if (pos == absl::string_view::npos) return false;
  pos = dict.find(':', pos + quoted.size());
  if (pos == absl::string_view::npos) return false;
  ++pos;
  int depth = 0;
  size_t end = pos;
  for (; end < dict.size(); ++end) {
    const char c = dict[end];
    if (c == '(' || c == '[') ++depth;
    if (c == ')' || c == ']') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  *value = std::string(absl::StripAsciiWhitespace(dict.substr(pos, end - pos)));
  return true;
}

absl::StatusOr<Header> ReadHeader(std::istream& in, const std::string& path) {
  auto bad = [&](uint64_t offset, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": byte ", offset, ": ", what));
  };
  char prefix[8];
  if (!in.read(prefix, 8) || std::memcmp(prefix, kMagic, 6) != 0) {
    return bad(0, "not a .npy file (missing the \\x93NUMPY magic)");
  }
  const int major = static_cast<unsigned char>(prefix[6]);
  uint64_t header_len = 0;
  uint64_t offset = 8;
  if (major == 1) {
    unsigned char len[2];
    if (!in.read(reinterpret_cast<char*>(len), 2)) return bad(8, "truncated header length");
    header_len = len[0] | (len[1] << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    unsigned char len[4];
    if (!in.read(reinterpret_cast<char*>(len), 4)) return bad(8, "truncated header length");
    header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint64_t>(len[3]) << 24);
    offset = 12;
  } else {
    return bad(6, absl::StrCat("unsupported .npy format version ", major));
  }
  // The declared length comes from the file: check it against what the file
  // holds before allocating (a 12-byte file may declare a 4 GiB header).
  const std::streampos here = in.tellg();
  in.seekg(0, std::ios::end);
  const std::streamoff remaining = in.tellg() - here;
  in.seekg(here);
  if (here < 0 || remaining < 0 || header_len > static_cast<uint64_t>(remaining)) {
    return bad(offset, "header is shorter than its declared length");
  }
  std::string dict(header_len, '\0');
  if (!in.read(dict.data(), static_cast<std::streamsize>(header_len))) {
    return bad(offset, "header is shorter than its declared length");
  }
  Header header;
  header.data_offset = offset + header_len;
  std::string descr, fortran, shape;
  if (!DictValue(dict, "descr", &descr) || !DictValue(dict, "fortran_order", &fortran) ||
      !DictValue(dict, "shape", &shape)) {
    return bad(offset, absl::StrCat("malformed header dict: ", dict));
  }
  descr = std::string(absl::StripSuffix(absl::StripPrefix(descr, "'"), "'"));
  if (descr == "<u1") descr = "|u1";
  if (descr == "<i1") descr = "|i1";
  for (const Descr& d : kDescrs) {
    if (descr == d.text) header.dtype = d.dtype;
  }
  if (header.dtype == DType::kInvalid) {
    return bad(offset, absl::StrCat("unsupported dtype '", descr,
                                    "' (supported: little-endian f2 f4 f8 i1 i2 i4 i8 u1 b1)"));
  }
  if (fortran != "False") return bad(offset, "Fortran-order arrays are not supported; save C order");
  absl::string_view dims = absl::StripSuffix(absl::StripPrefix(shape, "("), ")");
  for (absl::string_view part : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    int64_t d;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &d) || d < 0) {
      return bad(offset, absl::StrCat("malformed shape ", shape));
    }
    header.shape.push_back(d);
  }
  if (header.shape.empty()) return bad(offset, "a 0-d array has no rows; save at least 1-d");
  return header;
}

size_t RowBytes(DType dtype, const std::vector<int64_t>& shape) {
  size_t bytes = DTypeSize(dtype);
  for (size_t i = 1; i < shape.size(); ++i) bytes *= static_cast<size_t>(shape[i]);
  return bytes;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NpyReader>> NpyReader::Open(const std::string& path) {
  auto reader = std::unique_ptr<NpyReader>(new NpyReader);
  reader->path_ = path;
  reader->in_.open(path, std::ios::binary);
  if (!reader->in_) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  absl::StatusOr<Header> header = ReadHeader(reader->in_, path);
  if (!header.ok()) return header.status();
  reader->dtype_ = header->dtype;
  reader->shape_ = header->shape;
  reader->data_offset_ = header->data_offset;
  reader->row_bytes_ = RowBytes(header->dtype, header->shape);
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  const uint64_t need = header->data_offset + reader->row_bytes_ * header->shape[0];
  if (ec || size < need) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": byte ", size, ": data is truncated; shape ",
                                                   ShapeToString(header->shape), " needs ", need,
                                                   " bytes in all"));
  }
  return reader;
}

absl::Status NpyReader::ReadRows(int64_t first, int64_t count, std::string* out) {
  first = std::clamp<int64_t>(first, 0, rows());
  count = std::clamp<int64_t>(count, 0, rows() - first);
  out->resize(static_cast<size_t>(count) * row_bytes_);
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(data_offset_ + first * row_bytes_));
  if (!in_.read(out->data(), static_cast<std::streamsize>(out->size()))) {
    return absl::DataLossError(absl::StrCat(path_, ": read failed at row ", first));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<NpyWriter>> NpyWriter::Create(const std::string& path, DType dtype,
                                                             std::vector<int64_t> row_shape) {
  if (DescrOf(dtype).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(DTypeName(dtype), " cannot be stored in .npy"));
  }
  auto writer = std::unique_ptr<NpyWriter>(new NpyWriter);
  writer->path_ = path;
  writer->dtype_ = dtype;
  writer->row_shape_ = std::move(row_shape);
  std::vector<int64_t> shape = {0};
  shape.insert(shape.end(), writer->row_shape_.begin(), writer->row_shape_.end());
  writer->row_bytes_ = RowBytes(dtype, shape);
  writer->out_.open(path, std::ios::binary | std::ios::in | std::ios::out | std::ios::trunc);
  if (!writer->out_) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot create"));
  if (absl::Status s = writer->WriteHeader(); !s.ok()) return s;
  return writer;
}

absl::StatusOr<std::unique_ptr<NpyWriter>> NpyWriter::Append(const std::string& path,
                                                             int64_t keep_rows) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  absl::StatusOr<Header> header = ReadHeader(in, path);
  if (!header.ok()) return header.status();
  in.close();
  auto writer = std::unique_ptr<NpyWriter>(new NpyWriter);
  writer->path_ = path;
  writer->dtype_ = header->dtype;
  writer->row_shape_.assign(header->shape.begin() + 1, header->shape.end());
  writer->row_bytes_ = RowBytes(header->dtype, header->shape);
  writer->rows_ = keep_rows;
  std::error_code ec;
  std::filesystem::resize_file(path, header->data_offset + keep_rows * writer->row_bytes_, ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": ", ec.message()));
  writer->out_.open(path, std::ios::binary | std::ios::in | std::ios::out);
  if (!writer->out_) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot open"));
  writer->out_.seekp(0, std::ios::end);
  return writer;
}

absl::Status NpyWriter::WriteHeader() {
  std::vector<std::string> dims = {absl::StrCat(rows_)};
  for (int64_t d : row_shape_) dims.push_back(absl::StrCat(d));
  std::string shape = absl::StrJoin(dims, ", ");
  if (dims.size() == 1) shape += ",";
  std::string dict = absl::StrCat("{'descr': '", DescrOf(dtype_), "', 'fortran_order': False, 'shape': (",
                                  shape, "), }");
  // Pad for the widest row count so the header never changes length.
  const size_t fixed = dict.size() + 20 - dims[0].size();
  const size_t total = (10 + fixed + 1 + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict += '\n';
  std::string header(kMagic, 6);
  header += '\x01';
  header += '\x00';
  header += static_cast<char>(dict.size() & 0xff);
  header += static_cast<char>((dict.size() >> 8) & 0xff);
  header += dict;
  const auto position = out_.tellp();
  out_.seekp(0);
  out_.write(header.data(), static_cast<std::streamsize>(header.size()));
  if (position > 0) out_.seekp(position);
  if (!out_) return absl::InternalError(absl::StrCat(path_, ": write failed"));
  return absl::OkStatus();
}

absl::Status NpyWriter::WriteRows(absl::string_view bytes) {
  if (row_bytes_ == 0 || bytes.size() % row_bytes_ != 0) {
    return absl::InternalError(absl::StrCat(path_, ": ", bytes.size(), " bytes is not whole rows of ",
                                            row_bytes_));
  }
  out_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out_) return absl::InternalError(absl::StrCat(path_, ": write failed (disk full?)"));
  rows_ += static_cast<int64_t>(bytes.size() / row_bytes_);
  return absl::OkStatus();
}

absl::Status NpyWriter::Finish() {
  if (absl::Status s = WriteHeader(); !s.ok()) return s;
  out_.close();
  if (out_.fail()) return absl::InternalError(absl::StrCat(path_, ": close failed"));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> CountCompleteRows(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  absl::StatusOr<Header> header = ReadHeader(in, path);
  if (!header.ok()) return header.status();
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  const size_t row_bytes = RowBytes(header->dtype, header->shape);
  if (ec || size < header->data_offset || row_bytes == 0) return 0;
  return static_cast<int64_t>((size - header->data_offset) / row_bytes);
}

}  // namespace microbatch
