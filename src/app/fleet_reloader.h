// Reloading the fleet file while serving (SIGHUP or POST /v1/calm/reload).
//
// The file is read and validated first; a broken file changes nothing and
// its error is returned. Then the registry applies it (registry.h says how
// requests in flight are kept) and, when routing is on, a new semantic
// router replaces the old one with the same QoS windows. The server section
// (host, port, limits) and switching routing on or off need a restart.
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "registry/registry.h"
#include "router/semantic_router.h"

namespace calm {

class FleetReloader {
 public:
  FleetReloader(std::string path, Registry& registry, std::shared_ptr<SemanticRouterSlot> slot)
      : path_(std::move(path)), registry_(registry), slot_(std::move(slot)) {}

  // Thread-safe (reloads run one at a time). Returns what changed; throws
  // ConfigError (or std::runtime_error for the embeddings) and then changes nothing.
  nlohmann::json reload();

 private:
  std::mutex mutex_;
  std::string path_;
  Registry& registry_;
  std::shared_ptr<SemanticRouterSlot> slot_;  // null when routing is off
};

}  // namespace calm
