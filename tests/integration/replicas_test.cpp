// Two `calm serve` replicas behind a real HAProxy, sharing their knowledge in
// a real PostgreSQL server that the test makes (tests/support/
// postgres_server.h): a feedback given through the balancer moves both
// replicas' QoS windows; one replica leads placement, and killing it moves
// the lead to the other, which goes on serving with nothing committed lost.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "knowledge/knowledge_store.h"
#include "router/glove_embedder.h"
#include "support/postgres_server.h"
#include "support/process.h"
#include "support/test_env.h"

namespace calm {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing::CalmServer;

constexpr const char* kHaproxy = "/usr/sbin/haproxy";
constexpr const char* kQuery = "a general question";

std::optional<std::string> unavailable() {
  if (auto why = testing::PostgresServer::unavailable()) return why;
  if (::access(kHaproxy, X_OK) != 0) {
    return std::string("no ") + kHaproxy + " (Debian's haproxy; scripts/install-deps.sh)";
  }
  return std::nullopt;
}

std::string fleet(const std::string& knowledge, const std::string& replica,
                  const std::string& embeddings) {
  const std::string model = testing::test_model("tiny-plain.gguf");
  return "router:\n  embeddings: " + embeddings +
         "\n  policy: pro-latency\n  lambda: 0\n"
         "loop:\n  period_s: 0.1\n  knowledge: " +
         knowledge + "\n  energy_meter: cpu-time\nknowledge:\n  replica: " + replica +
         "\nmodels:\n"
         "  - id: primary\n    description: general question\n    gguf: " +
         model + "\n    context: 256\n    threads: 1\n" +
         "  - id: backup\n    description: backup\n    gguf: " + model +
         "\n    context: 256\n    threads: 1\n";
}

// HAProxy round robin over the replicas, health-checked on /health.
class Balancer {
 public:
  explicit Balancer(const std::vector<int>& ports) : port_(testing::free_port()) {
    const std::string config = testing::temp_path("haproxy.cfg");
    std::ofstream out(config);
    out << "global\n  maxconn 64\ndefaults\n  mode http\n  timeout connect 2s\n"
           "  timeout client 60s\n  timeout server 60s\n  retries 2\n  option redispatch\n"
           "frontend calm\n  bind 127.0.0.1:"
        << port_ << "\n  default_backend replicas\nbackend replicas\n  balance roundrobin\n"
        << "  option httpchk GET /health\n  default-server inter 200ms fall 2 rise 1\n";
    for (size_t i = 0; i < ports.size(); ++i) {
      out << "  server r" << i << " 127.0.0.1:" << ports[i] << " check\n";
    }
    out.close();
    process_.emplace(std::vector<std::string>{kHaproxy, "-db", "-f", config}, config + ".log");
    if (!testing::wait_healthy(port_, "/health", 30s)) {
      throw std::runtime_error("haproxy did not start: " + process_->log());
    }
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c;
  }

 private:
  int port_;
  std::optional<testing::ChildProcess> process_;
};

json ask(httplib::Client client) {
  const json body = {{"model", "primary"},
                     {"messages", {{{"role", "user"}, {"content", kQuery}}}},
                     {"max_tokens", 2}};
  const auto res = client.Post("/v1/chat/completions", body.dump(), "application/json");
  if (!res || res->status != 200) return nullptr;
  return json::parse(res->body);
}

// The router's view of `model` in that replica: its confidence and observations.
json candidate(const CalmServer& server, const std::string& model) {
  const json body = {{"messages", {{{"role", "user"}, {"content", kQuery}}}}};
  const auto res = server.client().Post("/v1/route", body.dump(), "application/json");
  if (!res || res->status != 200) return nullptr;
  const json ranking = json::parse(res->body);
  for (const auto& c : ranking["candidates"]) {
    if (c["model"] == model) return c;
  }
  return nullptr;
}

// Polls until `done` holds (at most 30 s: far beyond the loop's 100 ms period).
template <typename Done>
bool eventually(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

std::optional<bool> leads(const CalmServer& server) {
  const auto res = server.client().Get("/v1/calm/state");
  if (!res || res->status != 200) return std::nullopt;
  const json state = json::parse(res->body);
  const json& replica = state["loop"]["replica"];
  if (!replica.is_object()) return std::nullopt;
  return replica["leads_placement"].get<bool>();
}

class Replicas : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = unavailable()) GTEST_SKIP() << *why;
    postgres_ = std::make_unique<testing::PostgresServer>();
    const std::string glove = testing::temp_path("replicas-glove.bin");
    write_glove_bin(glove, 2, {"general", "question", "backup"}, {1, 0, 1, 0, 0.6f, 0.8f});
    a_ = std::make_unique<CalmServer>(fleet(postgres_->url(), "a", glove));
    b_ = std::make_unique<CalmServer>(fleet(postgres_->url(), "b", glove));
    balancer_ = std::make_unique<Balancer>(std::vector<int>{a_->port(), b_->port()});
  }

  std::unique_ptr<testing::PostgresServer> postgres_;
  std::unique_ptr<CalmServer> a_, b_;
  std::unique_ptr<Balancer> balancer_;
};

TEST_F(Replicas, AFeedbackGivenThroughTheBalancerMovesBothReplicasWindows) {
  const json answer = ask(a_->client());  // served by replica a
  ASSERT_TRUE(answer.is_object()) << a_->log();
  const std::string id = answer["id"];
  // b has taken a's request into its window (news, within a loop period).
  ASSERT_TRUE(eventually([&] {
    const json c = candidate(*b_, "primary");
    return c.is_object() && c["observations"].get<int>() >= 1;
  })) << b_->log();
  EXPECT_GT(candidate(*b_, "primary")["confidence"].get<double>(), 0.0);

  // Whichever replica the balancer picks, score 1 (confidence 0) reaches both.
  const auto res = balancer_->client().Post(
      "/v1/feedback", json{{"response_id", id}, {"score", 1}}.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  for (const CalmServer* server : {a_.get(), b_.get()}) {
    EXPECT_TRUE(eventually([&] {
      const json c = candidate(*server, "primary");
      return c.is_object() && c["confidence"].get<double>() == 0.0;
    })) << server->log();
  }
}

TEST_F(Replicas, KillingTheLeaderMovesTheLeadToTheOtherAndLosesNothingCommitted) {
  // Exactly one replica leads.
  ASSERT_TRUE(eventually([&] {
    const auto la = leads(*a_), lb = leads(*b_);
    return la && lb && *la != *lb;
  })) << a_->log()
      << b_->log();
  CalmServer& leader = *leads(*a_) ? *a_ : *b_;
  CalmServer& follower = &leader == a_.get() ? *b_ : *a_;

  // Requests through the balancer reach both; everything answered is
  // committed within a batch interval.
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(ask(balancer_->client()).is_object());
  KnowledgeStore reader(postgres_->url());
  ASSERT_TRUE(eventually([&] { return reader.request_count() >= 6; }));
  const uint64_t committed = reader.request_count();

  ::kill(leader.pid(), SIGKILL);
  EXPECT_TRUE(eventually([&] { return leads(follower).value_or(false); })) << follower.log();
  // The balancer sends everything to the survivor, which answers.
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ask(balancer_->client()).is_object()) << i;
  // Nothing committed was lost, and the survivor's requests are recorded.
  EXPECT_TRUE(eventually([&] { return reader.request_count() >= committed + 4; }))
      << reader.request_count() << " < " << committed << " + 4";

  const auto adaptations = follower.client().Get("/v1/calm/adaptations?limit=50");
  ASSERT_TRUE(adaptations);
  const json parsed = json::parse(adaptations->body);
  bool took_lead = false;
  for (const auto& a : parsed["data"]) took_lead = took_lead || a["kind"] == "leader";
  EXPECT_TRUE(took_lead) << adaptations->body;
}

}  // namespace
}  // namespace calm
