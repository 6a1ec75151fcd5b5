#include "router/router.h"

namespace calm {

std::optional<RouteDecision> ModelNameRouter::route(const std::string& requested_model,
                                                    const GenerationRequest& /*request*/) {
  Registry::EntryPtr entry = registry_.find(requested_model);
  if (entry == nullptr) return std::nullopt;
  auto fallbacks = listed_fallbacks(registry_, *entry);
  return RouteDecision{std::move(entry), "named in the request", std::move(fallbacks)};
}

std::vector<Registry::EntryPtr> listed_fallbacks(const Registry& registry,
                                                 const Registry::Entry& entry) {
  std::vector<Registry::EntryPtr> out;
  for (const std::string& id : entry.config.fallbacks) {
    if (auto fallback = registry.find(id)) out.push_back(std::move(fallback));
  }
  return out;
}

}  // namespace calm
