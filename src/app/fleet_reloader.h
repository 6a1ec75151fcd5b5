// Reloading the fleet file while serving (SIGHUP or POST /v1/calm/reload).
//
// The file is read and validated first; a broken file changes nothing and
// its error is returned. Then the registry stages the next fleet snapshot
// and publishes it in one step together with the model cache's and the
// scheduler's new model sets (registry.h says how requests in flight are
// kept); new models marked preload load after that step. When routing is
// on, a new semantic router replaces the old one with the same QoS windows.
// The API keys (auth:) are replaced last; a key that stays keeps its
// limits' counts. The server, cache and scheduler sections (host, port,
// limits, budget, policies) and switching routing on or off need a restart.
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/api_keys.h"
#include "cache/resident_set.h"
#include "registry/registry.h"
#include "router/semantic_router.h"
#include "scheduler/scheduler.h"

namespace calm {

// The API keys a reload replaces, and where the server listens: a reload
// that would leave a non-loopback address with no key is refused.
struct ReloadedKeys {
  ApiKeys* keys = nullptr;  // null: keys are not reloaded
  std::string host;
  bool insecure = false;
  // placed_layout() of the fleet calm started with: nodes are read at start.
  std::string placed_layout;
};

// The nodes and what the models served by nodes ask of them, as one string:
// a reload that changes it is refused (the placement is built at start).
std::string placed_layout(const FleetConfig& config);

class FleetReloader {
 public:
  FleetReloader(std::string path, Registry& registry, ResidentSet& resident, Scheduler& scheduler,
                std::shared_ptr<SemanticRouterSlot> slot, ReloadedKeys auth = {})
      : path_(std::move(path)),
        registry_(registry),
        resident_(resident),
        scheduler_(scheduler),
        slot_(std::move(slot)),
        auth_(std::move(auth)) {}

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
  const ReloadedKeys auth_;
};

// The scheduler's view of the fleet's local models: slots and limits.
std::vector<Scheduler::ModelSlots> scheduler_slots(const FleetConfig& config);

}  // namespace calm
