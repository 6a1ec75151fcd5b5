// calm in front of remote OpenAI-compatible backends: the real llama-server
// built from the same pinned llama.cpp, and a second calm.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;

json chat_body(const std::string& model, bool stream) {
  return {{"model", model},
          {"messages", {{{"role", "user"}, {"content", "hello"}}}},
          {"max_tokens", 8},
          {"seed", 5},
          {"temperature", 0},
          {"stream", stream},
          {"stream_options", {{"include_usage", true}}}};
}

// Content of a plain or streamed chat answer.
std::string answer_text(const httplib::Result& res, bool stream) {
  if (!stream) return json::parse(res->body)["choices"][0]["message"]["content"];
  std::string text;
  size_t pos = 0;
  while ((pos = res->body.find("data: ", pos)) != std::string::npos) {
    const size_t end = res->body.find("\n\n", pos);
    const std::string data = res->body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") break;
    const json e = json::parse(data);
    if (!e["choices"].empty() && e["choices"][0]["delta"].contains("content")) {
      text += e["choices"][0]["delta"]["content"].get<std::string>();
    }
  }
  return text;
}

std::string remote_fleet(const std::string& url) {
  return "models:\n"
         "  - id: far\n"
         "    description: a model behind another server\n"
         "    url: " +
         url +
         "\n"
         "    upstream_model: tiny\n"
         "    read_timeout_s: 60\n";
}

TEST(RemoteBackend, ServesThroughARealLlamaServer) {
  const std::string llama_server = testing::env("CALM_LLAMA_SERVER");
  const std::string model = testing::shared_model();
  if (model.empty()) GTEST_SKIP() << "../shared/models/llama-2-tiny-random.gguf is absent";
  const int port = testing::free_port();
  testing::ChildProcess upstream({llama_server, "-m", model, "--host", "127.0.0.1", "--port",
                                  std::to_string(port), "-c", "512", "-t", "2", "-np", "2"},
                                 testing::temp_path("llama-server.log"));
  ASSERT_TRUE(testing::wait_healthy(port, "/health", std::chrono::seconds(60))) << upstream.log();

  CalmServer calm(remote_fleet("http://127.0.0.1:" + std::to_string(port)));
  for (bool stream : {false, true}) {
    // llama-server itself answers 500 when a random model's bytes are not
    // UTF-8; a greedy run on this model stays ASCII-safe often enough, so
    // accept its 500 only with its own error text, never a broken body.
    const auto res = calm.client().Post("/v1/chat/completions", chat_body("far", stream).dump(),
                                        "application/json");
    ASSERT_TRUE(res);
    if (res->status != 200) {
      EXPECT_EQ(res->status, 502) << res->body;
      EXPECT_TRUE(json::parse(res->body).contains("error"));
      continue;
    }
    EXPECT_EQ(res->get_header_value("x-calm-model"), "far");
    EXPECT_NO_THROW(answer_text(res, stream)) << res->body;
  }
}

TEST(RemoteBackend, ServesThroughASecondCalm) {
  CalmServer inner("models:\n  - id: tiny\n    gguf: " + testing::test_model("tiny-chatml.gguf") +
                   "\n    context: 256\n    threads: 1\n");
  CalmServer outer(remote_fleet(inner.url()));
  const auto direct = inner.client().Post("/v1/chat/completions", chat_body("tiny", false).dump(),
                                          "application/json");
  ASSERT_TRUE(direct);
  ASSERT_EQ(direct->status, 200);
  for (bool stream : {false, true}) {
    const auto res = outer.client().Post("/v1/chat/completions", chat_body("far", stream).dump(),
                                         "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    // Greedy decoding: the same answer through the proxy as directly.
    EXPECT_EQ(answer_text(res, stream), answer_text(direct, false));
  }
}

TEST(RemoteBackend, UnreachableBackendIsUnavailableNotACrash) {
  const int port = testing::free_port();  // nothing listens there
  CalmServer calm(remote_fleet("http://127.0.0.1:" + std::to_string(port)));
  const auto health = calm.client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  const auto res = calm.client().Post("/v1/chat/completions", chat_body("far", false).dump(),
                                      "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_TRUE(json::parse(res->body).contains("error"));
}

TEST(RemoteBackend, BackendThatStartsLaterServesWithoutARestart) {
  const int port = testing::free_port();
  CalmServer calm(remote_fleet("http://127.0.0.1:" + std::to_string(port)));
  auto res = calm.client().Post("/v1/chat/completions", chat_body("far", false).dump(),
                                "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);

  CalmServer backend("models:\n  - id: tiny\n    gguf: " + testing::test_model("tiny-chatml.gguf") +
                         "\n    context: 256\n    threads: 1\n",
                     port);
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {  // calm asks a down backend again every 2 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    res = calm.client().Post("/v1/chat/completions", chat_body("far", false).dump(),
                             "application/json");
    status = res ? res->status : 0;
  }
  EXPECT_EQ(status, 200);
}

}  // namespace
}  // namespace calm
