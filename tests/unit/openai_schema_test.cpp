#include "server/openai_schema.h"

#include <gtest/gtest.h>

namespace calm {
namespace {

using nlohmann::json;

json chat(json extra = json::object()) {
  json body = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  body.update(extra);
  return body;
}

// The param an invalid body is rejected for.
std::string rejected_param(const json& body) {
  try {
    parse_chat_request(body);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    return e.param.empty() ? "<none>" : e.param;
  }
  return "";
}

TEST(OpenAiSchema, ParsesAChatRequestWithDefaults) {
  const ApiRequest r = parse_chat_request(chat());
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.generation.messages.size(), 1u);
  EXPECT_EQ(r.generation.messages[0].content, "hi");
  EXPECT_TRUE(r.generation.is_chat());
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.generation.sampling.max_tokens, 512);
}

TEST(OpenAiSchema, ReadsSamplingAndStreamOptions) {
  const ApiRequest r = parse_chat_request(chat({{"temperature", 0},
                                                {"top_p", 0.5},
                                                {"top_k", 7},
                                                {"seed", 42},
                                                {"max_completion_tokens", 9},
                                                {"stop", "x"},
                                                {"stream", true},
                                                {"stream_options", {{"include_usage", true}}}}));
  EXPECT_EQ(r.generation.sampling.temperature, 0.0f);
  EXPECT_EQ(r.generation.sampling.top_p, 0.5f);
  EXPECT_EQ(r.generation.sampling.top_k, 7);
  EXPECT_EQ(*r.generation.sampling.seed, 42u);
  EXPECT_EQ(r.generation.sampling.max_tokens, 9);
  EXPECT_EQ(r.generation.sampling.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(OpenAiSchema, TextPartsAreJoinedAndOtherPartsIgnored) {
  const ApiRequest r = parse_chat_request(chat({{"messages",
                                                 {{{"role", "user"},
                                                   {"content",
                                                    {{{"type", "text"}, {"text", "a"}},
                                                     {{"type", "image_url"}},
                                                     {{"type", "text"}, {"text", "b"}}}}}}}}));
  EXPECT_EQ(r.generation.messages[0].content, "a\nb");
}

TEST(OpenAiSchema, MissingOrEmptyMessagesAreRejected) {
  json no_messages = chat();
  no_messages.erase("messages");
  EXPECT_EQ(rejected_param(no_messages), "messages");
  EXPECT_EQ(rejected_param(chat({{"messages", json::array()}})), "messages");
  EXPECT_EQ(rejected_param(chat({{"messages", "hi"}})), "messages");
  EXPECT_EQ(rejected_param(chat({{"messages", {{{"role", "user"}}}}})), "messages[0].content");
  EXPECT_EQ(rejected_param(chat({{"messages", {{{"role", "wizard"}, {"content", "x"}}}}})),
            "messages[0].role");
}

TEST(OpenAiSchema, ContentWithoutTextIsRejected) {
  EXPECT_EQ(rejected_param(
                chat({{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}})),
            "messages[0].content");
}

// Found by fuzz/request_body_fuzzer: nlohmann throws out_of_range, not
// parse_error, for a number too large for a double, which the server answered
// with a 500.
TEST(OpenAiSchema, ABodyWithANumberTooLargeForADoubleIsA400) {
  for (const std::string text : {"{\"model\": \"m\", \"temperature\": 1e999}",
                                 "{\"messages\": [1e999{\"role\": \"user\"}]}", "-1e400"}) {
    try {
      parse_request_body(text);
      ADD_FAILURE() << "parsed: " << text;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_NE(e.message.find("not valid JSON"), std::string::npos) << e.message;
    }
  }
}

// Found by fuzz/request_body_fuzzer: a content part whose "type" is not a
// string made json::value throw type_error (a 500); such a part is not a
// text part.
TEST(OpenAiSchema, AContentPartWithANonStringTypeIsNotAText) {
  const ApiRequest r = parse_chat_request(chat(
      {{"messages",
        {{{"role", "user"}, {"content", {{{"type", 7}}, {{"type", "text"}, {"text", "a"}}}}}}}}));
  EXPECT_EQ(r.generation.messages[0].content, "a");
  EXPECT_EQ(
      rejected_param(chat(
          {{"messages", {{{"role", "user"}, {"content", {{{"type", nullptr}, {"text", "b"}}}}}}}})),
      "messages[0].content");
}

TEST(OpenAiSchema, MissingModelIsRejected) {
  json body = chat();
  body.erase("model");
  EXPECT_EQ(rejected_param(body), "model");
  EXPECT_EQ(rejected_param(chat({{"model", 3}})), "model");
}

TEST(OpenAiSchema, InvalidSamplingValuesAreRejected) {
  EXPECT_EQ(rejected_param(chat({{"temperature", -1}})), "temperature");
  EXPECT_EQ(rejected_param(chat({{"temperature", 9}})), "temperature");
  EXPECT_EQ(rejected_param(chat({{"temperature", "hot"}})), "temperature");
  EXPECT_EQ(rejected_param(chat({{"top_p", 0}})), "top_p");
  EXPECT_EQ(rejected_param(chat({{"top_p", 1.5}})), "top_p");
  EXPECT_EQ(rejected_param(chat({{"top_k", -1}})), "top_k");
  EXPECT_EQ(rejected_param(chat({{"top_k", 2.5}})), "top_k");
  EXPECT_EQ(rejected_param(chat({{"max_tokens", 0}})), "max_tokens");
  EXPECT_EQ(rejected_param(chat({{"seed", -3}})), "seed");
  EXPECT_EQ(rejected_param(chat({{"n", 2}})), "n");
  EXPECT_EQ(rejected_param(chat({{"stop", {"a", "b", "c", "d", "e"}}})), "stop");
  EXPECT_EQ(rejected_param(chat({{"stop", ""}})), "stop");
  EXPECT_EQ(rejected_param(chat({{"stream", "yes"}})), "stream");
}

TEST(OpenAiSchema, NonObjectBodyIsRejected) {
  EXPECT_EQ(rejected_param(json::array()), "<none>");
  EXPECT_EQ(rejected_param(json("text")), "<none>");
}

TEST(OpenAiSchema, CompletionNeedsANonEmptyPrompt) {
  const ApiRequest r = parse_completion_request({{"model", "m"}, {"prompt", "once upon"}});
  EXPECT_EQ(*r.generation.prompt, "once upon");
  EXPECT_EQ(r.generation.sampling.max_tokens, 16);
  EXPECT_THROW(parse_completion_request({{"model", "m"}}), ApiError);
  EXPECT_THROW(parse_completion_request({{"model", "m"}, {"prompt", ""}}), ApiError);
  EXPECT_THROW(parse_completion_request({{"model", "m"}, {"prompt", {"a", "b"}}}), ApiError);
}

TEST(OpenAiSchema, ResponsesHaveOpenAiShape) {
  GenerationResult result;
  result.text = "hey";
  result.finish_reason = "length";
  result.prompt_tokens = 3;
  result.completion_tokens = 2;
  const ResponseMeta meta{"chatcmpl-1", "m", 7};
  const json r = chat_response(meta, result);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "hey");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["total_tokens"], 5);
  EXPECT_EQ(r["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const json c = chat_chunk(meta, {{"content", "x"}}, "");
  EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(usage_chunk(meta, "chat.completion.chunk", result)["choices"].size(), 0u);
}

TEST(ApiErrorShape, MatchesOpenAi) {
  const json e = ApiError::bad_request("bad", "model", "x").to_json();
  EXPECT_EQ(e["error"]["message"], "bad");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "model");
  EXPECT_EQ(e["error"]["code"], "x");
  EXPECT_TRUE(ApiError::bad_request("bad").to_json()["error"]["param"].is_null());
  EXPECT_EQ(ApiError::from_engine(EngineError(EngineError::Kind::kUnavailable, "x")).status, 503);
  EXPECT_EQ(ApiError::from_engine(EngineError(EngineError::Kind::kContextOverflow, "x")).code,
            "context_length_exceeded");
}

}  // namespace
}  // namespace calm
