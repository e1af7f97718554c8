// Log lines can be neither forged nor flooded by client-supplied values.
#include "server/core/log.h"

#include <algorithm>
#include <string>

#include "absl/time/clock.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/text.h"

namespace microbatch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A request id with CR, ESC and NUL: written raw, a terminal or log shipper
// would show a forged line in red.
const std::string kHostile = std::string("a\r\x1b[31mX\0b", 10);

// No byte below 0x20 (or DEL) except the final newline.
bool HasNoRawControlBytes(const std::string& line) {
  for (size_t i = 0; i + 1 < line.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(line[i]);
    if (c < 0x20 || c == 0x7f) return false;
  }
  return !line.empty() && line.back() == '\n';
}

// Regression: text values without a space, quote or '=' were written raw.
TEST(LogTest, TextEscapesEveryControlByte) {
  const std::string line = FormatLogLine(LogFormat::kText, "T", LogLevel::kWarning,
                                         "predict_rejected", {{"request_id", kHostile}});
  EXPECT_TRUE(HasNoRawControlBytes(line)) << line;
  EXPECT_EQ(line, "T WARN predict_rejected request_id=\"a\\r\\033[31mX\\000b\"\n");
}

TEST(LogTest, JsonEscapesControlBytesAndInvalidUtf8) {
  const std::string line =
      FormatLogLine(LogFormat::kJson, "T", LogLevel::kError, "predict_failed",
                    {{"request_id", kHostile}, {"model", std::string("\xff\xfe ok \xc3\xa9")}});
  EXPECT_TRUE(HasNoRawControlBytes(line)) << line;
  EXPECT_THAT(line, HasSubstr("\"request_id\":\"a\\r\\u001b[31mX\\u0000b\""));
  // Bytes that are not UTF-8 become U+FFFD (ClientText).
  EXPECT_THAT(line, HasSubstr("\"model\":\"\xef\xbf\xbd\xef\xbf\xbd ok \xc3\xa9\""));
}

TEST(LogTest, PlainValuesStayUnquoted) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, "T", LogLevel::kInfo, "model_loaded",
                          {{"model", "mlp"}, {"version", 3}, {"note", "two words"}}),
            "T INFO model_loaded model=mlp version=3 note=\"two words\"\n");
}

TEST(LogTest, LongValuesAreCut) {
  const std::string line = FormatLogLine(LogFormat::kText, "T", LogLevel::kInfo, "e",
                                         {{"id", std::string(100000, 'x')}});
  EXPECT_LT(line.size(), 1200u);
  EXPECT_THAT(line, HasSubstr("...(98976 more bytes)"));
}

TEST(ClientTextTest, BoundsAndMarksLongStrings) {
  EXPECT_EQ(ClientText("short"), "short");
  EXPECT_EQ(ClientText(std::string(128, 'a')), std::string(128, 'a'));
  EXPECT_EQ(ClientText(std::string(1000, 'a')), std::string(128, 'a') + "...(872 more bytes)");
  // Never cuts inside a UTF-8 character (e-acute is 2 bytes).
  std::string accents;
  for (int i = 0; i < 100; ++i) accents += "\xc3\xa9";
  const std::string cut = ClientText(accents, 5);
  EXPECT_EQ(cut, "\xc3\xa9\xc3\xa9...(196 more bytes)");
}

TEST(FirstInvalidUtf8Test, AcceptsUtf8AndPointsAtTheFirstBadByte) {
  constexpr size_t kAll = absl::string_view::npos;
  EXPECT_EQ(FirstInvalidUtf8(""), kAll);
  EXPECT_EQ(FirstInvalidUtf8("plain ascii"), kAll);
  EXPECT_EQ(FirstInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x88 \xf4\x8f\xbf\xbf"), kAll);  // e-acute, euro, cat, U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("a\xff" "b"), 1u);                       // never a UTF-8 byte
  EXPECT_EQ(FirstInvalidUtf8("caf\xe9"), 3u);                      // Latin-1 e-acute
  EXPECT_EQ(FirstInvalidUtf8("ab\xc3"), 2u);                       // cut short
  EXPECT_EQ(FirstInvalidUtf8("\xc0\xaf"), 0u);                    // overlong '/'
  EXPECT_EQ(FirstInvalidUtf8("\xe0\x80\xaf"), 0u);               // overlong
  EXPECT_EQ(FirstInvalidUtf8("x\xed\xa0\x80"), 1u);              // a surrogate, U+D800
  EXPECT_EQ(FirstInvalidUtf8("\xf4\x90\x80\x80"), 0u);          // above U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("\xe2\x82\x28"), 0u);               // bad continuation
  EXPECT_EQ(FirstInvalidUtf8("\x80"), 0u);                         // a lone continuation
}

// Regression: a model name of a\xffb in a REST path came back raw inside
// the JSON error body, which was then not JSON.
TEST(ClientTextTest, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  EXPECT_EQ(ToValidUtf8("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(ToValidUtf8("a\xff" "b"), "a\xef\xbf\xbd" "b");
  EXPECT_EQ(ToValidUtf8("\xc3"), "\xef\xbf\xbd");
  EXPECT_EQ(ToValidUtf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(ClientText("a\xff" "b"), "a\xef\xbf\xbd" "b");
  EXPECT_EQ(ClientText(std::string(200, '\xff'), 3), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd...(197 more bytes)");
  EXPECT_EQ(FirstInvalidUtf8(ClientText(std::string("x\xe9", 2) + std::string(300, 'y'))), absl::string_view::npos);
}

TEST(RateLimitedLogTest, SuppressesBeyondTheRateAndCountsWhatItDropped) {
  RateLimitedLog limited(3);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 50; ++i) limited.Log(LogLevel::kWarning, "predict_rejected", {{"i", i}});
  std::string out = ::testing::internal::GetCapturedStderr();
  // At most 3 per second: one run lasts a few ms, so 3 lines (6 if it
  // happened to straddle a second boundary).
  const size_t lines = std::count(out.begin(), out.end(), '\n');
  EXPECT_GE(lines, 3u);
  EXPECT_LE(lines, 6u);
  absl::SleepFor(absl::Milliseconds(1100));
  ::testing::internal::CaptureStderr();
  limited.Log(LogLevel::kWarning, "predict_rejected", {{"i", 50}});
  out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, HasSubstr(" suppressed="));
  EXPECT_THAT(out, Not(HasSubstr(" suppressed=0")));
}

}  // namespace
}  // namespace microbatch
