#include "server/node_views.h"

#include <string>
#include <vector>

namespace calm {

using nlohmann::json;

json nodes_health_json(const NodeFleet& nodes) {
  json out = json::object();
  const std::vector<std::string> down = nodes.health_details();
  for (size_t i = 0; i < nodes.node_count(); ++i) {
    out[nodes.node_config(i).id] = down[i].empty() ? "ok" : "unavailable: " + down[i];
  }
  return out;
}

bool some_node_down(const NodeFleet& nodes) {
  for (const std::string& detail : nodes.health_details()) {
    if (!detail.empty()) return true;
  }
  return false;
}

json placement_state_json(const NodeFleet& nodes) {
  const Placement::Stats stats = nodes.placement().stats();
  const std::vector<std::string> down = nodes.health_details();
  json per_node = json::object();
  for (size_t i = 0; i < stats.nodes.size(); ++i) {
    const Placement::NodeStats& n = stats.nodes[i];
    const NodeConfig& config = nodes.node_config(i);
    json models = json::object();
    for (const auto& held : n.resident) {
      models[held.id] = {
          {"state", held.state}, {"bytes", held.bytes}, {"in_flight", held.in_flight}};
    }
    json node = {{"kind", config.kind},
                 {"url", config.url},
                 {"api_key", !config.api_key.empty()},
                 {"healthy", down[i].empty()},
                 {"budget_bytes", n.budget_bytes},
                 {"used_bytes", n.used_bytes},
                 {"max_queue", n.max_queue},
                 {"queued", n.queued},
                 {"in_flight", n.in_flight},
                 {"running", n.running},
                 {"waiting", n.waiting},
                 {"servable", n.servable},
                 {"loads", n.loads},
                 {"evictions", n.evictions},
                 {"models", models}};
    if (!down[i].empty()) node["detail"] = down[i];
    per_node[n.id] = node;
  }
  json per_model = json::object();
  for (const Placement::Spread& m : nodes.placement().spread()) {
    per_model[m.model] = {{"replicas", m.replicas}, {"held", m.held}, {"nodes", m.nodes}};
  }
  return {{"eviction", stats.eviction},
          {"placed_on_holder", stats.placed_on_holder},
          {"placed_by_load", stats.placed_by_load},
          {"refused", stats.refused},
          {"nodes", per_node},
          {"models", per_model}};
}

namespace {

// One gauge row per node, its value read by `value` from one reading.
using NodeValue = double (*)(const Placement::NodeStats&);

void add_per_node(MetricsRegistry& registry, const NodeFleet& nodes, const std::string& name,
                  const std::string& help, NodeValue value) {
  registry.gauge_callback(name, help, {"node"}, [&nodes, value] {
    MetricsRegistry::Samples rows;
    for (const auto& n : nodes.placement().stats().nodes) rows.push_back({{n.id}, value(n)});
    return rows;
  });
}

}  // namespace

void add_node_gauges(MetricsRegistry& registry, const NodeFleet& nodes) {
  registry.gauge_callback(
      "calm_node_up", "1 when the node answers its health check, else 0.", {"node"}, [&nodes] {
        MetricsRegistry::Samples rows;
        const std::vector<std::string> down = nodes.health_details();
        for (size_t i = 0; i < nodes.node_count(); ++i) {
          rows.push_back({{nodes.node_config(i).id}, down[i].empty() ? 1.0 : 0.0});
        }
        return rows;
      });
  add_per_node(registry, nodes, "calm_node_budget_bytes",
               "The node's memory budget for models (0: no limit).",
               [](const Placement::NodeStats& n) { return static_cast<double>(n.budget_bytes); });
  add_per_node(registry, nodes, "calm_node_used_bytes",
               "Bytes charged on the node now (resident and loading models).",
               [](const Placement::NodeStats& n) { return static_cast<double>(n.used_bytes); });
  add_per_node(registry, nodes, "calm_node_queued_requests",
               "The node's queue: max(calm's requests on it, its scraped running + waiting).",
               [](const Placement::NodeStats& n) { return static_cast<double>(n.queued); });
  add_per_node(registry, nodes, "calm_node_in_flight", "calm's requests placed on the node now.",
               [](const Placement::NodeStats& n) { return static_cast<double>(n.in_flight); });
  registry.gauge_callback("calm_model_replicas",
                          "Replicas planned for each model served by nodes (the MAPE-K loop's).",
                          {"model"}, [&nodes] {
                            MetricsRegistry::Samples rows;
                            for (const auto& m : nodes.placement().spread()) {
                              rows.push_back({{m.model}, static_cast<double>(m.replicas)});
                            }
                            return rows;
                          });
  registry.gauge_callback("calm_node_resident_bytes",
                          "Bytes charged to each model resident or loading on each node.",
                          {"node", "model"}, [&nodes] {
                            MetricsRegistry::Samples rows;
                            for (const auto& n : nodes.placement().stats().nodes) {
                              for (const auto& held : n.resident) {
                                rows.push_back({{n.id, held.id}, static_cast<double>(held.bytes)});
                              }
                            }
                            return rows;
                          });
}

}  // namespace calm
