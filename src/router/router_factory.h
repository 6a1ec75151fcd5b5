// Builds the semantic router a fleet file asks for.
#pragma once

#include <memory>

#include "config/fleet_config.h"
#include "router/semantic_router.h"

namespace calm {

// Loads the embeddings and embeds every description and example. Throws
// std::runtime_error naming the embeddings file when it is missing or corrupt.
// Requires config.router. On a reload, pass the router in use: its QoS
// windows carry over, and so do its embeddings when the file is the same.
std::shared_ptr<SemanticRouter> make_semantic_router(
    const FleetConfig& config, const std::shared_ptr<SemanticRouter>& previous = nullptr);

}  // namespace calm
