// What the endpoints show of the nodes (nodes/node_fleet.h): one reading of
// the fleet's placement and health, put in the shapes of /health,
// /v1/calm/state and /metrics. No secret is shown: a node's api_key never
// appears, only whether it has one.
//
//   /health           "nodes": {ID: "ok" | "unavailable: why"}
//   /v1/calm/state    "placement": the decisions so far, and per node its
//                     kind, URL, health, budget and bytes charged, queue
//                     (calm's in flight, the scrape's running and waiting),
//                     loads, evictions and the models resident or loading
//   /metrics          calm_node_up{node}, calm_node_budget_bytes{node},
//                     calm_node_used_bytes{node},
//                     calm_node_resident_bytes{node,model},
//                     calm_node_queued_requests{node}, calm_node_in_flight{node},
//                     calm_node_loads_total{node}, calm_node_evictions_total{node},
//                     calm_placements_total{decision="holder"|"load"|"refused"},
//                     calm_model_replicas{model}
//
// Thread-safe: each call reads the fleet once (NodeFleet is thread-safe).
#pragma once

#include <nlohmann/json.hpp>

#include "metrics/prometheus.h"
#include "nodes/node_fleet.h"

namespace calm {

// A node's health word for /health: "ok" or "unavailable: why".
nlohmann::json nodes_health_json(const NodeFleet& nodes);
// True when some node is down (for /health's "degraded").
bool some_node_down(const NodeFleet& nodes);

nlohmann::json placement_state_json(const NodeFleet& nodes);

// Registers the gauges above on `registry`; the nodes must outlive it. The
// counters are ServerMetrics' (server/server_metrics.h), which brings them up
// to the placement's figures at each scrape.
void add_node_gauges(MetricsRegistry& registry, const NodeFleet& nodes);

}  // namespace calm
