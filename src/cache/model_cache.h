// ModelCache: which models are resident, within a memory budget in bytes.
//
// Per model:
//
//   [unloaded] ──reserve──► [loading] ──loaded──► [resident] ──evict──► [unloading] ──► [unloaded]
//       ▲                       │                    │  ▲
//       └──── load failed ◄─────┘        reserve/release (in_flight)
//
// Two steps, so that a scheduler can decide without blocking:
// - try_acquire(id) never blocks on a load. It returns a Lease when the model
//   is resident, is loading (the lease joins that load), or can be made to fit
//   now: then it picks the victims (eviction_policy.h) among resident, unpinned,
//   idle models, marks them unloading and the model loading, all at once under
//   the lock, so no other caller can take that room or start work on a victim.
//   It returns std::nullopt when no room can be made now (every candidate is
//   busy or pinned, or the model is still unloading).
// - Lease::wait() does the slow part outside the lock: the lease that reserved
//   the load unloads the victims, then loads the model; leases that joined it
//   wait for that one load (loads are coalesced). A failed load throws its error
//   from every waiting lease and leaves the model unloaded: the next
//   try_acquire tries again.
// While any lease is held the model is busy and is never evicted.
//
// Memory: a model is charged its estimated bytes from the moment it is
// reserved and, once loaded, the bytes its loader reports (what llama.cpp
// allocated for it: deterministic, the same on every load, so it simply
// replaces the estimate). Loads run one at a time.
// Victims are unloaded before the load starts, so what is really held never
// exceeds the budget even while a swap is in progress. If a load reports more
// than its charge and what is held then exceeds the budget, idle models are
// evicted to get back under it, and if that is impossible the model is
// unloaded again and its leases fail: the budget is never exceeded once a
// load has settled.
// A budget of 0 means no limit: every model fits (only max_resident counts).
// With a budget, a model whose charge alone, plus the pinned models that hold
// memory and never leave, exceeds it can never fit: never_fits() says so and
// try_acquire throws CacheError(kNeverFits) at once instead of waiting.
//
// Thread-safe. Loader, unloader and the change callback run without the
// cache's lock held; the callback must not destroy a Lease under a lock that
// try_acquire is called under.
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
  enum class Kind {
    kOther,      // unknown model, failed load, no room within the wait
    kNeverFits,  // the model can never fit cache.budget: no wait will help
    kReplaced,   // a fleet reload replaced the model after the load this lease
                 // waited for: the request should be admitted again
  };
  explicit CacheError(const std::string& what, Kind kind = Kind::kOther)
      : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class ModelCache {
 public:
  struct Options {
    uint64_t budget_bytes = 0;  // 0: no limit
    size_t max_resident = 0;    // 0: no count limit
    std::string eviction = "lru";
    std::string budget_name = "cache.budget";  // what error messages call the budget
  };
  struct ModelSpec {
    std::string id;
    uint64_t estimated_bytes = 0;
    bool pinned = false;
  };
  // What a load reports: the bytes to charge (what the engine allocated; 0:
  // unknown, keep the estimate) and, as a cross-check that is only shown,
  // how much the process's RSS grew across it.
  struct LoadResult {
    // Implicit: a loader may return the bytes alone.
    LoadResult(uint64_t charge = 0, uint64_t rss_delta = 0)
        : bytes(charge), rss_delta_bytes(rss_delta) {}
    uint64_t bytes;
    uint64_t rss_delta_bytes;
  };
  // Loads a model and returns what it took; throws to fail.
  using Loader = std::function<LoadResult(const std::string& id)>;
  using Unloader = std::function<void(const std::string& id)>;

  // Throws CacheError for an unknown eviction policy or a model whose
  // estimate alone exceeds the budget.
  ModelCache(Options options, std::vector<ModelSpec> models, Loader loader, Unloader unloader);
  ~ModelCache();

  // Called (without the cache's lock) whenever room or residency may have
  // changed: a lease released, a load settled, a victim unloaded. Set before use.
  // Thread-safe. Set it to null before the callee is destroyed.
  void set_on_change(std::function<void()> on_change);

  // One request in flight on a model. Releasing it (the destructor) lets the
  // model be evicted again. Not thread-safe itself: one owner.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    const std::string& id() const { return id_; }
    bool was_hit() const { return hit_; }  // resident when asked
    // Blocks until the model is resident: performs the reserved swap (unload
    // victims, load) if this lease reserved it, else waits for the load it
    // joined. Returns at once for a hit. Throws CacheError if the load failed,
    // or (Kind::kReplaced) if a reload replaced the model before a joined load
    // woke this lease.
    void wait();

   private:
    friend class ModelCache;
    Lease(ModelCache* cache, std::string id, bool hit, uint64_t generation,
          std::vector<std::string> victims, bool owns_load)
        : cache_(cache),
          id_(std::move(id)),
          hit_(hit),
          generation_(generation),
          victims_(std::move(victims)),
          owns_load_(owns_load) {}
    ModelCache* cache_ = nullptr;
    std::string id_;
    bool hit_ = false;
    uint64_t generation_ = 0;  // of the load this lease waits on
    std::vector<std::string> victims_;
    bool owns_load_ = false;
  };

  // Never blocks on a load (see the top). Throws CacheError for an unknown
  // model, and CacheError(kNeverFits) with never_fits()'s message for a model
  // that can never fit.
  std::optional<Lease> try_acquire(const std::string& id);
  // Why the model can never fit the budget (naming cache.budget, its size and
  // the budget), or nullopt when it can (always without a budget, and for an
  // unknown id). Resident or loading models fit by definition. Thread-safe.
  std::optional<std::string> never_fits(const std::string& id) const;
  // A load ahead of demand: reserves a load only if the model is unloaded and
  // fits without evicting anything; counts as neither hit nor miss. The
  // caller waits on the lease (on its own thread) and drops it.
  std::optional<Lease> try_prefetch(const std::string& id);
  // Unloads resident, unpinned models with no request in flight that have not
  // been used for `idle`. Returns their ids. Thread-safe; blocks on unloads.
  std::vector<std::string> unload_idle(std::chrono::milliseconds idle);
  // Unloads this one model if it is resident, unpinned and has no request in
  // flight (counted as an idle unload); false otherwise. Thread-safe; blocks
  // on the unload.
  bool unload_if_idle(const std::string& id);
  // Whether try_acquire(id) would not return nullopt now, without reserving
  // anything: true also for a model that can never fit (try_acquire throws
  // its error at once, so a scheduler does not keep its requests queued).
  bool can_acquire_now(const std::string& id) const;
  // What the model is charged now (measured once it has loaded); nullopt for
  // an unknown id. Thread-safe, cheap.
  std::optional<uint64_t> charged_bytes(const std::string& id) const;
  // What is charged now in all (stats().used_bytes) without copying every
  // model's record: O(models) under the lock, no allocation. Thread-safe.
  uint64_t used_bytes() const;
  // Whether the model is resident or loading (work for it needs no new swap).
  bool resident_or_loading(const std::string& id) const;

  // try_acquire, waiting up to wait_limit for room, then Lease::wait(). Throws
  // CacheError: unknown model, load failure, or no room within wait_limit.
  Lease acquire(const std::string& id, std::chrono::milliseconds wait_limit);

  // A fleet reload calls these three, check_fits() before it changes
  // anything and the other two inside Registry::publish's step. Thread-safe.
  //
  // check_fits: throws CacheError when one of `models` needs more than the
  // whole budget.
  void check_fits(const std::vector<ModelSpec>& models) const;
  // add_models: adds the ids of `models` it does not know yet, unloaded;
  // leaves every other model as it is.
  void add_models(std::vector<ModelSpec> models);
  // update_models: makes the model set what `models` says. New ids are added
  // unloaded. Ids in `reset` (their engine was replaced) start again as
  // unloaded with the new estimate; the old engine's memory is freed by its
  // owner when its last request ends and is not charged meanwhile. Ids no
  // longer listed are forgotten (the owner unloads their engines). Throws
  // what check_fits() throws, and then changes nothing.
  void update_models(std::vector<ModelSpec> models, const std::vector<std::string>& reset);

  struct ModelStats {
    std::string id;
    std::string state;   // "unloaded", "loading", "resident", "unloading"
    uint64_t bytes = 0;  // what its last load reported, else the estimate
    uint64_t estimated_bytes = 0;
    uint64_t rss_delta_bytes = 0;  // RSS growth across its last load: a cross-check only
    int in_flight = 0;
    bool pinned = false;
    uint64_t hits = 0, misses = 0, loads = 0, evictions = 0, load_failures = 0;
    uint64_t prefetches = 0, idle_unloads = 0;
    double last_load_ms = 0, total_load_ms = 0;
    std::string last_error;  // of the last failed load
    std::string never_fits;  // never_fits()'s message, "" when it can fit
  };
  struct Stats {
    uint64_t budget_bytes = 0;  // 0: no limit
    size_t max_resident = 0;
    std::string eviction;
    uint64_t used_bytes = 0;       // charged now (resident, loading, unloading)
    uint64_t peak_used_bytes = 0;  // highest charge really held (swaps settle first)
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
    bool load_started = false;  // victims gone, loader running: really held
    uint64_t load_generation = 0;
    uint64_t loaded_generation = 0;  // the last load generation that succeeded
    bool retired = false;            // gone from the fleet mid-swap: forgotten once idle
    std::chrono::steady_clock::time_point last_used;  // last release or load
    CacheError::Kind last_error_kind = CacheError::Kind::kOther;
    ModelStats stats;
  };

  void release(const std::string& id);
  void run_swap(Lease& lease);
  void wait_for_load(const Lease& lease);
  // Room for `id` now: the victims to evict (possibly none), or nullopt.
  std::optional<std::vector<std::string>> room_for_locked(const std::string& id) const;
  uint64_t used_locked() const;
  uint64_t budget_locked() const;  // the budget, or the largest value when there is none
  std::optional<std::string> never_fits_locked(const std::string& id) const;
  uint64_t held_locked() const;  // what is really in memory now
  std::vector<ResidentModel> residents_locked() const;
  void evict_now_locked(std::unique_lock<std::mutex>& lock, const std::string& id);
  // Unloads `id` now if it is resident with no request in flight, counted as
  // an idle unload; the lock is released during the unload.
  bool idle_unload_locked(std::unique_lock<std::mutex>& lock, const std::string& id);
  void notify_change();
  static const char* state_name(State state);

  const Options options_;
  const Loader loader_;
  const Unloader unloader_;
  std::mutex on_change_mutex_;
  std::function<void()> on_change_;  // guarded by on_change_mutex_
  std::mutex load_mutex_;            // one load at a time (run_swap); taken before mutex_
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t change_count_ = 0;               // guarded by mutex_
  std::map<std::string, Model> models_;     // guarded by mutex_
  std::unique_ptr<EvictionPolicy> policy_;  // guarded by mutex_
  uint64_t peak_held_ = 0;                  // guarded by mutex_
};

}  // namespace calm
