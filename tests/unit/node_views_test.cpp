// What the endpoints show of the nodes (server/node_views.h), read from a
// NodeFleet that is never started: no node is asked anything, so these
// figures come from the fleet file and calm's own bookkeeping only.
#include "server/node_views.h"

#include <gtest/gtest.h>

#include <string>

#include "config/fleet_config.h"

namespace calm {
namespace {

using nlohmann::json;

FleetConfig two_nodes() {
  return parse_fleet_config(
      "nodes:\n"
      "  - id: box-a\n    url: http://127.0.0.1:1\n    budget: 1GiB\n    api_key: sk-secret-node\n"
      "    max_queue: 8\n"
      "  - id: box-b\n    url: http://127.0.0.1:2\n    budget: 500MB\n"
      "models:\n"
      "  - id: m\n    nodes: [box-a, box-b]\n    upstream_model: tiny\n    bytes: 100MB\n",
      "fleet.yaml", "/tmp");
}

TEST(NodeViews, EveryNodeIsOkInHealthUntilOneIsFoundFailing) {
  NodeFleet nodes(two_nodes());
  EXPECT_EQ(nodes_health_json(nodes), (json{{"box-a", "ok"}, {"box-b", "ok"}}));
  EXPECT_FALSE(some_node_down(nodes));
  nodes.report_failure(1, "connection refused");
  EXPECT_EQ(nodes_health_json(nodes)["box-b"], "unavailable: connection refused");
  EXPECT_EQ(nodes_health_json(nodes)["box-a"], "ok");
  EXPECT_TRUE(some_node_down(nodes));
}

TEST(NodeViews, StateShowsEachNodesBudgetQueueAndHealthButNeverItsKey) {
  NodeFleet nodes(two_nodes());
  nodes.report_failure(1, "connection refused");
  const json state = placement_state_json(nodes);
  EXPECT_EQ(state["eviction"], "lru");
  EXPECT_EQ(state["placed_by_load"], 0);
  const json& a = state["nodes"]["box-a"];
  EXPECT_EQ(a["kind"], "llama-server-router");
  EXPECT_EQ(a["url"], "http://127.0.0.1:1");
  EXPECT_EQ(a["healthy"], true);
  EXPECT_EQ(a["budget_bytes"], uint64_t{1} << 30);
  EXPECT_EQ(a["used_bytes"], 0);
  EXPECT_EQ(a["max_queue"], 8);
  EXPECT_EQ(a["servable"], 1);
  EXPECT_EQ(a["models"], json::object());
  EXPECT_EQ(a["api_key"], true) << "whether it has one, never the key";
  EXPECT_FALSE(a.contains("detail"));
  EXPECT_EQ(state["nodes"]["box-b"]["healthy"], false);
  EXPECT_EQ(state["nodes"]["box-b"]["detail"], "connection refused");
  EXPECT_EQ(state["nodes"]["box-b"]["api_key"], false);
  EXPECT_EQ(state.dump().find("sk-secret-node"), std::string::npos) << state.dump();
  EXPECT_EQ(state["models"]["m"], (json{{"replicas", 1}, {"held", 0}, {"nodes", 1}}))
      << "box-b is down";
}

TEST(NodeViews, MetricsHaveOneRowPerNodeWithItsUpBudgetAndQueue) {
  NodeFleet nodes(two_nodes());
  nodes.report_failure(1, "connection refused");
  MetricsRegistry registry;
  add_node_gauges(registry, nodes);
  const std::string text = registry.render();
  for (const char* row :
       {"calm_node_up{node=\"box-a\"} 1", "calm_node_up{node=\"box-b\"} 0",
        "calm_node_budget_bytes{node=\"box-a\"} 1073741824",
        "calm_node_budget_bytes{node=\"box-b\"} 500000000",
        "calm_node_used_bytes{node=\"box-a\"} 0", "calm_node_queued_requests{node=\"box-a\"} 0",
        "calm_node_in_flight{node=\"box-b\"} 0"}) {
    EXPECT_NE(text.find(row), std::string::npos) << row << "\n" << text;
  }
  EXPECT_EQ(text.find("calm_node_resident_bytes{"), std::string::npos) << "nothing is resident";
}

}  // namespace
}  // namespace calm
