// The real `calm serve` on a free loopback port with real GGUF files,
// spoken to over HTTP.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/process.h"
#include "support/test_env.h"
#include "util/utf8.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;

std::string fleet(const std::string& extra_models = "", const std::string& server = "") {
  return "server:\n  max_body_bytes: 65536\n" + server +
         "models:\n"
         "  - id: tiny\n"
         "    description: tiny chat model with a ChatML template\n"
         "    gguf: " +
         testing::test_model("tiny-chatml.gguf") +
         "\n"
         "    context: 256\n"
         "    parallel: 4\n"
         "    threads: 2\n"
         "  - id: plain\n"
         "    description: tiny model without a chat template\n"
         "    gguf: " +
         testing::test_model("tiny-plain.gguf") +
         "\n"
         "    context: 256\n"
         "    threads: 2\n" +
         extra_models;
}

json chat_body(const std::string& model, int max_tokens, uint32_t seed = 3) {
  return {{"model", model},
          {"messages", {{{"role", "user"}, {"content", "Say something."}}}},
          {"max_tokens", max_tokens},
          {"seed", seed},
          {"ignore_eos", true}};
}

struct Sse {
  std::vector<json> events;
  bool done = false;
};

// Splits a server-sent-events body into its JSON payloads; every payload
// must be valid JSON (strict UTF-8).
Sse parse_sse(const std::string& body) {
  Sse out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    const std::string event =
        body.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? body.size() : end + 2;
    if (event.rfind("data: ", 0) != 0) continue;
    const std::string data = event.substr(6);
    if (data == "[DONE]") {
      out.done = true;
      continue;
    }
    out.events.push_back(json::parse(data));
  }
  return out;
}

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new CalmServer(fleet()); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static httplib::Result post(const std::string& path, const json& body) {
    return server_->client().Post(path.c_str(), body.dump(), "application/json");
  }
  static void expect_error(const httplib::Result& res, int status, const std::string& param = "") {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    const json body = json::parse(res->body);
    ASSERT_TRUE(body.contains("error")) << res->body;
    EXPECT_TRUE(body["error"]["message"].is_string());
    EXPECT_TRUE(body["error"]["type"].is_string());
    if (!param.empty()) {
      EXPECT_EQ(body["error"]["param"], param) << res->body;
    }
  }

  static CalmServer* server_;
};
CalmServer* ServeTest::server_ = nullptr;

TEST_F(ServeTest, HealthAndModelsListTheFleet) {
  auto res = server_->client().Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["status"], "ok");

  res = server_->client().Get("/v1/models");
  ASSERT_TRUE(res);
  const json models = json::parse(res->body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 2u);
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(models["data"][0]["calm"]["description"], "tiny chat model with a ChatML template");
}

TEST_F(ServeTest, ChatCompletionIsWellFormed) {
  const auto res = post("/v1/chat/completions", chat_body("tiny", 10));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("x-calm-model"), "tiny");
  const json r = json::parse(res->body);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["model"], "tiny");
  EXPECT_TRUE(r["id"].get<std::string>().starts_with("chatcmpl-"));
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(r["choices"][0]["message"]["content"].is_string());
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["completion_tokens"], 10);
  EXPECT_GT(r["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(r["usage"]["total_tokens"].get<int>(),
            r["usage"]["prompt_tokens"].get<int>() + r["usage"]["completion_tokens"].get<int>());
}

TEST_F(ServeTest, StreamedChatIsWellFormedAndMatchesThePlainAnswer) {
  json body = chat_body("tiny", 20, 11);
  const json plain = json::parse(post("/v1/chat/completions", body)->body);

  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto res = post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  const Sse sse = parse_sse(res->body);
  ASSERT_TRUE(sse.done);
  ASSERT_GE(sse.events.size(), 3u);
  EXPECT_EQ(sse.events.front()["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  std::string finish;
  for (const auto& e : sse.events) {
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    EXPECT_EQ(e["id"], sse.events.front()["id"]);
    if (e["choices"].empty()) continue;
    const auto& choice = e["choices"][0];
    if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
  }
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(text, plain["choices"][0]["message"]["content"]);
  const json& usage = sse.events.back()["usage"];
  EXPECT_EQ(usage["completion_tokens"], 20);
  EXPECT_EQ(usage["prompt_tokens"], plain["usage"]["prompt_tokens"]);
}

TEST_F(ServeTest, CompletionsEndpointAnswersPlainAndStreamed) {
  json body = {
      {"model", "plain"}, {"prompt", "Once upon a time"}, {"max_tokens", 6}, {"ignore_eos", true}};
  auto res = post("/v1/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json r = json::parse(res->body);
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_TRUE(r["choices"][0]["text"].is_string());
  EXPECT_EQ(r["usage"]["completion_tokens"], 6);

  body["stream"] = true;
  res = post("/v1/completions", body);
  ASSERT_TRUE(res);
  const Sse sse = parse_sse(res->body);
  EXPECT_TRUE(sse.done);
  ASSERT_FALSE(sse.events.empty());
  EXPECT_EQ(sse.events.back()["choices"][0]["finish_reason"], "length");
}

TEST_F(ServeTest, RepeatedPromptIsReadFromThePromptCache) {
  json body = chat_body("plain", 4, 21);
  body["messages"][0]["content"] = "a question asked twice, word for word";
  const json first = json::parse(post("/v1/chat/completions", body)->body);
  const json second = json::parse(post("/v1/chat/completions", body)->body);
  EXPECT_EQ(second["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(),
            second["usage"]["prompt_tokens"].get<int>() - 1);
  EXPECT_EQ(second["choices"][0]["message"]["content"], first["choices"][0]["message"]["content"]);
}

TEST_F(ServeTest, ManyParallelRequestsToOneModelAreAllAnswered) {
  constexpr int kClients = 16;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      for (int j = 0; j < 2; ++j) {
        json body = chat_body("tiny", 8, static_cast<uint32_t>(i * 10 + j));
        body["stream"] = (i + j) % 2 == 0;
        const auto res = post("/v1/chat/completions", body);
        if (res && res->status == 200) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 2 * kClients);
}

TEST_F(ServeTest, MalformedJsonIs400) {
  const auto res =
      server_->client().Post("/v1/chat/completions", "{\"model\": \"tiny\",", "application/json");
  expect_error(res, 400);
  EXPECT_NE(json::parse(res->body)["error"]["message"].get<std::string>().find("not valid JSON"),
            std::string::npos);
}

TEST_F(ServeTest, MissingOrEmptyMessagesAre400) {
  expect_error(post("/v1/chat/completions", {{"model", "tiny"}}), 400, "messages");
  expect_error(post("/v1/chat/completions", {{"model", "tiny"}, {"messages", json::array()}}), 400,
               "messages");
}

TEST_F(ServeTest, UnknownModelIs404) {
  const auto res = post("/v1/chat/completions", chat_body("no-such-model", 4));
  expect_error(res, 404, "model");
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "model_not_found");
}

TEST_F(ServeTest, BodyOverTheLimitIs413) {
  json body = chat_body("tiny", 4);
  body["messages"][0]["content"] = std::string(70000, 'a');
  const auto res = post("/v1/chat/completions", body);
  expect_error(res, 413);
}

TEST_F(ServeTest, PromptLongerThanContextIs400WithTokenCounts) {
  json body = chat_body("tiny", 4);
  std::string text;
  for (int i = 0; i < 400; ++i) text += "word ";
  body["messages"][0]["content"] = text;
  const auto res = post("/v1/chat/completions", body);
  expect_error(res, 400);
  const json e = json::parse(res->body)["error"];
  EXPECT_EQ(e["code"], "context_length_exceeded");
  EXPECT_NE(e["message"].get<std::string>().find("context of 256 tokens"), std::string::npos) << e;
}

TEST_F(ServeTest, InvalidSamplingValuesAre400) {
  json body = chat_body("tiny", 4);
  body["temperature"] = -0.5;
  expect_error(post("/v1/chat/completions", body), 400, "temperature");
  body = chat_body("tiny", 4);
  body["top_p"] = 7;
  expect_error(post("/v1/chat/completions", body), 400, "top_p");
  body = chat_body("tiny", 4);
  body["max_tokens"] = -1;
  expect_error(post("/v1/chat/completions", body), 400, "max_tokens");
}

TEST_F(ServeTest, UnknownPathIs404Json) {
  expect_error(server_->client().Get("/v1/nothing-here"), 404);
}

TEST_F(ServeTest, InvalidUtf8FromTheModelIsRepairedInEveryBody) {
  // Random weights pick byte tokens freely, so raw output is rarely UTF-8.
  // Every body must still be valid JSON (json::parse is strict about UTF-8).
  bool saw_replacement = false;
  for (uint32_t seed = 0; seed < 12; ++seed) {
    json body = chat_body("tiny", 48, seed);
    body["stream"] = seed % 2 == 1;
    const auto res = post("/v1/chat/completions", body);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    if (body["stream"]) {
      for (const auto& e : parse_sse(res->body).events) {
        if (!e["choices"].empty() && e["choices"][0]["delta"].contains("content")) {
          const auto text = e["choices"][0]["delta"]["content"].get<std::string>();
          EXPECT_TRUE(is_valid_utf8(text));
          saw_replacement |= text.find("\xEF\xBF\xBD") != std::string::npos;
        }
      }
    } else {
      const auto text =
          json::parse(res->body)["choices"][0]["message"]["content"].get<std::string>();
      saw_replacement |= text.find("\xEF\xBF\xBD") != std::string::npos;
    }
  }
  EXPECT_TRUE(saw_replacement) << "no invalid byte was ever generated: the test proves nothing";
}

TEST_F(ServeTest, ClientDisconnectMidStreamStopsGenerationAndFreesTheSlot) {
  const auto cancelled_before =
      json::parse(server_->client().Get("/v1/calm/state")->body)["models"]["plain"]["cancelled"]
          .get<int>();
  json body = chat_body("plain", 256);  // the model's context: its max_tokens_cap
  body["stream"] = true;
  body["messages"][0]["content"] = "go";
  {
    httplib::Client c("127.0.0.1", server_->port());
    int chunks = 0;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
    c.send(req);  // returns once the receiver says stop: the client hangs up
    EXPECT_GE(chunks, 3);
  }
  bool freed = false;
  for (int i = 0; i < 1200 && !freed; ++i) {
    const json state =
        json::parse(server_->client().Get("/v1/calm/state")->body)["models"]["plain"];
    freed = state["slots_busy"] == 0 && state["cancelled"].get<int>() == cancelled_before + 1;
    if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_TRUE(freed) << server_->client().Get("/v1/calm/state")->body;
  // The only slot of `plain` serves again.
  const auto res = post("/v1/chat/completions", chat_body("plain", 3));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(ServeTest, ThirdPartyLlama2ModelCountsPromptTokensExactly) {
  const std::string path = testing::shared_model();
  if (path.empty()) GTEST_SKIP() << "../shared/models/llama-2-tiny-random.gguf is absent";
  CalmServer server(
      fleet("  - id: llama2\n    gguf: " + path + "\n    context: 512\n    threads: 2\n"));
  const json body = {
      {"model", "llama2"}, {"prompt", "hello world"}, {"max_tokens", 5}, {"ignore_eos", true}};
  const auto res = server.client().Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json r = json::parse(res->body);
  EXPECT_EQ(r["usage"]["prompt_tokens"], 3);  // <s> ▁hello ▁world
  EXPECT_EQ(r["usage"]["completion_tokens"], 5);
}

// --- start-up and per-model failures -------------------------------------

TEST(ServeStartup, BrokenYamlExitsNonZeroNamingFileAndLine) {
  try {
    CalmServer server("models:\n  - id: x\n   gguf: [\n");
    FAIL() << "calm serve started with a broken fleet file";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("exited with 2"), std::string::npos) << what;
    EXPECT_NE(what.find("fleet.yaml:"), std::string::npos) << what;
    EXPECT_NE(what.find("invalid YAML"), std::string::npos) << what;
  }
}

TEST(ServeStartup, MissingGgufExitsNonZeroNamingTheField) {
  try {
    CalmServer server("models:\n  - id: x\n    gguf: /nonexistent/model.gguf\n");
    FAIL() << "calm serve started without its model file";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("exited with 2"), std::string::npos) << what;
    EXPECT_NE(what.find("models[0].gguf: file not found: /nonexistent/model.gguf"),
              std::string::npos)
        << what;
  }
}

TEST(ServeStartup, CorruptGgufIsUnavailableWhileTheOtherModelsServe) {
  const std::string corrupt = testing::temp_path("corrupt.gguf");
  {
    std::ifstream in(testing::test_model("tiny-plain.gguf"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(corrupt, std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  }
  CalmServer server(fleet("  - id: broken\n    gguf: " + corrupt + "\n    threads: 2\n"));
  auto res = server.client().Get("/health");
  ASSERT_TRUE(res);
  const json health = json::parse(res->body);
  EXPECT_EQ(health["status"], "degraded");
  EXPECT_NE(health["models"]["broken"].get<std::string>().find("cannot load GGUF"),
            std::string::npos);

  res = server.client().Post("/v1/chat/completions", chat_body("broken", 4).dump(),
                             "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_NE(json::parse(res->body)["error"]["message"].get<std::string>().find(corrupt),
            std::string::npos);

  res =
      server.client().Post("/v1/chat/completions", chat_body("tiny", 4).dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace calm
