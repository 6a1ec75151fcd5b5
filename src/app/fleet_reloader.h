// Reloading the fleet file while serving (SIGHUP or POST /v1/calm/reload).
//
// The file is read and validated first; a broken file changes nothing and
// its error is returned. Then the registry stages the next fleet snapshot
// and publishes it in one step together with the model cache's and the
// scheduler's new model sets (registry.h says how requests in flight are
// kept); new models marked preload load after that step. When routing is on,
// a new semantic router replaces the old one with the same QoS windows. The server, cache and
// scheduler sections (host, port, limits, budget, policies) and switching routing on or off need a
// restart.
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "cache/resident_set.h"
#include "registry/registry.h"
#include "router/semantic_router.h"
#include "scheduler/scheduler.h"

namespace calm {

class FleetReloader {
 public:
  FleetReloader(std::string path, Registry& registry, ResidentSet& resident, Scheduler& scheduler,
                std::shared_ptr<SemanticRouterSlot> slot)
      : path_(std::move(path)),
        registry_(registry),
        resident_(resident),
        scheduler_(scheduler),
        slot_(std::move(slot)) {}

  // Thread-safe (reloads run one at a time). Returns what changed; throws
  // ConfigError (or std::runtime_error for the embeddings) and then changes nothing.
  nlohmann::json reload();

 private:
  std::mutex mutex_;
  std::string path_;
  Registry& registry_;
  ResidentSet& resident_;
  Scheduler& scheduler_;
  std::shared_ptr<SemanticRouterSlot> slot_;  // null when routing is off
};

// The scheduler's view of the fleet's local models: slots and limits.
std::vector<Scheduler::ModelSlots> scheduler_slots(const FleetConfig& config);

}  // namespace calm
