// The names the fleet file accepts for the cache's eviction policy and the
// scheduler's queue policy. They live here, at the bottom, so the fleet
// file's parser checks them without reaching up into cache/ or scheduler/;
// make_eviction_policy (cache/eviction_policy.h) and make_queue_policy
// (scheduler/queue_policy.h) make one policy for each of these names.
#pragma once

#include <string>
#include <vector>

namespace calm {

// {"lru", "lfu", "gdsf"}. Thread-safe.
const std::vector<std::string>& eviction_policy_names();
// {"fifo", "stcf", "swap-aware"}. Thread-safe.
const std::vector<std::string>& queue_policy_names();

}  // namespace calm
