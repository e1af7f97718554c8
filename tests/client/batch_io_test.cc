// `microbatch batch` files: missing parent directories of --output.
#include "client/batch_io.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_util.h"

namespace microbatch {
namespace {

namespace fs = std::filesystem;
using ::microbatch::testing::TempDir;
using ::testing::HasSubstr;

TEST(CreateParentDirectoriesTest, CreatesEveryMissingLevel) {
  TempDir dir("batch_io_dirs");
  const std::string output = dir.path() + "/fresh/volume/out/result.npy";
  ASSERT_TRUE(CreateParentDirectories(output).ok());
  EXPECT_TRUE(fs::is_directory(dir.path() + "/fresh/volume/out"));
  EXPECT_FALSE(fs::exists(output));  // only the directories
  // Again, with the directories there: nothing to do.
  EXPECT_TRUE(CreateParentDirectories(output).ok());
  // A bare file name has no parent to create.
  EXPECT_TRUE(CreateParentDirectories("result.npy").ok());
}

TEST(CreateParentDirectoriesTest, ClearErrorWhenAParentIsAFile) {
  TempDir dir("batch_io_dirs_file");
  std::ofstream(dir.path() + "/data") << "a file, not a directory";
  const std::string output = dir.path() + "/data/out/result.npy";
  const absl::Status status = CreateParentDirectories(output);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("--output " + output));
  EXPECT_THAT(status.message(), HasSubstr("cannot create directory " + dir.path() + "/data/out"));
}

TEST(CreateParentDirectoriesTest, TheSinkWritesIntoTheCreatedDirectory) {
  TempDir dir("batch_io_sink");
  const std::string output = dir.path() + "/new/out.npy";
  ASSERT_TRUE(CreateParentDirectories(output).ok());
  v1::TensorMetadata out;
  out.set_name("y");
  out.set_dtype(v1::FP32);
  int64_t resume_rows = -1;
  auto sink = ResultSink::Open(output, {out}, /*resume=*/true, &resume_rows);
  ASSERT_TRUE(sink.ok()) << sink.status();
  EXPECT_EQ(resume_rows, 0);
  ASSERT_TRUE((*sink)->Start(0).ok());
  v1::BatchChunkResult result;
  result.set_rows(2);
  v1::Tensor* tensor = result.add_outputs();
  tensor->set_name("y");
  tensor->set_dtype(v1::FP32);
  tensor->add_shape(2);
  tensor->add_shape(1);
  const float values[] = {1, 2};
  tensor->set_data(reinterpret_cast<const char*>(values), sizeof(values));
  ASSERT_TRUE((*sink)->Write(result).ok());
  ASSERT_TRUE((*sink)->Finish().ok());
  auto reader = NpyReader::Open(output);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->rows(), 2);
}

}  // namespace
}  // namespace microbatch
