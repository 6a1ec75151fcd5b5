#include "router/router.h"

namespace calm {

std::optional<RouteDecision> ModelNameRouter::route(const std::string& requested_model,
                                                    const GenerationRequest& /*request*/) {
  Registry::EntryPtr entry = registry_.find(requested_model);
  if (entry == nullptr) return std::nullopt;
  return RouteDecision{entry, "named in the request"};
}

}  // namespace calm
