// API keys against the real `calm serve`: each security case of the
// hardening issue, on loopback.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "auth/api_keys.h"
#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;

std::string model_yaml() {
  return "models:\n  - id: tiny\n    gguf: " + testing::test_model("tiny-chatml.gguf") +
         "\n    context: 256\n    threads: 1\n";
}

// alice: inference, 2 requests a minute; root: admin, no limits.
std::string fleet_with_keys() {
  return model_yaml() +
         "auth:\n  keys:\n    - name: alice\n      sha256: " + sha256_hex("sk-alice") +
         "\n      requests_per_minute: 2\n    - name: root\n" +
         "      sha256: " + sha256_hex("sk-root") + "\n      scope: admin\n";
}

const std::string kChat = json{
    {"model", "tiny"},
    {"messages", {{{"role", "user"}, {"content", "hi"}}}},
    {"max_tokens", 2}}.dump();

httplib::Result post_chat(const CalmServer& server, const std::string& key) {
  httplib::Headers headers;
  if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
  return server.client().Post("/v1/chat/completions", headers, kChat, "application/json");
}

httplib::Result get(const CalmServer& server, const std::string& path, const std::string& key) {
  httplib::Headers headers;
  if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
  return server.client().Get(path, headers);
}

class Auth : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new CalmServer(fleet_with_keys()); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static CalmServer* server_;
};
CalmServer* Auth::server_ = nullptr;

TEST_F(Auth, NoKeyIs401WithWwwAuthenticateInOpenAisShape) {
  auto res = post_chat(*server_, "");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer");
  const json body = json::parse(res->body);
  EXPECT_EQ(body["error"]["code"], "invalid_api_key");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(get(*server_, "/v1/models", "")->status, 401);
}

TEST_F(Auth, WrongKeyIs401) {
  auto res = post_chat(*server_, "sk-mallory");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(res->body.find("sk-mallory"), std::string::npos) << res->body;
}

TEST_F(Auth, HealthIsPublic) {
  EXPECT_EQ(get(*server_, "/health", "")->status, 200);
}

TEST_F(Auth, InferenceKeyOnAnAdminEndpointIs403) {
  for (const char* path : {"/v1/calm/state", "/metrics", "/v1/calm/adaptations"}) {
    auto res = get(*server_, path, "sk-alice");
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 403) << path;
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "insufficient_scope") << path;
  }
  httplib::Headers headers{{"Authorization", "Bearer sk-alice"}};
  auto reload = server_->client().Post("/v1/calm/reload", headers, "", "application/json");
  ASSERT_TRUE(reload);
  EXPECT_EQ(reload->status, 403);
}

TEST_F(Auth, AdminKeyMayCallEverything) {
  EXPECT_EQ(get(*server_, "/v1/calm/state", "sk-root")->status, 200);
  EXPECT_EQ(get(*server_, "/metrics", "sk-root")->status, 200);
  EXPECT_EQ(post_chat(*server_, "sk-root")->status, 200);
}

TEST_F(Auth, OverTheKeysRequestsPerMinuteIs429WithRetryAfter) {
  // alice may send 2 a minute; the third within the minute is refused.
  std::vector<int> statuses;
  for (int i = 0; i < 2; ++i) {
    auto res = post_chat(*server_, "sk-alice");
    ASSERT_TRUE(res);
    statuses.push_back(res->status);
  }
  auto last = post_chat(*server_, "sk-alice");
  ASSERT_TRUE(last);
  statuses.push_back(last->status);
  EXPECT_EQ(statuses, (std::vector<int>{200, 200, 429}));
  EXPECT_TRUE(last->has_header("Retry-After"));
  EXPECT_GE(std::stoi(last->get_header_value("Retry-After")), 1);
  EXPECT_EQ(json::parse(last->body)["error"]["code"], "rate_limit_exceeded");
  // The refusals are counted in /metrics.
  EXPECT_EQ(post_chat(*server_, "")->status, 401);
  const std::string metrics = get(*server_, "/metrics", "sk-root")->body;
  EXPECT_NE(metrics.find("code=\"rate_limit_exceeded\""), std::string::npos);
  EXPECT_NE(metrics.find("code=\"invalid_api_key\""), std::string::npos);
}

TEST(AuthReload, AReloadReplacesTheKeys) {
  const std::string root =
      "    - name: root\n      sha256: " + sha256_hex("sk-root") + "\n      scope: admin\n";
  CalmServer server(model_yaml() + "auth:\n  keys:\n" + root);
  EXPECT_EQ(post_chat(server, "sk-bob")->status, 401);
  std::ofstream(server.config_path())
      << model_yaml() + "auth:\n  keys:\n" + root +
             "    - name: bob\n      sha256: " + sha256_hex("sk-bob") + "\n";
  httplib::Headers admin{{"Authorization", "Bearer sk-root"}};
  auto reload = server.client().Post("/v1/calm/reload", admin, "", "application/json");
  ASSERT_TRUE(reload);
  ASSERT_EQ(reload->status, 200) << reload->body;
  EXPECT_EQ(post_chat(server, "sk-bob")->status, 200);
}

using testing::CliRun;
using testing::run_calm;

TEST(AuthStart, ANonLoopbackBindWithoutKeysIsRefusedSayingWhy) {
  const std::string fleet = testing::temp_path("open.yaml");
  std::ofstream(fleet) << model_yaml();
  const CliRun r = run_calm({"serve", "--config", fleet, "--host", "0.0.0.0", "--port", "0"});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("refusing to listen on 0.0.0.0 with no API keys"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("--insecure"), std::string::npos) << r.output;
}

TEST(AuthStart, HashKeyPrintsTheDigestTheFleetFileHolds) {
  const std::string key_file = testing::temp_path("key.txt");
  std::ofstream(key_file) << "sk-alice\n";
  const std::string out = testing::temp_path("hash.out");
  const std::string command =
      testing::env("CALM_BIN") + " hash-key < " + key_file + " > " + out + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, sha256_hex("sk-alice"));
}

// The keys calm is given (its own, hashed in the fleet file; the upstream
// api_key, in plain text there) and the ones it is shown never come out of
// it: not in its log, its state, its metrics, its model list or any answer.
TEST(Secrets, NoKeyAppearsInTheLogStateMetricsModelsOrErrors) {
  const std::string upstream_key = "sk-upstream-backend-7731";
  const std::string wrong_upstream_key = "sk-upstream-wrong-9042";
  const std::string front_key = "sk-front-root-5520";
  const std::string presented_wrong = "sk-presented-wrong-3318";
  CalmServer backend(model_yaml() + "auth:\n  keys:\n    - name: front\n      sha256: " +
                     sha256_hex(upstream_key) + "\n");
  const auto remote = [&](const std::string& id, const std::string& key) {
    return "  - id: " + id + "\n    url: " + backend.url() +
           "\n    upstream_model: tiny\n    api_key: " + key + "\n";
  };
  CalmServer front("models:\n" + remote("far", upstream_key) +
                   remote("refused", wrong_upstream_key) +
                   "auth:\n  keys:\n    - name: root\n      sha256: " + sha256_hex(front_key) +
                   "\n      scope: admin\n");
  std::string seen;  // every answer's headers and body
  const auto keep = [&](const httplib::Result& res) {
    if (!res) return 0;
    for (const auto& [name, value] : res->headers) seen += name + ": " + value + "\n";
    seen += res->body + "\n";
    return res->status;
  };
  const auto chat = [&](const std::string& model, const std::string& key) {
    httplib::Headers headers{{"Authorization", "Bearer " + key}};
    const std::string body = json{
        {"model", model},
        {"messages", {{{"role", "user"}, {"content", "hi"}}}},
        {"max_tokens", 2}}.dump();
    return keep(front.client().Post("/v1/chat/completions", headers, body, "application/json"));
  };
  EXPECT_EQ(chat("far", front_key), 200) << seen;
  const int refused = chat("refused", front_key);  // the backend refuses that key
  EXPECT_GE(refused, 500) << seen;
  EXPECT_EQ(chat("far", presented_wrong), 401);
  for (const char* path :
       {"/health", "/v1/models", "/v1/calm/state", "/metrics", "/v1/calm/adaptations"}) {
    EXPECT_EQ(keep(get(front, path, front_key)), 200) << path;
  }
  EXPECT_EQ(keep(front.client().Post("/v1/calm/reload", {{"Authorization", "Bearer " + front_key}},
                                     "", "application/json")),
            200);
  ASSERT_EQ(front.terminate(std::chrono::seconds(30)), 0);
  const std::string log = front.log();
  for (const std::string& secret : {upstream_key, wrong_upstream_key, front_key, presented_wrong}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " in the log:\n" << log;
    EXPECT_EQ(seen.find(secret), std::string::npos) << secret << " in an answer:\n" << seen;
  }
  EXPECT_EQ(backend.log().find(upstream_key), std::string::npos);
}

}  // namespace
}  // namespace calm
