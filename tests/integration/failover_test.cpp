// Failover and circuit breakers against real backends: a front calm whose
// model `far` is a second, real calm (killed, silenced and restarted by the
// test), with a local model `near` as its fallback. Every wait is a bounded
// poll; no test depends on how fast the machine is.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "support/calm_client.h"
#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;
using testing::state;
using testing::wait_state;
using namespace std::chrono_literals;

std::string tiny_model(const std::string& id, const std::string& extra = "") {
  return "  - id: " + id + "\n    gguf: " + testing::test_model("tiny-chatml.gguf") +
         "\n    context: 256\n    threads: 1\n" + extra;
}

// The backend: one model `tiny` (slowed by delay_ms before each answer).
std::string backend_fleet(int delay_ms = 0) {
  return "server: {drain_grace_s: 0.1}\nmodels:\n" +
         tiny_model("tiny", "    inject_delay_ms: " + std::to_string(delay_ms) + "\n");
}

// A remote model `id` on the backend at `url`.
std::string remote_model(const std::string& id, const std::string& url,
                         const std::string& extra = "") {
  return "  - id: " + id + "\n    url: " + url + "\n    upstream_model: tiny\n" + extra;
}

std::string chat(const std::string& model, int max_tokens = 4, bool stream = false) {
  return json{{"model", model},
              {"messages", {{{"role", "user"}, {"content", "Say something."}}}},
              {"max_tokens", max_tokens},
              {"seed", 1},
              {"stream", stream}}
      .dump();
}

std::string metrics(const CalmServer& server) {
  auto res = server.client().Get("/metrics");
  return res ? res->body : "";
}

void kill_now(CalmServer& server) {
  ::kill(server.pid(), SIGKILL);
}

TEST(Failover, ABackendKilledBeforeTheFirstTokenIsAnsweredByItsFallback) {
  CalmServer backend(backend_fleet());
  CalmServer front("models:\n" + remote_model("far", backend.url(), "    fallbacks: [near]\n") +
                   tiny_model("near"));
  auto c = front.client();
  auto res = c.Post("/v1/chat/completions", chat("far"), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("x-calm-model"), "far");

  kill_now(backend);
  for (bool stream : {false, true}) {
    res = c.Post("/v1/chat/completions", chat("far", 4, stream), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("x-calm-model"), "near") << "stream " << stream;
    EXPECT_NE(res->get_header_value("x-calm-route").find("fallback for 'far'"), std::string::npos)
        << res->get_header_value("x-calm-route");
    if (stream) {
      EXPECT_NE(res->body.find("\"model\":\"near\""), std::string::npos) << res->body;
      EXPECT_EQ(res->body.find("\"model\":\"far\""), std::string::npos) << res->body;
      EXPECT_NE(res->body.find("data: [DONE]"), std::string::npos);
    }
  }
  EXPECT_NE(metrics(front).find("calm_failover_retries_total{model=\"far\"} 2"), std::string::npos)
      << metrics(front);
}

TEST(Failover, AModelWhoseLoadFailsIsAnsweredByItsFallback) {
  const std::string corrupt = testing::temp_path("corrupt.gguf");
  {
    std::ifstream in(testing::test_model("tiny-chatml.gguf"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(corrupt, std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  }
  CalmServer front("models:\n  - id: broken\n    gguf: " + corrupt +
                   "\n    threads: 1\n    fallbacks: [near]\n" + tiny_model("near"));
  for (int i = 0; i < 2; ++i) {
    auto res = front.client().Post("/v1/chat/completions", chat("broken"), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("x-calm-model"), "near");
  }
}

TEST(Failover, WithNoFallbackLeftTheClientGetsTheBackendsErrorAndTheFailureIsCounted) {
  CalmServer backend(backend_fleet());
  CalmServer front("models:\n" + remote_model("far", backend.url()) + tiny_model("near"));
  kill_now(backend);
  auto res = front.client().Post("/v1/chat/completions", chat("far"), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "model_unavailable");
  EXPECT_NE(metrics(front).find(
                "calm_requests_failed_total{model=\"far\",phase=\"before_first_token\"} 1"),
            std::string::npos)
      << metrics(front);
}

TEST(Failover, ABackendKilledMidStreamEndsTheStreamWithAnErrorEventAndDoneAndFreesTheSlot) {
  CalmServer backend("server: {drain_grace_s: 0.1}\nmodels:\n  - id: tiny\n    gguf: " +
                     testing::test_model("tiny-chatml.gguf") +
                     "\n    context: 32768\n    threads: 1\n");
  CalmServer front("models:\n" + remote_model("far", backend.url(), "    fallbacks: [near]\n") +
                   tiny_model("near"));
  json body = json::parse(chat("far", 30000, true));
  body["ignore_eos"] = true;  // far longer than the test: it is killed mid-way
  std::string received;
  std::atomic<bool> first_token{false};
  std::thread killer([&] {
    for (int i = 0; i < 3000 && !first_token; ++i) std::this_thread::sleep_for(10ms);
    kill_now(backend);
  });
  httplib::Client c("127.0.0.1", front.port());
  c.set_read_timeout(60, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    received.append(data, size);
    if (received.find("\"content\":\"") != std::string::npos &&
        received.find("\"content\":\"\"") != received.rfind("\"content\":\"")) {
      first_token = true;  // a content delta beyond the empty role chunk
    }
    return true;
  };
  auto res = c.send(req);
  killer.join();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  ASSERT_TRUE(first_token) << received;
  // The error event, then [DONE], and nothing from the fallback.
  const size_t error_at = received.find("data: {\"error\"");
  ASSERT_NE(error_at, std::string::npos) << received.substr(received.size() - 600);
  EXPECT_NE(received.find("data: [DONE]", error_at), std::string::npos);
  EXPECT_EQ(received.find("\"model\":\"near\""), std::string::npos);
  EXPECT_TRUE(wait_state(front, [](const json& s) {
    return s["scheduler"]["models"]["far"]["running"] == 0 && s["pipeline"]["in_flight"] == 0;
  })) << state(front).dump();
  EXPECT_NE(metrics(front).find("calm_requests_failed_total{model=\"far\",phase=\"mid_stream\"} 1"),
            std::string::npos)
      << metrics(front);
}

TEST(Failover, ABackendThatNeverAnswersTimesOutThenTheFallbackAnswersOrTheClientGets504) {
  CalmServer backend(backend_fleet(/*delay_ms=*/600000));  // accepts, then says nothing
  CalmServer front(
      "models:\n" +
      remote_model("far", backend.url(), "    read_timeout_s: 1\n    fallbacks: [near]\n") +
      remote_model("alone", backend.url(), "    read_timeout_s: 1\n") + tiny_model("near"));
  auto c = front.client();
  auto res = c.Post("/v1/chat/completions", chat("far"), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("x-calm-model"), "near");
  EXPECT_NE(res->get_header_value("x-calm-route").find("upstream_timeout"), std::string::npos)
      << res->get_header_value("x-calm-route");

  res = c.Post("/v1/chat/completions", chat("alone"), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 504) << res->body;
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "upstream_timeout");
}

TEST(Failover, ABreakerOpensOnRepeatedFailuresShowsEverywhereAndClosesOnceTheBackendIsBack) {
  const int port = testing::free_port();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  std::optional<CalmServer> backend;
  backend.emplace(backend_fleet(), port);
  CalmServer front(
      "failover: {breaker_failures: 2, breaker_cooldown_s: 0.3}\n"
      "models:\n" +
      remote_model("far", url, "    fallbacks: [near]\n") + tiny_model("near"));
  auto c = front.client();
  kill_now(*backend);
  for (int i = 0; i < 2; ++i) {
    auto res = c.Post("/v1/chat/completions", chat("far"), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("x-calm-model"), "near");
  }
  // Open (the backend stays down, so each health check fails and it stays open).
  const json s = state(front);
  ASSERT_EQ(s["breakers"]["far"]["state"], "open") << s.dump();
  EXPECT_EQ(s["breakers"]["far"]["failures_in_a_row"], 2);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  const json h = json::parse(health->body);
  EXPECT_EQ(h["status"], "degraded");
  EXPECT_EQ(h["models"]["far"].get<std::string>().rfind("unavailable: circuit open", 0), 0u)
      << h.dump();
  const json models = json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["data"][0]["calm"]["breaker"]["state"], "open") << models.dump();
  EXPECT_NE(metrics(front).find("calm_breaker_state{model=\"far\",state=\"open\"} 1"),
            std::string::npos);
  const json adaptations = json::parse(c.Get("/v1/calm/adaptations")->body);
  ASSERT_FALSE(adaptations["data"].empty());
  EXPECT_EQ(adaptations["data"][0]["kind"], "breaker");
  EXPECT_EQ(adaptations["data"][0]["after"]["state"], "open");
  // While open, far is passed over at once: near answers.
  auto res = c.Post("/v1/chat/completions", chat("far"), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("x-calm-model"), "near");

  backend.reset();
  backend.emplace(backend_fleet(), port);  // restarted on the same port
  bool far_answers = false;
  for (int i = 0; i < 300 && !far_answers; ++i) {  // bounded: 30 s
    res = c.Post("/v1/chat/completions", chat("far"), "application/json");
    far_answers = res && res->status == 200 && res->get_header_value("x-calm-model") == "far";
    if (!far_answers) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(far_answers);
  EXPECT_EQ(state(front)["breakers"]["far"]["state"], "closed");
  EXPECT_EQ(json::parse(c.Get("/health")->body)["status"], "ok");
  const json after = json::parse(c.Get("/v1/calm/adaptations")->body);
  EXPECT_EQ(after["data"][0]["after"]["state"], "closed") << after.dump();
  EXPECT_NE(metrics(front).find("calm_breaker_opened_total{model=\"far\"} 1"), std::string::npos)
      << metrics(front);
}

}  // namespace
}  // namespace calm
