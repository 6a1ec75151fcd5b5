#include "util/utf8.h"

#include <gtest/gtest.h>

namespace calm {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8Repair, ValidTextPassesUnchanged) {
  EXPECT_EQ(repair_utf8("hello, w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "hello, w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80");
}

TEST(Utf8Repair, InvalidBytesBecomeReplacementCharacters) {
  EXPECT_EQ(repair_utf8("a\xFF"
                        "b"),
            "a" + kFffd + "b");
  EXPECT_EQ(repair_utf8("\xC0\xAF"), kFffd + kFffd);              // overlong lead
  EXPECT_EQ(repair_utf8("\xED\xA0\x80"), kFffd + kFffd + kFffd);  // surrogate
  EXPECT_EQ(repair_utf8("\x80"), kFffd);                          // lone continuation
  EXPECT_EQ(repair_utf8("\xE2\x82"
                        "x"),
            kFffd + "x");  // truncated then ASCII
}

TEST(Utf8Repair, RepairedOutputIsAlwaysValid) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (int i = 255; i >= 0; --i) all.push_back(static_cast<char>(i));
  EXPECT_TRUE(is_valid_utf8(repair_utf8(all)));
}

TEST(Utf8Repairer, NeverSplitsACharacterAcrossPushes) {
  Utf8Repairer r;
  EXPECT_EQ(r.push("\xF0\x9F"), "");  // held back: half an emoji
  EXPECT_EQ(r.push("\x98"), "");
  EXPECT_EQ(r.push("\x80!"), "\xF0\x9F\x98\x80!");
  EXPECT_EQ(r.flush(), "");
}

TEST(Utf8Repairer, FlushReplacesAnUnfinishedCharacter) {
  Utf8Repairer r;
  EXPECT_EQ(r.push("ok\xE2\x82"), "ok");
  EXPECT_EQ(r.flush(), kFffd);
}

TEST(Utf8Repairer, ByteAtATimeMatchesOneShot) {
  const std::string input =
      "x\xE2\x82\xAC\xFF\xF0\x9F\x98\x80\xC3"
      "y\xE2";
  Utf8Repairer r;
  std::string out;
  for (char c : input) out += r.push(std::string(1, c));
  out += r.flush();
  EXPECT_EQ(out, repair_utf8(input));
}

}  // namespace
}  // namespace calm
