// OpenAiStreamReader: the one reader of OpenAI-style event streams, shared by
// RemoteEngine and the bench Replayer (engines/openai_stream.h).
#include "engines/openai_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace calm {
namespace {

const std::string kChat =
    "data: {\"id\":\"chatcmpl-1\",\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n"
    "data: [DONE]\n\n";

struct Read {
  std::vector<std::string> deltas;
  std::unique_ptr<OpenAiStreamReader> reader;
};

// Feeds the stream cut into pieces of `step` bytes.
Read read(const std::string& stream, size_t step) {
  Read out;
  out.reader = std::make_unique<OpenAiStreamReader>(
      [&out](const std::string& text) { out.deltas.push_back(text); });
  for (size_t at = 0; at < stream.size(); at += step) {
    if (!out.reader->feed(std::string_view(stream).substr(at, step))) break;
  }
  out.reader->finish();
  return out;
}

TEST(OpenAiStream, ChatChunksGiveDeltasUsageAndFinishReasonHoweverSplit) {
  for (size_t step : {size_t{1}, size_t{3}, size_t{7}, kChat.size()}) {
    const Read r = read(kChat, step);
    EXPECT_EQ(r.deltas, (std::vector<std::string>{"Hel", "lo"})) << "step " << step;
    EXPECT_EQ(r.reader->text(), "Hello");
    EXPECT_EQ(r.reader->finish_reason(), "length");
    EXPECT_TRUE(r.reader->usage_seen());
    EXPECT_EQ(r.reader->prompt_tokens(), 5);
    EXPECT_EQ(r.reader->completion_tokens(), 2);
    EXPECT_EQ(r.reader->text_chunks(), 2);
    EXPECT_EQ(r.reader->response_id(), "chatcmpl-1");
    EXPECT_EQ(r.reader->model(), "m");
    EXPECT_TRUE(r.reader->done());
    EXPECT_FALSE(r.reader->problem());
  }
}

TEST(OpenAiStream, CompletionChunksGiveTheirText) {
  const Read r = read(
      "data: {\"choices\":[{\"text\":\"Once\"}]}\r\n\r\n"
      "data: {\"choices\":[{\"text\":\" upon\",\"finish_reason\":\"stop\"}]}\r\n\r\n"
      "data: [DONE]\r\n\r\n",
      5);
  EXPECT_EQ(r.deltas, (std::vector<std::string>{"Once", " upon"}));
  EXPECT_EQ(r.reader->finish_reason(), "stop");
  EXPECT_FALSE(r.reader->usage_seen());
}

TEST(OpenAiStream, MissingDoneLeavesTheStreamUnansweredWithoutFinishReason) {
  const Read r = read("data: {\"choices\":[{\"delta\":{\"content\":\"cut\"}}]}\n\n", 4);
  EXPECT_EQ(r.reader->text(), "cut");
  EXPECT_FALSE(r.reader->done());
  EXPECT_FALSE(r.reader->answered());
  EXPECT_FALSE(r.reader->problem());
}

TEST(OpenAiStream, FinishReasonWithoutDoneCountsAsAnswered) {
  const Read r = read(
      "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\n", 64);
  EXPECT_FALSE(r.reader->done());
  EXPECT_TRUE(r.reader->answered());
}

TEST(OpenAiStream, LastEventWithoutItsBlankLineIsDelivered) {
  const Read r =
      read("data: {\"choices\":[{\"delta\":{\"content\":\"end\"}}]}\n\ndata: [DONE]", 64);
  EXPECT_TRUE(r.reader->done());
}

TEST(OpenAiStream, ErrorObjectInDataStopsReadingWithItsMessageAndCode) {
  const Read r = read(
      "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n"
      "data: {\"error\":{\"code\":500,\"message\":\"slot died\",\"type\":\"server_error\"}}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"after\"}}]}\n\n",
      9);
  EXPECT_EQ(r.deltas, std::vector<std::string>{"ok"});
  ASSERT_TRUE(r.reader->problem());
  EXPECT_EQ(r.reader->problem()->kind, OpenAiStreamReader::Problem::Kind::kError);
  EXPECT_EQ(r.reader->problem()->upstream.message, "slot died");
  EXPECT_EQ(r.reader->problem()->upstream.status, 500);
  EXPECT_EQ(r.reader->problem()->upstream.type, "server_error");
}

TEST(OpenAiStream, LlamaServerBareErrorLineIsAnError) {
  const Read r = read("error: {\"code\":500,\"message\":\"peg-native format\"}\n\n", 6);
  ASSERT_TRUE(r.reader->problem());
  EXPECT_EQ(r.reader->problem()->upstream.message, "peg-native format");
}

TEST(OpenAiStream, ErrorEventTypeIsAnError) {
  const Read r = read("event: error\ndata: {\"error\":\"model 'x' not found\"}\n\n", 64);
  ASSERT_TRUE(r.reader->problem());
  EXPECT_EQ(r.reader->problem()->upstream.message, "model 'x' not found");  // Ollama's shape
}

TEST(OpenAiStream, NonJsonDataIsMalformedAndQuoted) {
  const Read r =
      read("data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: oops\n\n", 64);
  EXPECT_EQ(r.deltas, std::vector<std::string>{"ok"});
  ASSERT_TRUE(r.reader->problem());
  EXPECT_EQ(r.reader->problem()->kind, OpenAiStreamReader::Problem::Kind::kMalformed);
  EXPECT_NE(r.reader->problem()->message.find("oops"), std::string::npos);
}

TEST(OpenAiStream, NothingAfterDoneCounts) {
  const Read r =
      read("data: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n", 64);
  EXPECT_TRUE(r.reader->done());
  EXPECT_EQ(r.reader->text(), "");
}

TEST(OpenAiStream, InvalidUtf8IsReplaced) {
  const Read r = read(
      "data: {\"choices\":[{\"delta\":{\"content\":\"a\xff"
      "b\"}}]}\n\n",
      64);
  EXPECT_EQ(r.reader->text(),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(OpenAiStream, OversizedEventIsTooLarge) {
  OpenAiStreamReader reader({}, 64);
  EXPECT_FALSE(reader.feed("data: " + std::string(100, 'x')));
  ASSERT_TRUE(reader.problem());
  EXPECT_EQ(reader.problem()->kind, OpenAiStreamReader::Problem::Kind::kTooLarge);
}

TEST(OpenAiStream, WholeAnswerIsReadAsOneChunk) {
  OpenAiStreamReader reader;
  reader.read_whole_answer(
      R"({"id":"c-2","choices":[{"message":{"content":"whole"},"finish_reason":"length"}],)"
      R"("usage":{"prompt_tokens":3,"completion_tokens":1}})");
  EXPECT_EQ(reader.text(), "whole");
  EXPECT_EQ(reader.finish_reason(), "length");
  EXPECT_EQ(reader.completion_tokens(), 1);
  EXPECT_TRUE(reader.done());

  OpenAiStreamReader garbage;
  garbage.read_whole_answer("<html>");
  ASSERT_TRUE(garbage.problem());
  EXPECT_EQ(garbage.problem()->kind, OpenAiStreamReader::Problem::Kind::kMalformed);
}

TEST(UpstreamProblem, EveryDialectGivesItsMessage) {
  EXPECT_EQ(parse_upstream_problem(R"({"error":{"message":"a","code":400}})").status, 400);
  EXPECT_EQ(parse_upstream_problem(R"({"error":{"message":"a","code":400}})", 503).status, 503);
  EXPECT_EQ(parse_upstream_problem(R"({"error":"ollama says"})").message, "ollama says");
  EXPECT_EQ(parse_upstream_problem(R"({"detail":"fastapi says"})").message, "fastapi says");
  EXPECT_EQ(parse_upstream_problem("Bad Gateway", 502).message, "Bad Gateway");
  EXPECT_EQ(parse_upstream_problem("", 500).message, "(empty body)");
  EXPECT_EQ(parse_upstream_problem(std::string(400, 'x')).message.size(), 303u);  // 300 + "..."
}

}  // namespace
}  // namespace calm
