// `model: auto` through the real `calm serve`: routed by meaning, explained by
// POST /v1/route, bypassed by a real model id. The embeddings are a tiny
// CALMGLV1 file written here, so the test needs nothing from outside.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "router/glove_embedder.h"
#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;

// Three orthogonal topics, two words each.
std::string tiny_embeddings() {
  const std::string path = testing::temp_path("tiny-glove.bin");
  const std::vector<std::string> words = {"equation", "algebra", "python",
                                          "function", "patient", "doctor"};
  std::vector<float> vectors = {1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1};
  write_glove_bin(path, 3, words, vectors);
  return path;
}

std::string routed_fleet(const std::string& extra_router = "") {
  const std::string model = testing::test_model("tiny-plain.gguf");
  return "router:\n  embeddings: " + tiny_embeddings() +
         "\n  policy: pro-confidence\n  lambda: 0\n" + extra_router +
         "models:\n"
         "  - id: maths\n    description: algebra equation\n    gguf: " +
         model +
         "\n    context: 256\n    threads: 1\n"
         "  - id: coder\n    description: python function\n    gguf: " +
         model +
         "\n    context: 256\n    threads: 1\n"
         "  - id: medic\n    description: doctor patient\n    gguf: " +
         model + "\n    context: 256\n    threads: 1\n";
}

json chat(const std::string& model, const std::string& text) {
  return {
      {"model", model}, {"messages", {{{"role", "user"}, {"content", text}}}}, {"max_tokens", 2}};
}

TEST(Routing, AutoSendsEachQueryToTheModelItIsAbout) {
  CalmServer server(routed_fleet());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"solve this equation", "maths"},
      {"a python function please", "coder"},
      {"the patient saw a doctor", "medic"}};
  for (const auto& [text, expected] : cases) {
    const auto res =
        server.client().Post("/v1/chat/completions", chat("auto", text).dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("x-calm-model"), expected) << text;
    EXPECT_EQ(json::parse(res->body)["model"], expected);
    EXPECT_NE(res->get_header_value("x-calm-route").find("pro-confidence"), std::string::npos);
  }
}

TEST(Routing, RealModelIdBypassesTheRouter) {
  CalmServer server(routed_fleet());
  const auto res = server.client().Post(
      "/v1/chat/completions", chat("medic", "solve this equation").dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("x-calm-model"), "medic");
  EXPECT_EQ(res->get_header_value("x-calm-route"), "named in the request");
}

TEST(Routing, RouteEndpointExplainsEveryCandidateWithoutInference) {
  CalmServer server(routed_fleet());
  const auto res =
      server.client().Post("/v1/route", chat("auto", "algebra").dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json r = json::parse(res->body);
  EXPECT_EQ(r["chosen"], "maths");
  EXPECT_EQ(r["policy"], "pro-confidence");
  ASSERT_EQ(r["candidates"].size(), 3u);
  for (const auto& c : r["candidates"]) {
    for (const char* key :
         {"model", "similarity", "latency", "energy", "memory", "confidence", "score"}) {
      EXPECT_TRUE(c.contains(key)) << key;
    }
  }
  EXPECT_GT(r["candidates"][0]["similarity"].get<double>(),
            r["candidates"][1]["similarity"].get<double>());
  const auto state = json::parse(server.client().Get("/v1/calm/state")->body);
  for (const auto& [id, m] : state["models"].items()) EXPECT_EQ(m["completed"], 0) << id;
}

TEST(Routing, QueryOfUnknownWordsFallsBackWithoutCrashing) {
  CalmServer server(routed_fleet());
  const auto route =
      server.client().Post("/v1/route", chat("auto", "zzzz qqqq").dump(), "application/json");
  ASSERT_TRUE(route);
  const json r = json::parse(route->body);
  EXPECT_FALSE(r["query_known"].get<bool>());
  EXPECT_EQ(r["chosen"], "maths");  // first in the fleet file
  const auto res =
      server.client().Post("/v1/chat/completions", chat("auto", "zzzz").dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(Routing, EmptyQueryTextAndTextlessContentAre400) {
  CalmServer server(routed_fleet());
  auto res = server.client().Post("/v1/route", json{{"messages", json::array()}}.dump(),
                                  "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res =
      server.client().Post("/v1/chat/completions", chat("auto", "   ").dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "empty_query");
  res = server.client().Post("/v1/route", chat("auto", "").dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  const json textless = {
      {"model", "auto"},
      {"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}};
  res = server.client().Post("/v1/chat/completions", textless.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST(Routing, AGgufEmbeddingModelCanEmbedForTheRouter) {
  const std::string model = testing::test_model("tiny-plain.gguf");
  CalmServer server("router:\n  embeddings: " + testing::test_model("tiny-chatml.gguf") +
                    "\nmodels:\n  - id: a\n    description: algebra\n    gguf: " + model +
                    "\n    threads: 1\n  - id: b\n    description: python\n    gguf: " + model +
                    "\n    threads: 1\n");
  const auto res =
      server.client().Post("/v1/route", chat("auto", "some words").dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json r = json::parse(res->body);
  EXPECT_TRUE(r["query_known"].get<bool>());
  EXPECT_EQ(r["candidates"].size(), 2u);
  EXPECT_NE(r["candidates"][0]["similarity"], 0.0);
}

TEST(Routing, RouteEndpointWithoutARouterIs404) {
  CalmServer server("models:\n  - id: m\n    gguf: " + testing::test_model("tiny-plain.gguf") +
                    "\n    threads: 1\n");
  const auto res = server.client().Post("/v1/route", chat("auto", "x").dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "routing_not_configured");
}

TEST(Routing, CorruptEmbeddingsFileStopsTheServerNamingIt) {
  const std::string bad = testing::temp_path("bad.bin");
  std::ofstream(bad) << "not embeddings";
  const std::string model = testing::test_model("tiny-plain.gguf");
  try {
    CalmServer server("router:\n  embeddings: " + bad +
                      "\nmodels:\n  - id: m\n    description: d\n    gguf: " + model + "\n");
    FAIL() << "started with corrupt embeddings";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("exited with 2"), std::string::npos) << what;
    EXPECT_NE(what.find(bad), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace calm
