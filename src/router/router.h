// The router seam: which model answers a request.
//
// Today the request's `model` field decides (ModelNameRouter). The semantic,
// QoS-aware router of the paper plugs in here: it sees the request and the
// registry and returns its choice with the reason, so the HTTP layer never
// changes when the policy does.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engines/engine.h"
#include "registry/registry.h"

namespace calm {

struct RouteDecision {
  Registry::EntryPtr entry;  // never null in a returned decision; keeps the model alive
  std::string reason;        // one line, for logs and headers
  // Who answers, in order, if `entry`'s backend fails before the first token:
  // the model's own `fallbacks:`, or (routed requests, when it lists none)
  // the router's next candidates. Never holds `entry`.
  std::vector<Registry::EntryPtr> fallbacks;
};

// The entries of a model's `fallbacks:` that the registry holds, in order.
std::vector<Registry::EntryPtr> listed_fallbacks(const Registry& registry,
                                                 const Registry::Entry& entry);

class Router {
 public:
  virtual ~Router() = default;
  // Thread-safe. std::nullopt: no model can take this request (the caller answers 404).
  virtual std::optional<RouteDecision> route(const std::string& requested_model,
                                             const GenerationRequest& request) = 0;
  // Thread-safe. What a finished generation cost, for routers that learn from it.
  virtual void observe(const std::string& /*model_id*/, const GenerationResult& /*result*/) {}
};

// Sends each request to the model it names.
class ModelNameRouter : public Router {
 public:
  explicit ModelNameRouter(const Registry& registry) : registry_(registry) {}
  std::optional<RouteDecision> route(const std::string& requested_model,
                                     const GenerationRequest& request) override;

 private:
  const Registry& registry_;
};

}  // namespace calm
