// The MAPE-K loop planning replicas of a model served by nodes (Planner::
// plan_replicas, Placement::set_replicas and shed_replica), against real
// router-mode llama-servers: with the latency goal missed and more requests
// than nodes holding the model, the loop adds a replica and the next request
// loads it on the other node; once the model is idle, the loop removes one
// and a node unloads it. What each node has loaded is read from the node.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/calm_client.h"
#include "support/node_processes.h"
#include "support/process.h"

namespace calm {
namespace {

using nlohmann::json;
using testing::CalmServer;
using testing::RouterNodeProcess;

// A completion of `tokens` tokens for `m` (node-ascii: its answers always
// parse, however long); its status.
int complete(const CalmServer& calm, int tokens) {
  const json body = {{"model", "m"},
                     {"prompt", "x"},
                     {"max_tokens", tokens},
                     {"temperature", 0},
                     {"ignore_eos", true}};
  httplib::Client client("127.0.0.1", calm.port());
  client.set_read_timeout(120, 0);
  const auto res = client.Post("/v1/completions", body.dump(), "application/json");
  return res ? res->status : -1;
}

// Polls (bounded, 60 s) until the newest "replicas" adaptation says `count`.
bool saw_replicas(const CalmServer& calm, int count) {
  for (int i = 0; i < 1200; ++i) {
    const auto res = calm.client().Get("/v1/calm/adaptations");
    if (res && res->status == 200) {
      const json answer = json::parse(res->body);  // kept: the loop reads into it
      for (const json& a : answer["data"]) {       // newest first
        if (a["kind"] != "replicas") continue;
        if (a["after"]["replicas"] == count) return true;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(NodeReplicas, TheLoopAddsAReplicaUnderMissedLatencyAndRemovesItOnceIdle) {
  RouterNodeProcess n1({}, {"node-ascii.gguf"}), n2({}, {"node-ascii.gguf"});
  ASSERT_TRUE(n1.healthy() && n2.healthy());
  const std::string goals = testing::temp_path("goals.yaml");
  std::ofstream(goals) << "goals:\n  latency_p95_ms: 1\nwindow: 5\n";  // always missed
  CalmServer calm("loop:\n  period_s: 0.2\n  goals_file: " + goals +
                  "\n  energy_meter: cpu-time\nnodes:\n  - id: n1\n    url: " + n1.url() +
                  "\n    budget: 100MiB\n  - id: n2\n    url: " + n2.url() +
                  "\n    budget: 100MiB\nmodels:\n  - id: m\n    nodes: [n1, n2]\n"
                  "    upstream_model: node-ascii\n    bytes: 84MB\n    parallel: 8\n"
                  "    read_timeout_s: 120\n");
  for (int i = 0; i < 5; ++i) ASSERT_EQ(complete(calm, 2), 200);  // the goal's window
  const std::set<std::string> one_node = n1.loaded().empty() ? n2.loaded() : n1.loaded();
  EXPECT_EQ(one_node, std::set<std::string>{"node-ascii"});
  EXPECT_TRUE(n1.loaded().empty() || n2.loaded().empty()) << "one replica so far";

  // Eight long requests, more than the one node holding it (which answers
  // one at a time, -np 1, for seconds in all): the loop plans two replicas.
  std::vector<std::future<int>> load;
  for (int i = 0; i < 8; ++i) {
    load.push_back(std::async(std::launch::async, [&] { return complete(calm, 200); }));
  }
  ASSERT_TRUE(saw_replicas(calm, 2)) << calm.log();
  EXPECT_EQ(testing::state(calm)["placement"]["models"]["m"]["replicas"], 2);
  // While the holder is busy, the next request starts the replica.
  EXPECT_EQ(complete(calm, 2), 200);
  EXPECT_EQ(n1.loaded(), std::set<std::string>{"node-ascii"});
  EXPECT_EQ(n2.loaded(), std::set<std::string>{"node-ascii"});
  for (auto& f : load) EXPECT_EQ(f.get(), 200);

  // Idle: one replica fewer, unloaded from one of the nodes.
  ASSERT_TRUE(saw_replicas(calm, 1)) << calm.log();
  EXPECT_EQ(n1.loaded().size() + n2.loaded().size(), 1u);
  EXPECT_EQ(complete(calm, 2), 200);
}

}  // namespace
}  // namespace calm
