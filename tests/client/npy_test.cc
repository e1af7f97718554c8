#include "client/npy.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;

std::string Bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

TEST(NpyTest, WriteThenReadRoundTrip) {
  TempDir dir("npy_round_trip");
  const std::string path = dir.path() + "/a.npy";
  auto writer = NpyWriter::Create(path, DType::kFloat32, {3});
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->WriteRows(Bytes({1, 2, 3, 4, 5, 6})).ok());
  ASSERT_TRUE((*writer)->WriteRows(Bytes({7, 8, 9})).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  auto reader = NpyReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->dtype(), DType::kFloat32);
  EXPECT_THAT((*reader)->shape(), ::testing::ElementsAre(3, 3));
  std::string rows;
  ASSERT_TRUE((*reader)->ReadRows(1, 5, &rows).ok());  // clamped to 2 rows
  EXPECT_EQ(rows, Bytes({4, 5, 6, 7, 8, 9}));
}

TEST(NpyTest, AppendResumesAfterCompleteRows) {
  TempDir dir("npy_append");
  const std::string path = dir.path() + "/a.npy";
  auto writer = NpyWriter::Create(path, DType::kFloat32, {2});
  ASSERT_TRUE((*writer)->WriteRows(Bytes({1, 2, 3, 4})).ok());
  writer->reset();  // interrupted: header still says 0 rows, plus a torn row
  std::ofstream(path, std::ios::app | std::ios::binary) << "xx";
  auto complete = CountCompleteRows(path);
  ASSERT_TRUE(complete.ok());
  EXPECT_EQ(*complete, 2);
  auto appender = NpyWriter::Append(path, *complete);
  ASSERT_TRUE(appender.ok()) << appender.status();
  ASSERT_TRUE((*appender)->WriteRows(Bytes({5, 6})).ok());
  ASSERT_TRUE((*appender)->Finish().ok());
  auto reader = NpyReader::Open(path);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->rows(), 3);
  std::string rows;
  ASSERT_TRUE((*reader)->ReadRows(0, 3, &rows).ok());
  EXPECT_EQ(rows, Bytes({1, 2, 3, 4, 5, 6}));
}

void WriteRaw(const std::string& path, const std::string& dict, const std::string& data) {
  std::string header = "\x93NUMPY\x01";
  header += '\0';
  std::string padded = dict;
  while ((10 + padded.size() + 1) % 64) padded += ' ';
  padded += '\n';
  header += static_cast<char>(padded.size() & 0xff);
  header += static_cast<char>(padded.size() >> 8);
  std::ofstream(path, std::ios::binary) << header << padded << data;
}

TEST(NpyTest, MalformedFilesNameFileAndOffset) {
  TempDir dir("npy_bad");
  const std::string path = dir.path() + "/bad.npy";
  std::ofstream(path) << "PK\x03\x04 not npy";
  EXPECT_THAT(std::string(NpyReader::Open(path).status().message()),
              HasSubstr("bad.npy: byte 0: not a .npy file"));
  WriteRaw(path, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", std::string(8, '\0'));
  EXPECT_THAT(std::string(NpyReader::Open(path).status().message()),
              HasSubstr("byte 10: unsupported dtype '>f4'"));
  WriteRaw(path, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", std::string(16, '\0'));
  EXPECT_THAT(std::string(NpyReader::Open(path).status().message()), HasSubstr("Fortran-order"));
  WriteRaw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", std::string(16, '\0'));
  EXPECT_THAT(std::string(NpyReader::Open(path).status().message()),
              HasSubstr("data is truncated; shape [4,2] needs"));
  WriteRaw(path, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }", std::string(48, '\0'));
  auto ok = NpyReader::Open(path);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->dtype(), DType::kInt64);
  EXPECT_EQ((*ok)->row_bytes(), 24u);
}

}  // namespace
}  // namespace microbatch

namespace microbatch {
namespace {

// This process's address space now, from /proc/self/statm (pages).
uint64_t AddressSpaceBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  statm >> pages;
  return pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// Opens `path` with at most 1 GiB more address space than now; exits 0 when
// the reader refused it as a truncated header.
[[noreturn]] void OpenWithLittleMemoryAndExit(const std::string& path) {
  const rlim_t limit = AddressSpaceBytes() + (rlim_t{1} << 30);
  rlimit rl{limit, limit};
  setrlimit(RLIMIT_AS, &rl);
  absl::StatusOr<std::unique_ptr<NpyReader>> reader = NpyReader::Open(path);
  absl::StatusOr<int64_t> rows = CountCompleteRows(path);
  const bool ok = !reader.ok() && reader.status().code() == absl::StatusCode::kInvalidArgument &&
                  absl::StrContains(reader.status().message(),
                                    "header is shorter than its declared length") &&
                  !rows.ok();
  std::exit(ok ? 0 : 3);
}

// Found by fuzz_npy: a v2/v3 header declares its length in 4 bytes, and the
// reader allocated that many bytes before checking the file holds them (a
// 12-byte file made the CLI allocate 4 GiB, or die of bad_alloc). Run with
// at most 1 GiB more address space: the old code could not pass.
TEST(NpyTest, DeclaredHeaderLongerThanTheFileIsAnErrorWithoutAllocatingIt) {
  TempDir dir("npy_header_len");
  const std::string path = dir.path() + "/huge_header.npy";
  std::ofstream(path, std::ios::binary) << std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff{'descr'", 20);
  EXPECT_EXIT(OpenWithLittleMemoryAndExit(path), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace microbatch
