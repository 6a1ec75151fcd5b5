// The MAPE-K loop through the real `calm serve`: goals, fault injection,
// knowledge across restarts, feedback, adaptations and /metrics.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "router/glove_embedder.h"
#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;

// "general question" is about the primary model; the backup's description
// is close enough (cosine 0.6) to take the traffic when the loop weighs
// latency.
std::string embeddings() {
  const std::string path = testing::temp_path("loop-glove.bin");
  write_glove_bin(path, 2, {"general", "question", "backup"}, {1, 0, 1, 0, 0.6f, 0.8f});
  return path;
}

std::string goals_file(double p95_ms) {
  const std::string path = testing::temp_path("goals.yaml");
  std::ofstream(path) << "goals:\n  latency_p95_ms: " << p95_ms
                      << "\nwindow: 10\ncontroller: {lambda_step: 1, lambda_max: 4, "
                         "relax_margin: 0.8, relax_after: 3}\n";
  return path;
}

std::string fleet(int primary_delay_ms, const std::string& goals, const std::string& knowledge) {
  const std::string model = testing::test_model("tiny-plain.gguf");
  return "router:\n  embeddings: " + embeddings() +
         "\n  policy: pro-latency\n  lambda: 0\n"
         "loop:\n  period_s: 0.1\n  goals_file: " +
         goals + "\n  knowledge: " + knowledge + "\n  energy_meter: cpu-time\n" +
         "models:\n"
         "  - id: primary\n    description: general question\n    gguf: " +
         model + "\n    context: 256\n    threads: 1\n    inject_delay_ms: " +
         std::to_string(primary_delay_ms) +
         "\n  - id: backup\n    description: backup\n    gguf: " + model +
         "\n    context: 256\n    threads: 1\n";
}

std::string ask(const CalmServer& server) {
  const json body = {{"model", "auto"},
                     {"messages", {{{"role", "user"}, {"content", "a general question"}}}},
                     {"max_tokens", 2}};
  const auto res = server.client().Post("/v1/chat/completions", body.dump(), "application/json");
  if (!res || res->status != 200) return "error";
  return res->get_header_value("x-calm-model");
}

// Requests until `model` answers `in_a_row` times running; -1 if not within
// `limit`. One request every 50 ms at most, so that the loop (period 100 ms)
// ticks at least once every two requests, as it would under real traffic.
int requests_until(const CalmServer& server, const std::string& model, int in_a_row, int limit) {
  int run = 0;
  for (int i = 1; i <= limit; ++i) {
    const auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    run = ask(server) == model ? run + 1 : 0;
    std::this_thread::sleep_until(next);
    if (run == in_a_row) return i;
  }
  return -1;
}

TEST(Loop, MovesTrafficAwayFromASlowModelAndBackAfterItRecovers) {
  const std::string knowledge = testing::temp_path("loop-k1.db");
  CalmServer server(fleet(300, goals_file(150), knowledge));
  EXPECT_EQ(ask(server), "primary");  // most similar, and slow
  // The loop sees p95 > 150 ms and weighs latency: traffic moves within 15 requests.
  const int away = requests_until(server, "backup", 3, 15);
  EXPECT_GT(away, 0) << server.log();

  // The fault is repaired (a reload keeps the loop's weights).
  std::ofstream(server.config_path()) << fleet(0, goals_file(150), knowledge);
  ASSERT_EQ(server.client().Post("/v1/calm/reload", "", "application/json")->status, 200);
  // Every goal met with margin: the loop relaxes and traffic comes back.
  const int back = requests_until(server, "primary", 3, 30);
  EXPECT_GT(back, 0) << server.log();

  const json adaptations =
      json::parse(server.client().Get("/v1/calm/adaptations?limit=50")->body)["data"];
  ASSERT_GE(adaptations.size(), 2u);
  // Newest first: the last latency plan in the list is the first one made,
  // which raised the weight from the configured 0, with its figures.
  json first_raise;
  for (const auto& a : adaptations) {
    if (a["kind"] == "routing-weights" &&
        a["reason"].get<std::string>().find("latency_p95_ms") != std::string::npos) {
      first_raise = a;
    }
  }
  ASSERT_FALSE(first_raise.is_null()) << adaptations.dump(2);
  EXPECT_EQ(first_raise["before"]["lambda"], 0);
  EXPECT_GT(first_raise["after"]["lambda"], 0);
  EXPECT_GT(first_raise["figures"]["value"], 150);
}

int observations(const CalmServer& server, const std::string& model) {
  const json body = {{"messages", {{{"role", "user"}, {"content", "a general question"}}}}};
  const json ranking =
      json::parse(server.client().Post("/v1/route", body.dump(), "application/json")->body);
  for (const auto& c : ranking["candidates"]) {
    if (c["model"] == model) return c["observations"];
  }
  return -1;
}

TEST(Loop, RestartKeepsTheQosWindows) {
  const std::string knowledge = testing::temp_path("loop-k2.db");
  std::remove(knowledge.c_str());
  const std::string yaml = fleet(0, goals_file(10000), knowledge);
  {
    CalmServer server(yaml);
    for (int i = 0; i < 4; ++i) ASSERT_EQ(ask(server), "primary");
    EXPECT_EQ(observations(server, "primary"), 4);
  }  // SIGTERM: the knowledge store writes what is queued
  CalmServer again(yaml);
  EXPECT_EQ(observations(again, "primary"), 4) << again.log();
}

TEST(Loop, BrokenGoalsFileStopsTheServerNamingIt) {
  const std::string bad = testing::temp_path("bad-goals.yaml");
  std::ofstream(bad) << "goals:\n  latency_p95_ms: soon\n";
  try {
    CalmServer server(fleet(0, bad, testing::temp_path("loop-k3.db")));
    FAIL() << "started with a broken goals file";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("exited with 2"), std::string::npos) << what;
    EXPECT_NE(what.find("goals.latency_p95_ms: expected a number"), std::string::npos) << what;
  }
}

TEST(Loop, FeedbackIsRecordedForAKnownAnswerAndRefusedOtherwise) {
  CalmServer server(fleet(0, goals_file(10000), testing::temp_path("loop-k4.db")));
  const json body = {{"model", "primary"},
                     {"messages", {{{"role", "user"}, {"content", "hello"}}}},
                     {"max_tokens", 2}};
  const auto res = server.client().Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res) << server.log();
  ASSERT_EQ(res->status, 200);
  const std::string id = json::parse(res->body)["id"];
  auto post = [&](const json& b) {
    return server.client().Post("/v1/feedback", b.dump(), "application/json");
  };
  auto status = [&](const json& b) {  // 0: no answer at all
    const auto r = post(b);
    return r ? r->status : 0;
  };
  EXPECT_EQ(status({{"response_id", id}, {"score", 5}}), 200);
  EXPECT_EQ(status({{"response_id", "chatcmpl-unknown"}, {"score", 3}}), 404);
  const auto bad = post({{"response_id", id}, {"score", 9}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["error"]["param"], "score");
  EXPECT_EQ(status({{"score", 3}}), 400);
  const auto not_json = server.client().Post("/v1/feedback", "{not json", "application/json");
  ASSERT_TRUE(not_json);
  EXPECT_EQ(not_json->status, 400);
}

TEST(Loop, MetricsPassThePrometheusFormatCheck) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package `prometheus`; CI installs it)";
  }
  CalmServer server(fleet(0, goals_file(10000), testing::temp_path("loop-k5.db")));
  for (int i = 0; i < 3; ++i) ask(server);
  const json unknown = {{"model", "nope"}, {"prompt", "x"}};
  EXPECT_EQ(server.client().Post("/v1/completions", unknown.dump(), "application/json")->status,
            404);
  const auto res = server.client().Get("/metrics");
  ASSERT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("calm_requests_total{model=\"primary\"} 3"), std::string::npos)
      << res->body;
  EXPECT_NE(res->body.find("calm_cache_loads_total"), std::string::npos);
  // Memory as the kernel sees it, beside the cache's charge (a cross-check).
  EXPECT_NE(res->body.find("\ncalm_process_resident_bytes "), std::string::npos) << res->body;
  EXPECT_NE(res->body.find("\ncalm_llama_backend_overhead_bytes "), std::string::npos);
  EXPECT_NE(res->body.find("calm_cache_model_rss_growth_bytes{model=\"primary\"}"),
            std::string::npos);
  EXPECT_NE(
      res->body.find("calm_requests_refused_total{status=\"404\",code=\"model_not_found\"} 1"),
      std::string::npos)
      << res->body;
  EXPECT_NE(
      res->body.find("calm_energy_joules_total{model=\"primary\",source=\"cpu-time-estimate\"}"),
      std::string::npos);
  const std::string file = testing::temp_path("metrics.txt");
  std::ofstream(file) << res->body;
  EXPECT_EQ(std::system(("promtool check metrics < " + file).c_str()), 0) << res->body;
}

}  // namespace
}  // namespace calm
