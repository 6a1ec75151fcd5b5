// Plan: a bounded feedback controller on the routing weights (the P of MAPE-K).
//
// The paper chose its lambdas by hand before each run. Here the loop moves
// them while serving, toward the goals:
//   - latency goal missed  → route pro-latency and raise lambda by one step
//                            (never above lambda_max);
//   - else energy missed   → the same with pro-energy;
//   - confidence missed    → step back toward the configured policy and
//                            lambda at once, giving quality (similarity) its
//                            weight back;
//   - every goal met with the relax margin to spare for `relax_after`
//     analyses in a row    → the same step back (the dwell keeps the loop from
//                            swinging back to a slow model the moment the
//                            fast one has made the figures look good);
//   - otherwise            → hold.
// One step per period, so a plan never overshoots by more than one step, and
// a goal that is just met is left alone (the margin is the hysteresis).
//
// The scheduler's lever, plan_max_wait(): swap-aware's aging bound trades
// loads (and their energy) for tail latency. While the latency goal is missed
// it is halved, down to an eighth of the configured bound; once every goal is
// comfortably met it doubles back, up to the configured bound.
//
// The cache's lever, plan_prefetch(): loading the model the trace predicts
// next hides load time from requests but may load models for nothing. It is
// turned on while the latency goal is missed and more than a fifth of the
// recent requests waited for a load; off while the energy goal is missed;
// back to the configured setting once every goal is comfortably met.
//
// The placement's lever, plan_replicas(): how many nodes each model served by
// nodes is spread over (placement/placement.h). One more while the latency
// goal is missed, the model has more requests (running + queued) than nodes
// holding it, that demand is not falling, every planned replica is already
// held, and a healthy node is left; one fewer once the model has had no
// request at all for `kIdleTicks` analyses in a row (never below 1).
//
// Not thread-safe: the loop's thread owns it.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "mapek/analyzer.h"
#include "router/scoring.h"

namespace calm {

struct Plan {
  PolicySettings next;
  std::string reason;      // one sentence, with the figures
  nlohmann::json figures;  // what triggered it
};

// One model on nodes, as plan_replicas() reads it.
struct ReplicaView {
  std::string model;
  uint32_t replicas = 1;  // planned now
  uint32_t held = 0;      // healthy nodes that hold it
  uint32_t nodes = 0;     // healthy nodes that could
  size_t demand = 0;      // its requests now: running + queued
};

struct ReplicaPlan {
  std::string model;
  uint32_t replicas = 1;  // the new count
  std::string reason;
};

class Planner {
 public:
  static constexpr int kIdleTicks = 3;

  Planner(PolicySettings base, Goals goals) : base_(base), goals_(std::move(goals)) {}

  // Not const: it counts the analyses in a row with every goal comfortably met.
  std::optional<Plan> plan(const Analysis& analysis, const PolicySettings& current);
  const PolicySettings& base() const { return base_; }

  // Whether prefetch should be on next period, if it should change.
  // miss_rate: the share of recent local requests that waited for a load.
  std::optional<bool> plan_prefetch(const Analysis& analysis, bool current, bool configured,
                                    double miss_rate) const;

  // The scheduler's max_wait for the next period, if it should change.
  // `configured` is the fleet file's. Const: reads only the analysis.
  // Replica counts for the next period, for the models whose count should
  // change (see the top). Not const: it remembers each model's demand and
  // idle streak.
  std::vector<ReplicaPlan> plan_replicas(const Analysis& analysis,
                                         const std::vector<ReplicaView>& views);

  std::optional<std::chrono::milliseconds> plan_max_wait(
      const Analysis& analysis, std::chrono::milliseconds current,
      std::chrono::milliseconds configured) const;

 private:
  Plan push(RoutingPolicy toward, const GoalCheck& missed, const PolicySettings& current) const;
  std::optional<Plan> relax(const std::string& why, const PolicySettings& current) const;

  const PolicySettings base_;
  const Goals goals_;
  int comfortable_streak_ = 0;
  std::map<std::string, size_t> last_demand_;  // per model, at the previous plan_replicas
  std::map<std::string, int> idle_streak_;     // per model: analyses in a row with no request
};

}  // namespace calm
