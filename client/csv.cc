#include "client/csv.h"

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/tensor_json.h"

namespace microbatch {
namespace {

std::vector<absl::string_view> Split(const std::string& line) {
  std::vector<absl::string_view> fields;
  for (absl::string_view f : absl::StrSplit(line, ',')) {
    f = absl::StripAsciiWhitespace(f);
    fields.push_back(f);
  }
  return fields;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CsvReader>> CsvReader::Open(const std::string& path) {
  auto reader = std::unique_ptr<CsvReader>(new CsvReader);
  reader->path_ = path;
  reader->in_.open(path);
  if (!reader->in_) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  if (!std::getline(reader->in_, reader->line_)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":1: empty file; expected a header row"));
  }
  reader->line_number_ = 1;
  if (!reader->line_.empty() && reader->line_.back() == '\r') reader->line_.pop_back();
  std::set<std::string> seen;
  for (absl::string_view name : Split(reader->line_)) {
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":1: header has an empty column name"));
    }
    if (!seen.insert(std::string(name)).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":1: column '", name, "' appears twice"));
    }
    reader->columns_.emplace_back(name);
  }
  return reader;
}

absl::StatusOr<bool> CsvReader::NextRow(std::vector<absl::string_view>* fields) {
  while (std::getline(in_, line_)) {
    ++line_number_;
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (absl::StripAsciiWhitespace(line_).empty()) continue;
    *fields = Split(line_);
    if (fields->size() != columns_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_number_, ": expected ",
                                                     columns_.size(), " fields, got ",
                                                     fields->size()));
    }
    return true;
  }
  return false;
}

absl::StatusOr<int64_t> CsvReader::ReadRows(int64_t count, DType dtype, std::string* out) {
  const size_t element = DTypeSize(dtype);
  std::vector<absl::string_view> fields;
  int64_t read = 0;
  while (read < count) {
    absl::StatusOr<bool> more = NextRow(&fields);
    if (!more.ok()) return more.status();
    if (!*more) break;
    const size_t base = out->size();
    out->resize(base + fields.size() * element);
    for (size_t i = 0; i < fields.size(); ++i) {
      double value;
      const char* begin = fields[i].data();
      const char* end = begin + fields[i].size();
      auto [ptr, ec] = std::from_chars(begin, end, value);
      if (ec != std::errc() || ptr != end || fields[i].empty()) {
        return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_number_, ": column ", i + 1,
                                                       " ('", columns_[i], "'): '", fields[i],
                                                       "' is not a number"));
      }
      if (!FitsDType(dtype, value)) {
        return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_number_, ": column ", i + 1,
                                                       " ('", columns_[i], "'): '", fields[i],
                                                       "' is out of range for ", DTypeName(dtype)));
      }
      StoreElement(dtype, value, out->data() + base, i);
    }
    ++read;
  }
  return read;
}

absl::Status CsvReader::SkipRows(int64_t count) {
  std::vector<absl::string_view> fields;
  for (int64_t i = 0; i < count; ++i) {
    absl::StatusOr<bool> more = NextRow(&fields);
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ValidateCsv(const std::string& path, DType dtype) {
  absl::StatusOr<std::unique_ptr<CsvReader>> reader = CsvReader::Open(path);
  if (!reader.ok()) return reader.status();
  int64_t rows = 0;
  std::string scratch;
  while (true) {
    scratch.clear();
    absl::StatusOr<int64_t> n = (*reader)->ReadRows(4096, dtype, &scratch);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    rows += *n;
  }
  if (rows == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no data rows"));
  return rows;
}

absl::StatusOr<std::unique_ptr<CsvWriter>> CsvWriter::Create(const std::string& path,
                                                             const std::vector<std::string>& columns) {
  auto writer = std::unique_ptr<CsvWriter>(new CsvWriter);
  writer->path_ = path;
  writer->out_.open(path, std::ios::trunc);
  if (!writer->out_) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot create"));
  writer->out_ << absl::StrJoin(columns, ",") << "\n";
  return writer;
}

absl::StatusOr<int64_t> CountCsvRows(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  int64_t newlines = 0;
  char buf[1 << 16];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) newlines += buf[i] == '\n';
  }
  return std::max<int64_t>(0, newlines - 1);
}

absl::StatusOr<std::unique_ptr<CsvWriter>> CsvWriter::Append(const std::string& path, int64_t keep_rows) {
  // Find the byte just after line keep_rows + 1 (the header counts as one).
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  int64_t lines = 0;
  uint64_t end = 0;
  char c;
  while (lines < keep_rows + 1 && in.get(c)) {
    ++end;
    if (c == '\n') ++lines;
  }
  in.close();
  std::error_code ec;
  std::filesystem::resize_file(path, end, ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": ", ec.message()));
  auto writer = std::unique_ptr<CsvWriter>(new CsvWriter);
  writer->path_ = path;
  writer->out_.open(path, std::ios::app);
  if (!writer->out_) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot open"));
  return writer;
}

absl::Status CsvWriter::WriteRows(const std::vector<double>& values, size_t columns) {
  std::string text;
  char buf[32];
  for (size_t i = 0; i < values.size(); ++i) {
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), values[i]);
    text.append(buf, ptr);
    text += ((i + 1) % columns == 0) ? '\n' : ',';
  }
  out_ << text;
  if (!out_) return absl::InternalError(absl::StrCat(path_, ": write failed (disk full?)"));
  return absl::OkStatus();
}

absl::Status CsvWriter::Finish() {
  out_.close();
  if (out_.fail()) return absl::InternalError(absl::StrCat(path_, ": close failed"));
  return absl::OkStatus();
}

}  // namespace microbatch
