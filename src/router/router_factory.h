// Builds the semantic router a fleet file asks for.
#pragma once

#include <memory>

#include "config/fleet_config.h"
#include "router/semantic_router.h"

namespace calm {

// Loads the embeddings and embeds every description and example. Throws
// std::runtime_error naming the embeddings file when it is missing or corrupt.
// Requires config.router.
std::shared_ptr<SemanticRouter> make_semantic_router(const FleetConfig& config);

}  // namespace calm
