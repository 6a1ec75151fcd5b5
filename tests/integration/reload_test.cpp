// Reloading the fleet file while serving: POST /v1/calm/reload and SIGHUP.
#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>

#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;

std::string model_yaml(const std::string& id, const std::string& description, int context = 256) {
  return "  - id: " + id + "\n    description: " + description +
         "\n    gguf: " + testing::test_model("tiny-plain.gguf") +
         "\n    context: " + std::to_string(context) + "\n    threads: 1\n";
}

std::vector<std::string> model_ids(const CalmServer& server) {
  std::vector<std::string> ids;
  const json models = json::parse(server.client().Get("/v1/models")->body);
  for (const auto& m : models["data"]) ids.push_back(m["id"]);
  return ids;
}

void rewrite(const CalmServer& server, const std::string& yaml) {
  std::ofstream(server.config_path()) << yaml;
}

TEST(Reload, AddsAndRemovesModelsWithoutDroppingARequestInFlight) {
  CalmServer server("models:\n" + model_yaml("keep", "stays") +
                    model_yaml("leave", "goes away", 4096));
  // A long answer from the model that the reload removes.
  auto in_flight = std::async(std::launch::async, [&] {
    const json body = {
        {"model", "leave"}, {"prompt", "go"}, {"max_tokens", 3000}, {"ignore_eos", true}};
    return server.client().Post("/v1/completions", body.dump(), "application/json");
  });
  for (int i = 0; i < 3000; ++i) {  // until it is generating (bounded, 30 s)
    const auto state = json::parse(server.client().Get("/v1/calm/state")->body);
    if (state["models"]["leave"]["slots_busy"] == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  rewrite(server,
          "models:\n" + model_yaml("keep", "stays, described anew") + model_yaml("new", "arrives"));
  const auto res = server.client().Post("/v1/calm/reload", "", "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json report = json::parse(res->body);
  EXPECT_EQ(report["added"], json::array({"new"}));
  EXPECT_EQ(report["removed"], json::array({"leave"}));
  EXPECT_EQ(report["updated"], json::array({"keep"}));
  EXPECT_EQ(model_ids(server), (std::vector<std::string>{"keep", "new"}));

  const auto finished = in_flight.get();
  ASSERT_TRUE(finished);
  ASSERT_EQ(finished->status, 200) << finished->body;
  EXPECT_EQ(json::parse(finished->body)["usage"]["completion_tokens"], 3000);

  const json gone = {{"model", "leave"}, {"prompt", "x"}, {"max_tokens", 1}};
  EXPECT_EQ(server.client().Post("/v1/completions", gone.dump(), "application/json")->status, 404);
  const json arrived = {{"model", "new"}, {"prompt", "x"}, {"max_tokens", 1}};
  EXPECT_EQ(server.client().Post("/v1/completions", arrived.dump(), "application/json")->status,
            200);
}

TEST(Reload, EachAnswerNamesTheFleetVersionItWasAdmittedWith) {
  CalmServer server("models:\n" + model_yaml("a", "first"));
  const json body = {{"model", "a"}, {"prompt", "x"}, {"max_tokens", 1}};
  auto res = server.client().Post("/v1/completions", body.dump(), "application/json");
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("x-calm-fleet-version"), "1");
  EXPECT_EQ(json::parse(server.client().Get("/v1/calm/state")->body)["fleet_version"], 1);

  rewrite(server, "models:\n" + model_yaml("a", "first, described anew"));
  res = server.client().Post("/v1/calm/reload", "", "application/json");
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["fleet_version"], 2);
  res = server.client().Post("/v1/completions", body.dump(), "application/json");
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("x-calm-fleet-version"), "2");
  EXPECT_EQ(json::parse(server.client().Get("/v1/calm/state")->body)["fleet_version"], 2);

  // A broken file publishes nothing.
  rewrite(server, "models: [\n");
  EXPECT_EQ(server.client().Post("/v1/calm/reload", "", "application/json")->status, 400);
  EXPECT_EQ(json::parse(server.client().Get("/v1/calm/state")->body)["fleet_version"], 2);
}

TEST(Reload, AModelThatCanNeverFitIsRefusedBeforeAnythingChanges) {
  // tiny-plain fits 8 MiB; cache-a (20 MiB of weights) never can.
  const std::string head = "cache:\n  budget: 8MiB\nmodels:\n";
  CalmServer server(head + model_yaml("a", "first"));
  rewrite(server, head + model_yaml("a", "first, described anew") + "  - id: huge\n    gguf: " +
                      testing::test_model("cache-a.gguf") + "\n    context: 256\n    threads: 1\n");
  const auto res = server.client().Post("/v1/calm/reload", "", "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 400) << res->body;
  const std::string message = json::parse(res->body)["error"]["message"];
  EXPECT_NE(message.find("cache.budget"), std::string::npos) << message;
  EXPECT_NE(message.find("'huge'"), std::string::npos) << message;
  const json state = json::parse(server.client().Get("/v1/calm/state")->body);
  EXPECT_EQ(state["fleet_version"], 1) << state.dump();
  EXPECT_FALSE(state["cache"]["models"].contains("huge")) << state.dump();
  EXPECT_FALSE(state["scheduler"]["models"].contains("huge")) << state.dump();
  EXPECT_EQ(model_ids(server), std::vector<std::string>{"a"});
}

TEST(Reload, BrokenFleetFileChangesNothing) {
  CalmServer server("models:\n" + model_yaml("a", "first"));
  rewrite(server, "models:\n  - id: a\n   gguf: [\n");
  const auto res = server.client().Post("/v1/calm/reload", "", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "invalid_fleet_file");
  EXPECT_NE(json::parse(res->body)["error"]["message"].get<std::string>().find("invalid YAML"),
            std::string::npos);
  EXPECT_EQ(model_ids(server), std::vector<std::string>{"a"});
}

TEST(Reload, SighupReloadsTheFleetFile) {
  CalmServer server("models:\n" + model_yaml("a", "first"));
  rewrite(server, "models:\n" + model_yaml("a", "first") + model_yaml("b", "second"));
  ::kill(server.pid(), SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 1500 && !reloaded; ++i) {
    reloaded = model_ids(server).size() == 2;
    if (!reloaded) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(reloaded) << server.log();
}

}  // namespace
}  // namespace calm
