#include "app/fleet_reloader.h"

#include <spdlog/spdlog.h>

#include "config/fleet_config.h"
#include "router/router_factory.h"

namespace calm {

std::vector<Scheduler::ModelSlots> scheduler_slots(const FleetConfig& config) {
  std::vector<Scheduler::ModelSlots> slots;
  for (const auto& m : config.models)
    slots.push_back({m.id, m.parallel, m.max_in_flight, m.is_local()});
  return slots;
}

std::string placed_layout(const FleetConfig& config) {
  std::string layout;
  for (const NodeConfig& n : config.nodes) {
    layout += "node " + n.id + " " + n.kind + " " + n.url + " " + std::to_string(n.budget_bytes) +
              " " + n.api_key + " " + std::to_string(n.max_queue) + " " +
              std::to_string(n.connect_timeout.count()) + " " +
              std::to_string(n.load_timeout.count()) + "\n";
  }
  for (const ModelConfig& m : config.models) {
    if (m.backend != ModelConfig::Backend::kNodes) continue;
    layout += "model " + m.id + " " + m.upstream_model + " " + std::to_string(m.estimated_bytes);
    for (const std::string& node : m.nodes) layout += " " + node;
    layout += "\n";
  }
  return layout;
}

nlohmann::json FleetReloader::reload() {
  std::lock_guard lock(mutex_);
  const FleetConfig config = load_fleet_config(path_);
  if (placed_layout(config) != auth_.placed_layout) {
    throw ConfigError(path_ +
                      ": nodes: the nodes and the models they serve are read at start; "
                      "restart calm serve to change them");
  }
  if (auth_.keys) {
    if (const auto refusal = exposure_refusal(auth_.host, config.auth, auth_.insecure)) {
      throw ConfigError(path_ + ": auth.keys: " + *refusal);
    }
  }
  // Build the new router before touching the registry, so a bad embeddings
  // file leaves everything as it was.
  std::shared_ptr<SemanticRouter> router;
  if (slot_ && config.router) {
    const auto old = slot_->get();
    router = make_semantic_router(config, old);
    // The weights the MAPE-K loop chose survive a reload that leaves the
    // configured ones as they were.
    const PolicySettings& was = old->settings().policy;
    const PolicySettings& now = router->settings().policy;
    if (was.policy == now.policy && was.lambda == now.lambda &&
        was.lambda_cache == now.lambda_cache && was.correlation_aware == now.correlation_aware) {
      router->set_policy(old->policy());
    }
  }
  if (slot_ && !config.router)
    spdlog::warn("reload: the router section is gone; routing stays on until a restart");
  if (!slot_ && config.router)
    spdlog::warn("reload: a router section was added; restart to turn routing on");

  // First what can fail: the cache's estimates (a model that can never fit
  // is refused here) and the next fleet, built off to the side (new remotes
  // checked). Then the registry, the model cache and the scheduler change in
  // one step, with no admission in between (registry.h). A removed model
  // stays in the cache and the scheduler until its last request ends.
  const ResidentSet::Plan cache_plan = resident_.plan(config);
  const Registry::Staged staged = registry_.stage(config);
  const Registry::ReloadReport& report = staged.report;
  const uint64_t version = registry_.publish(staged, [&] {
    resident_.prepare(cache_plan);
    scheduler_.update_models(scheduler_slots(config));
    resident_.apply(cache_plan, report);
  });
  resident_.preload_new(report);  // loads: outside the step, they take time
  if (router) slot_->set(router);
  if (auth_.keys) auth_.keys->update(config.auth);
  spdlog::info("reloaded {} (fleet version {}): {} added, {} replaced, {} updated, {} removed",
               path_, version, report.added.size(), report.replaced.size(), report.updated.size(),
               report.removed.size());
  return {{"file", path_},
          {"fleet_version", version},
          {"added", report.added},
          {"replaced", report.replaced},
          {"updated", report.updated},
          {"removed", report.removed},
          {"unchanged", report.unchanged}};
}

}  // namespace calm
