#include "util/stop_matcher.h"

#include <gtest/gtest.h>

namespace calm {
namespace {

TEST(StopMatcher, WithoutStopsReleasesEverything) {
  StopMatcher m({});
  EXPECT_EQ(m.push("abc").release, "abc");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, CutsAtTheStopStringAndDropsIt) {
  StopMatcher m({"END"});
  const auto step = m.push("hello END world");
  EXPECT_EQ(step.release, "hello ");
  EXPECT_TRUE(step.stopped);
  EXPECT_EQ(m.push("more").release, "");
}

TEST(StopMatcher, FindsAStopStringSplitAcrossPushes) {
  StopMatcher m({"STOP"});
  std::string out;
  bool stopped = false;
  for (const char* piece : {"ab", "S", "T", "O", "P", "cd"}) {
    const auto step = m.push(piece);
    out += step.release;
    stopped = stopped || step.stopped;
  }
  EXPECT_EQ(out, "ab");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcher, ReleasesAHeldPrefixThatNeverCompletes) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("abST").release, "ab");
  EXPECT_EQ(m.push("x").release, "STx");
  EXPECT_EQ(m.push("ST").release, "");
  EXPECT_EQ(m.flush(), "ST");
}

TEST(StopMatcher, EarliestOfSeveralStopsWins) {
  StopMatcher m({"b", "a"});
  EXPECT_EQ(m.push("xxab").release, "xx");
}

TEST(StopMatcher, HeldTextNeverEndsInsideACharacter) {
  StopMatcher m({"\xC3\xA9t\xC3\xA9"});     // "été"
  const auto step = m.push("caf\xC3\xA9");  // "café": é may start "été"
  EXPECT_EQ(step.release, "caf");
  EXPECT_EQ(m.flush(), "\xC3\xA9");
}

}  // namespace
}  // namespace calm
