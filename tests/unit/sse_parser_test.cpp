// SseParser: events come out whole and in order however the bytes are cut.
#include "engines/sse_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace calm {
namespace {

std::vector<SseEvent> feed_all(SseParser& parser, const std::vector<std::string>& pieces) {
  std::vector<SseEvent> events;
  for (const std::string& piece : pieces) {
    for (SseEvent& event : parser.feed(piece)) events.push_back(std::move(event));
  }
  for (SseEvent& event : parser.finish()) events.push_back(std::move(event));
  return events;
}

std::vector<std::string> data_of(const std::vector<SseEvent>& events) {
  std::vector<std::string> out;
  for (const SseEvent& event : events) out.push_back(event.data);
  return out;
}

// An OpenAI-style stream with a comment, CRLF endings and a multi-byte character.
const std::string kStream =
    ": keep-alive\r\n"
    "\r\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"h\xC3\xA9\"}}]}\r\n"
    "\r\n"
    "event: message\n"
    "id: 7\n"
    "data: {\"choices\":[]}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

const std::vector<std::string> kStreamData = {
    "{\"choices\":[{\"delta\":{\"content\":\"h\xC3\xA9\"}}]}", "{\"choices\":[]}", "[DONE]"};

TEST(SseParserTest, ParsesEventsOfOneChunk) {
  SseParser parser;
  const auto events = feed_all(parser, {kStream});
  EXPECT_EQ(data_of(events), kStreamData);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].type, "message");
  EXPECT_EQ(events[1].id, "7");
  EXPECT_EQ(events[0].type, "");
}

TEST(SseParserTest, EventsSplitAtEveryByteBoundaryAreReassembled) {
  for (size_t cut = 0; cut <= kStream.size(); ++cut) {
    SseParser parser;
    const auto events = feed_all(parser, {kStream.substr(0, cut), kStream.substr(cut)});
    EXPECT_EQ(data_of(events), kStreamData) << "cut at byte " << cut;
  }
}

TEST(SseParserTest, EventsFedOneByteAtATimeAreReassembled) {
  SseParser parser;
  std::vector<std::string> bytes;
  for (char c : kStream) bytes.emplace_back(1, c);
  EXPECT_EQ(data_of(feed_all(parser, bytes)), kStreamData);
}

TEST(SseParserTest, EventsAreReturnedAsSoonAsTheirBlankLineArrives) {
  SseParser parser;
  EXPECT_TRUE(parser.feed("data: a\n").empty());
  const auto events = parser.feed("\ndata: b");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "a");
  EXPECT_TRUE(parser.feed("\n").empty());
  EXPECT_EQ(data_of(parser.feed("\n")), std::vector<std::string>{"b"});
}

TEST(SseParserTest, AllThreeLineEndingsEndLines) {
  SseParser parser;
  const auto events = feed_all(parser, {"data: a\r\rdata: b\n\ndata: c\r\n\r\n"});
  EXPECT_EQ(data_of(events), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(SseParserTest, CrLfSplitBetweenReadsIsOneLineEnding) {
  SseParser parser;
  // Were each split '\n' taken as a line ending of its own, it would make a
  // blank line and cut "a" and "b" into two events.
  const auto events = feed_all(parser, {"data: a\r", "\ndata: b\r", "\n", "\r", "\n"});
  EXPECT_EQ(data_of(events), std::vector<std::string>{"a\nb"});
}

TEST(SseParserTest, DataLinesOfOneEventJoinWithNewline) {
  SseParser parser;
  EXPECT_EQ(data_of(feed_all(parser, {"data: one\ndata: two\ndata:\n\n"})),
            std::vector<std::string>{"one\ntwo\n"});
}

TEST(SseParserTest, OnlyOneSpaceAfterTheColonIsStripped) {
  SseParser parser;
  EXPECT_EQ(data_of(feed_all(parser, {"data:x\n\ndata:  y\n\n"})),
            (std::vector<std::string>{"x", " y"}));
}

TEST(SseParserTest, CommentsAndEmptyBlocksProduceNoEvents) {
  SseParser parser;
  EXPECT_TRUE(feed_all(parser, {": ping\n\n\n\nevent: x\n\nretry: 5\n\n"}).empty());
}

TEST(SseParserTest, EmptyDataFieldIsAnEventWithEmptyData) {
  SseParser parser;
  const auto events = feed_all(parser, {"data\n\n"});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "");
}

TEST(SseParserTest, NonStandardFieldsAreKept) {
  SseParser parser;  // llama-server reports mid-stream failures this way
  const auto events = feed_all(parser, {"error: {\"message\":\"bad\"}\n\n"});
  ASSERT_EQ(events.size(), 1u);
  ASSERT_NE(events[0].extra("error"), nullptr);
  EXPECT_EQ(*events[0].extra("error"), "{\"message\":\"bad\"}");
  EXPECT_EQ(events[0].extra("warning"), nullptr);
}

TEST(SseParserTest, FinishDeliversAnUnterminatedLastEvent) {
  SseParser parser;
  EXPECT_TRUE(parser.feed("data: [DONE]").empty());
  EXPECT_EQ(data_of(parser.finish()), std::vector<std::string>{"[DONE]"});
  // Reset after finish: the parser can read a new stream.
  EXPECT_EQ(data_of(feed_all(parser, {"data: again\n\n"})), std::vector<std::string>{"again"});
}

TEST(SseParserTest, LeadingByteOrderMarkIsIgnoredEvenWhenSplit) {
  SseParser parser;
  EXPECT_EQ(data_of(feed_all(parser, {"\xEF",
                                      "\xBB\xBF"
                                      "data: a\n\n"})),
            std::vector<std::string>{"a"});
}

TEST(SseParserTest, OversizedEventStopsTheParser) {
  SseParser parser(64);
  EXPECT_TRUE(parser.feed("data: " + std::string(100, 'x')).empty());
  EXPECT_TRUE(parser.overflowed());
  EXPECT_TRUE(parser.feed("\n\ndata: later\n\n").empty());
}

TEST(SseParserTest, ManyLinesOfOneEventCountTowardsTheLimit) {
  SseParser parser(64);
  for (int i = 0; i < 20; ++i) parser.feed("data: xxxx\n");
  EXPECT_TRUE(parser.overflowed());
}

TEST(SseParserTest, GarbageNeverCrashes) {
  SseParser parser(1 << 12);
  std::string garbage;
  unsigned state = 12345;
  for (int i = 0; i < 100000; ++i) {
    state = state * 1103515245u + 12345u;
    garbage.push_back(static_cast<char>(state >> 16));
  }
  for (size_t pos = 0; pos < garbage.size(); pos += 777) parser.feed(garbage.substr(pos, 777));
  parser.finish();
  SUCCEED();
}

}  // namespace
}  // namespace calm
