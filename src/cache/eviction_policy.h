// Eviction policies for the model cache: which resident models to unload so
// that another one fits in the memory budget.
//
// - "lru": least recently accessed first. The paper's default. Recency is a
//   logical clock (one tick per notification), not wall time, so the order is
//   deterministic.
// - "lfu": fewest accesses first; ties go to the least recently accessed. The
//   access count SURVIVES eviction (this is "perfect" LFU, not the classic
//   in-cache LFU that forgets). Why: a fleet is a small, known set of models, so
//   the history is bounded by the fleet's size; and forgetting would make a
//   popular model that was just reloaded the cheapest victim (count 1), so the
//   cache would thrash between two busy models, the failure this cache exists
//   to avoid. The price is that a model popular long ago keeps its rank; the
//   cost-aware policy below ages such models out.
// - "gdsf": GreedyDual-Size-Frequency, cost-aware. Each model has a priority
//       H(m) = L + frequency(m) * load_cost(m) / bytes(m)
//   and the lowest H is evicted first. L, the inflation value, rises to the H
//   of each evicted model, and H is recomputed from the current L on every
//   access, so models that stop being used fall behind newly used ones and age
//   out. The frequency resets when a model is evicted. Why it exists: models
//   differ in size and load time by orders of magnitude. Reloading a big model
//   costs seconds; unloading a large model that is cheap to reload for its size
//   and rarely used frees the most memory for the least future loading, which
//   LRU and LFU, blind to size and cost, cannot see.
//
// Every policy evicts only as many models as needed, greedily in its own
// order, and never chooses a pinned model or one with requests in flight.
//
// Not thread-safe: the cache calls a policy while holding its own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/policy_names.h"  // eviction_policy_names()

namespace calm {

// What the cache knows of one resident model when it must make room.
struct ResidentModel {
  std::string id;
  uint64_t bytes = 0;       // measured resident size
  double load_cost_ms = 0;  // what loading it took (or an estimate)
  bool pinned = false;      // never evicted
  int in_flight = 0;        // requests running: never evicted while > 0
};

// Chooses which resident models to unload so that a model of `need` bytes fits.
// Implementations keep their own bookkeeping from the notifications. Not
// thread-safe (the cache holds its lock).
class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual std::string name() const = 0;  // "lru", "lfu", "gdsf"
  virtual void on_load(const std::string& id, uint64_t bytes, double load_cost_ms) = 0;
  virtual void on_access(const std::string& id) = 0;  // a request used it (hit or right after load)
  virtual void on_evict(const std::string& id) = 0;
  // Victims, in eviction order, such that used - sum(victim bytes) + need <= budget, where used is
  // the sum of resident bytes; only unpinned models with in_flight == 0 may be chosen. std::nullopt
  // when even evicting every evictable model would not make room (the caller then waits or fails
  // clearly). Optional max_resident (0 = no limit) also bounds the count:
  // resident.size() - victims + 1 <= max_resident. An empty vector means it already fits.
  //
  // `resident` is authoritative: its bytes and load_cost_ms (measured, possibly corrected since
  // on_load) are the ones used. A resident model the policy was never told about ranks as never
  // accessed, i.e. first in line. Choosing does not evict: the caller calls on_evict for each
  // victim it really unloads.
  virtual std::optional<std::vector<std::string>> choose_victims(
      const std::vector<ResidentModel>& resident, uint64_t need, uint64_t budget,
      size_t max_resident) = 0;
};

// nullptr for an unknown name.
std::unique_ptr<EvictionPolicy> make_eviction_policy(std::string_view name);

}  // namespace calm
