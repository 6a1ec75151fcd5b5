// A model's per-request limits against the real `calm serve`:
// models[].max_prompt_tokens and models[].max_tokens_cap refuse larger
// requests with 400 in OpenAI's shape, naming the limit and the value; a
// request that asks for no max_tokens is served within the cap; the server
// goes on serving.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;

class Limits : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // "capped": both limits set low; "plain": the defaults (context 256).
    server_ = std::make_unique<CalmServer>(
        "models:\n  - id: capped\n    gguf: " + testing::test_model("tiny-chatml.gguf") +
        "\n    context: 256\n    threads: 1\n    max_prompt_tokens: 24\n    max_tokens_cap: 4\n"
        "  - id: plain\n    gguf: " +
        testing::test_model("tiny-plain.gguf") + "\n    context: 256\n    threads: 1\n");
  }
  static void TearDownTestSuite() { server_.reset(); }

  static httplib::Result post(const std::string& path, const json& body) {
    return server_->client().Post(path, body.dump(), "application/json");
  }
  static json chat(const std::string& model, const std::string& text) {
    return {{"model", model}, {"messages", {{{"role", "user"}, {"content", text}}}}};
  }
  // The error object of a 400, or a failure naming what came instead.
  static json error_400(const httplib::Result& res) {
    EXPECT_TRUE(res);
    if (!res) return json::object();
    EXPECT_EQ(res->status, 400) << res->body;
    return json::parse(res->body)["error"];
  }

  static std::unique_ptr<CalmServer> server_;
};
std::unique_ptr<CalmServer> Limits::server_;

std::string words(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text += "word ";
  return text;
}

TEST_F(Limits, APromptOverMaxPromptTokensIs400ContextLengthExceededWithTheCountAndTheLimit) {
  const json e = error_400(post("/v1/chat/completions", chat("capped", words(40))));
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_EQ(e["code"], "context_length_exceeded");
  EXPECT_EQ(e["param"], "messages");
  const std::string message = e["message"];
  EXPECT_NE(message.find("accepts at most 24 prompt tokens (models[].max_prompt_tokens)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("the prompt is "), std::string::npos) << message;
}

TEST_F(Limits, ACompletionPromptOverTheLimitNamesPromptAsTheParam) {
  const json body = {{"model", "capped"}, {"prompt", words(40)}, {"max_tokens", 2}};
  const json e = error_400(post("/v1/completions", body));
  EXPECT_EQ(e["code"], "context_length_exceeded");
  EXPECT_EQ(e["param"], "prompt");
}

TEST_F(Limits, MaxTokensOverTheCapIs400NamingTheFieldTheValueAndTheCap) {
  json body = chat("capped", "hi");
  body["max_tokens"] = 5;
  json e = error_400(post("/v1/chat/completions", body));
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_EQ(e["param"], "max_tokens");
  EXPECT_EQ(e["code"], "max_tokens_exceeded");
  const std::string message = e["message"];
  EXPECT_NE(message.find("'max_tokens' is 5"), std::string::npos) << message;
  EXPECT_NE(message.find("at most 4 tokens per request (models[].max_tokens_cap)"),
            std::string::npos)
      << message;

  body.erase("max_tokens");
  body["max_completion_tokens"] = 6;
  e = error_400(post("/v1/chat/completions", body));
  EXPECT_EQ(e["param"], "max_completion_tokens");
}

TEST_F(Limits, MaxTokensAtTheCapIsServed) {
  json body = chat("capped", "hi");
  body["max_tokens"] = 4;
  const auto res = post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(Limits, ARequestWithoutMaxTokensIsServedWithinTheCap) {
  json body = chat("capped", "hi");
  body["ignore_eos"] = true;  // runs to its max_tokens
  const auto res = post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json answer = json::parse(res->body);
  EXPECT_EQ(answer["usage"]["completion_tokens"], 4);
  EXPECT_EQ(answer["choices"][0]["finish_reason"], "length");
}

TEST_F(Limits, TheDefaultCapIsTheContext) {
  json body = chat("plain", "hi");
  body["max_tokens"] = 257;
  const json e = error_400(post("/v1/chat/completions", body));
  EXPECT_NE(e["message"].get<std::string>().find("at most 256 tokens"), std::string::npos) << e;
  body["max_tokens"] = 256;
  body["ignore_eos"] = false;
  const auto served = post("/v1/chat/completions", body);
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200) << served->body;
}

TEST_F(Limits, RefusedRequestsLeaveTheServerServingAndAreCountedInMetrics) {
  error_400(post("/v1/chat/completions", chat("capped", words(40))));
  json body = chat("capped", "hi");
  body["max_tokens"] = 2;
  const auto res = post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  const auto metrics = server_->client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("calm_requests_refused_total{status=\"400\",code=\"context_length_"
                               "exceeded\"}"),
            std::string::npos);
}

}  // namespace
}  // namespace calm
