#include "mapek/planner.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace calm {
namespace {

std::string fmt(double v) {
  std::ostringstream out;
  out.precision(3);
  out << v;
  return out.str();
}

const GoalCheck* find(const Analysis& a, const std::string& goal) {
  for (const auto& g : a.goals) {
    if (g.goal == goal) return &g;
  }
  return nullptr;
}

}  // namespace

Plan Planner::push(RoutingPolicy toward, const GoalCheck& missed,
                   const PolicySettings& current) const {
  Plan p;
  p.next = current;
  if (current.policy != toward) {
    p.next.policy = toward;
    p.next.lambda = goals_.lambda_step;
  } else {
    p.next.lambda = std::min(current.lambda + goals_.lambda_step, goals_.lambda_max);
  }
  p.reason = missed.goal + " " + fmt(missed.value) + " misses its goal " + fmt(missed.target) +
             ": route " + policy_name(toward) + " with lambda " + fmt(p.next.lambda);
  p.figures = {{"goal", missed.goal}, {"value", missed.value}, {"target", missed.target}};
  return p;
}

std::optional<Plan> Planner::relax(const std::string& why, const PolicySettings& current) const {
  if (current.policy == base_.policy && current.lambda == base_.lambda) return std::nullopt;
  Plan p;
  p.next = current;
  if (current.policy == base_.policy) {
    // Step toward the configured weight, from either side.
    const double step = goals_.lambda_step;
    p.next.lambda = current.lambda > base_.lambda ? std::max(base_.lambda, current.lambda - step)
                                                  : std::min(base_.lambda, current.lambda + step);
  } else if (current.lambda > goals_.lambda_step) {
    p.next.lambda = current.lambda - goals_.lambda_step;
  } else {
    p.next = base_;  // the last step back: the configured policy again
  }
  p.reason =
      why + ": relax to " + policy_name(p.next.policy) + " with lambda " + fmt(p.next.lambda);
  return p;
}

std::optional<Plan> Planner::plan(const Analysis& a, const PolicySettings& current) {
  if (!a.enough_data) return std::nullopt;
  const bool any_missed =
      std::any_of(a.goals.begin(), a.goals.end(), [](const GoalCheck& g) { return !g.met; });
  if (any_missed) comfortable_streak_ = 0;
  const GoalCheck* latency = find(a, "latency_p95_ms");
  const GoalCheck* energy = find(a, "energy_per_request_j");
  const GoalCheck* confidence = find(a, "confidence_min");

  if (confidence && !confidence->met) {
    auto p =
        relax("confidence " + fmt(confidence->value) + " below its goal " + fmt(confidence->target),
              current);
    if (p) {
      p->figures = {
          {"goal", confidence->goal}, {"value", confidence->value}, {"target", confidence->target}};
    }
    return p;
  }
  if (latency && !latency->met) {
    if (current.policy == RoutingPolicy::kProLatency && current.lambda >= goals_.lambda_max) {
      return std::nullopt;  // saturated: nothing more this lever can do
    }
    return push(RoutingPolicy::kProLatency, *latency, current);
  }
  if (energy && !energy->met) {
    if (current.policy == RoutingPolicy::kProEnergy && current.lambda >= goals_.lambda_max) {
      return std::nullopt;
    }
    return push(RoutingPolicy::kProEnergy, *energy, current);
  }
  const bool comfortable =
      std::all_of(a.goals.begin(), a.goals.end(), [](const GoalCheck& g) { return g.comfortably; });
  comfortable_streak_ = comfortable ? comfortable_streak_ + 1 : 0;
  if (!a.goals.empty() && comfortable && comfortable_streak_ >= goals_.relax_after) {
    comfortable_streak_ = 0;
    std::string why = "every goal met with margin";
    if (latency)
      why = "p95 latency " + fmt(latency->value) + " ms well within " + fmt(latency->target);
    auto p = relax(why, current);
    if (p) {
      p->figures = nlohmann::json::array();
      for (const auto& g : a.goals) {
        p->figures.push_back({{"goal", g.goal}, {"value", g.value}, {"target", g.target}});
      }
    }
    return p;
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> Planner::plan_max_wait(
    const Analysis& a, std::chrono::milliseconds current,
    std::chrono::milliseconds configured) const {
  if (!a.enough_data || a.goals.empty()) return std::nullopt;
  const GoalCheck* latency = find(a, "latency_p95_ms");
  std::chrono::milliseconds next = current;
  if (latency && !latency->met) {
    next = std::max(configured / 8, current / 2);
  } else if (std::all_of(a.goals.begin(), a.goals.end(),
                         [](const GoalCheck& g) { return g.comfortably; })) {
    next = std::min(configured, current * 2);
  }
  if (next == current) return std::nullopt;
  return next;
}

std::optional<bool> Planner::plan_prefetch(const Analysis& a, bool current, bool configured,
                                           double miss_rate) const {
  if (!a.enough_data || a.goals.empty()) return std::nullopt;
  const GoalCheck* latency = find(a, "latency_p95_ms");
  const GoalCheck* energy = find(a, "energy_per_request_j");
  bool next = current;
  if (energy && !energy->met) {
    next = false;
  } else if (latency && !latency->met) {
    if (miss_rate > 0.2) next = true;
  } else if (std::all_of(a.goals.begin(), a.goals.end(),
                         [](const GoalCheck& g) { return g.comfortably; })) {
    next = configured;
  }
  if (next == current) return std::nullopt;
  return next;
}

std::vector<ReplicaPlan> Planner::plan_replicas(const Analysis& a,
                                                const std::vector<ReplicaView>& views) {
  std::vector<ReplicaPlan> plans;
  const GoalCheck* latency = a.enough_data ? find(a, "latency_p95_ms") : nullptr;
  for (const ReplicaView& v : views) {
    const size_t before = last_demand_.count(v.model) ? last_demand_[v.model] : 0;
    last_demand_[v.model] = v.demand;
    int& idle = idle_streak_[v.model];
    idle = v.demand == 0 ? idle + 1 : 0;
    if (latency && !latency->met && v.demand > v.held && v.demand >= before &&
        v.held >= v.replicas && v.replicas < v.nodes) {
      plans.push_back({v.model, v.replicas + 1,
                       "latency goal missed (p95 " + std::to_string(int(latency->value)) +
                           " ms > " + std::to_string(int(latency->target)) + " ms) and '" +
                           v.model + "' has " + std::to_string(v.demand) + " requests on " +
                           std::to_string(v.held) + " node(s): one more replica"});
    } else if (v.replicas > 1 && idle >= kIdleTicks) {
      plans.push_back({v.model, v.replicas - 1,
                       "'" + v.model + "' has had no request for " + std::to_string(idle) +
                           " analyses: one replica fewer"});
      idle = 0;
    }
  }
  return plans;
}

}  // namespace calm
