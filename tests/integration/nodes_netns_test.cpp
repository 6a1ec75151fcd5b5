// calm serve placing models on nodes that each run in a network namespace of
// their own (support/netns.h): real router-mode llama-servers of the pinned
// build, reached over veth pairs as on other machines. Skipped, saying why,
// where namespaces cannot be made (no root, no iproute2).
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "support/calm_client.h"
#include "support/netns.h"
#include "support/node_processes.h"
#include "support/process.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;
using testing::NetNamespace;
using testing::RouterNodeProcess;

// Two namespaces, a router-mode node in each on port 8080 (each namespace
// has its own ports), and calm over both with room for one model per node.
class NodesInNamespaces : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto why = NetNamespace::unavailable()) GTEST_SKIP() << *why;
    for (int i = 0; i < 2; ++i) {
      spaces_.push_back(std::make_unique<NetNamespace>(i));
      nodes_.push_back(std::make_unique<RouterNodeProcess>(
          testing::NodePlace{spaces_[i]->prefix(), spaces_[i]->address(), 8080}));
      ASSERT_TRUE(nodes_[i]->healthy()) << "node " << i << " at " << nodes_[i]->url();
    }
    std::string yaml = "nodes:\n";
    for (int i = 0; i < 2; ++i) {
      yaml += "  - id: n" + std::to_string(i + 1) + "\n    url: " + nodes_[i]->url() +
              "\n    budget: 1MiB\n    connect_timeout_s: 1\n    load_timeout_s: 60\n";
    }
    for (const char* model : {"chat", "plain"}) {
      yaml += std::string(yaml.find("models:") == std::string::npos ? "models:\n" : "") +
              "  - id: " + model + "\n    nodes: [n1, n2]\n    upstream_model: " +
              (std::string(model) == "chat" ? "tiny-chatml" : "tiny-plain") +
              "\n    bytes: 800KB\n    read_timeout_s: 60\n";
    }
    calm_ = std::make_unique<CalmServer>(yaml);
  }
  void TearDown() override {
    calm_.reset();
    nodes_.clear();  // the processes end before their namespaces go
    spaces_.clear();
  }

  // A greedy completion's status (see nodes_test.cpp on the prompts).
  int complete(const std::string& model) {
    const json body = {{"model", model},
                       {"prompt", model == "chat" ? "x" : "hello"},
                       {"max_tokens", 4},
                       {"temperature", 0}};
    const auto res = calm_->client().Post("/v1/completions", body.dump(), "application/json");
    if (!res) return -1;
    EXPECT_EQ(res->status, 200) << res->body;
    return res->status;
  }

  std::vector<std::unique_ptr<NetNamespace>> spaces_;
  std::vector<std::unique_ptr<RouterNodeProcess>> nodes_;
  std::unique_ptr<CalmServer> calm_;
};

TEST_F(NodesInNamespaces, EachModelIsLoadedOnANodeWithRoomAcrossTheNetwork) {
  EXPECT_EQ(complete("chat"), 200);
  EXPECT_EQ(nodes_[0]->loaded(), std::set<std::string>{"tiny-chatml"});
  EXPECT_EQ(complete("plain"), 200);
  EXPECT_EQ(nodes_[1]->loaded(), std::set<std::string>{"tiny-plain"}) << "n1 was full";
  EXPECT_EQ(nodes_[0]->loaded(), std::set<std::string>{"tiny-chatml"});
}

TEST_F(NodesInNamespaces, ANodeCutOffTheNetworkIsLeftOutUntilItIsReachableAgain) {
  EXPECT_EQ(complete("chat"), 200);
  ASSERT_EQ(nodes_[0]->loaded(), std::set<std::string>{"tiny-chatml"});
  spaces_[0]->cut();  // no reset, no answer: as a machine gone from the network
  // The request that finds n1 unreachable is placed again, on n2.
  EXPECT_EQ(complete("chat"), 200) << calm_->log();
  EXPECT_EQ(nodes_[1]->loaded(), std::set<std::string>{"tiny-chatml"});
  ASSERT_TRUE(testing::wait_state(
      *calm_, [](const json& s) { return s["placement"]["nodes"]["n1"]["healthy"] == false; }));
  const auto health = calm_->client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(json::parse(health->body)["status"], "degraded") << health->body;

  spaces_[0]->mend();
  ASSERT_TRUE(testing::wait_state(*calm_, [](const json& s) {
    return s["placement"]["nodes"]["n1"]["healthy"] == true;
  })) << calm_->log();
  EXPECT_EQ(complete("plain"), 200);
}

}  // namespace
}  // namespace calm
