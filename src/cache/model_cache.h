// ModelCache: which models are resident, within a memory budget in bytes.
//
// Per model:
//
//   [unloaded] ──acquire──► [loading] ──loaded──► [resident] ──evict──► [unloading] ──► [unloaded]
//       ▲                       │                    │  ▲
//       └──── load failed ◄─────┘        acquire/release (in_flight)
//
// - acquire(id) returns a Lease once the model is resident; while any lease
//   is held the model is busy and is never evicted. Concurrent acquires of a
//   model that is loading wait for that one load (loads are coalesced).
// - Room is made by the eviction policy (eviction_policy.h) among resident,
//   unpinned, idle models. When every candidate is busy, acquire waits for a
//   release, up to its wait limit, and then fails with a clear error.
// - A model is charged its estimated bytes while it loads and its measured
//   bytes once loaded (the loader returns what loading really took); the
//   measurement replaces the estimate for the next load. If the measurement
//   overshoots, idle models are evicted to get back under the budget, and if
//   that is impossible the model is unloaded again and the acquire fails: the
//   budget is never exceeded once a load has settled.
// - A load that fails wakes every waiter with the error and leaves the model
//   unloaded: the next acquire tries again.
//
// Thread-safe. Loader and unloader run without the cache's lock held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/eviction_policy.h"

namespace calm {

class CacheError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ModelCache {
 public:
  struct Options {
    uint64_t budget_bytes = 0;  // required, > 0
    size_t max_resident = 0;    // 0: no count limit
    std::string eviction = "lru";
  };
  struct ModelSpec {
    std::string id;
    uint64_t estimated_bytes = 0;
    bool pinned = false;
  };
  // Loads a model and returns the bytes it really took; throws to fail.
  using Loader = std::function<uint64_t(const std::string& id)>;
  using Unloader = std::function<void(const std::string& id)>;

  // Throws CacheError for an unknown eviction policy, a zero budget, or a
  // model whose estimate alone exceeds the budget.
  ModelCache(Options options, std::vector<ModelSpec> models, Loader loader, Unloader unloader);
  ~ModelCache();

  // Marks one request in flight on a resident model; releasing it (the
  // destructor) lets the model be evicted again.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    const std::string& id() const { return id_; }
    bool was_hit() const { return hit_; }  // resident when asked

   private:
    friend class ModelCache;
    Lease(ModelCache* cache, std::string id, bool hit)
        : cache_(cache), id_(std::move(id)), hit_(hit) {}
    ModelCache* cache_ = nullptr;
    std::string id_;
    bool hit_ = false;
  };

  // Blocks until the model is resident (loading it, evicting others) or
  // wait_limit passes. Throws CacheError: unknown model, load failure, or no
  // room within wait_limit because every other model is busy or pinned.
  Lease acquire(const std::string& id, std::chrono::milliseconds wait_limit);

  struct ModelStats {
    std::string id;
    std::string state;   // "unloaded", "loading", "resident", "unloading"
    uint64_t bytes = 0;  // measured if it was ever loaded, else the estimate
    int in_flight = 0;
    bool pinned = false;
    uint64_t hits = 0, misses = 0, loads = 0, evictions = 0, load_failures = 0;
    double last_load_ms = 0;
  };
  struct Stats {
    uint64_t budget_bytes = 0;
    uint64_t used_bytes = 0;       // charged now (resident, loading, unloading)
    uint64_t peak_used_bytes = 0;  // highest settled charge seen
    std::vector<ModelStats> models;
  };
  Stats stats() const;

 private:
  enum class State { kUnloaded, kLoading, kResident, kUnloading };
  struct Model {
    ModelSpec spec;
    State state = State::kUnloaded;
    uint64_t bytes = 0;  // current charge basis: estimate until measured
    int in_flight = 0;
    std::string last_error;  // of the last failed load
    uint64_t load_generation = 0;
    ModelStats stats;
  };

  void release(const std::string& id);
  uint64_t used_locked() const;
  std::vector<ResidentModel> residents_locked() const;
  // Evicts victims (unlocks around the unloader); false when no room can be made now.
  bool make_room_locked(std::unique_lock<std::mutex>& lock, const std::string& for_id,
                        uint64_t need);
  void evict_locked(std::unique_lock<std::mutex>& lock, const std::string& id);
  static const char* state_name(State state);

  const Options options_;
  const Loader loader_;
  const Unloader unloader_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Model> models_;     // guarded by mutex_
  std::unique_ptr<EvictionPolicy> policy_;  // guarded by mutex_
  uint64_t peak_used_ = 0;                  // guarded by mutex_
};

}  // namespace calm
