// Which model each request of a suite names, per system route (see
// suite_config.h). Kept apart from the runner so that the assignment, the
// part that makes oracle and random baselines what they claim to be, can be
// tested without a server.
//
// random is deterministic: request i's model depends only on the seed, i and
// the set of domain models, never on which system is run first or on thread
// timing; the same seed gives two runs the same assignment.
//
// Free functions over values: safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/suite_config.h"
#include "bench/workload.h"

namespace calm {

// The model request `index` sends under `route`. Throws std::invalid_argument
// for oracle when the request's domain is not in `domains`, and for oracle or
// random when `domains` is empty.
std::string route_model(const SuiteRoute& route, const WorkloadRequest& request, size_t index,
                        const std::map<std::string, std::string>& domains, uint64_t seed);

// The workload with every request's model set by route_model (index = the
// position in the workload). Throws like route_model, naming the request.
std::vector<WorkloadRequest> assign_routes(const std::vector<WorkloadRequest>& workload,
                                           const SuiteRoute& route,
                                           const std::map<std::string, std::string>& domains,
                                           uint64_t seed);

}  // namespace calm
