// ResidentSet: the fleet's local engines, kept resident by a ModelCache.
//
// The ModelCache decides which models are loaded; this class gives it the
// real engines to load and unload, and the measurements:
// - each model's estimate comes from its GGUF (engines/gguf_info.h: weights,
//   KV cache for context x parallel, compute buffers);
// - each loaded model is charged what llama.cpp allocated for it
//   (LlamaEngine::memory(): weights, KV cache, compute buffers), the same
//   figure on every machine; the growth of the process's RSS across the load
//   is kept beside it as a cross-check only (logged, and in the cache's
//   stats), and loads and unloads are serialised so that it stays readable;
// - llama.cpp's one-time set-up is the process's, never a model's
//   (engines/llama_backend.h);
// - with no `cache.budget` in the fleet file there is no limit: every model
//   fits, and every model is preloaded.
// It also runs the optional idle unloading and next-model prefetch on one
// background thread. Remote models are not here: they hold no local memory.
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cache/model_cache.h"
#include "cache/next_model_predictor.h"
#include "config/fleet_config.h"
#include "registry/registry.h"

namespace calm {

class ResidentSet {
 public:
  // Throws ConfigError (naming cache.budget) when a model cannot fit even alone,
  // or when a GGUF cannot be read for its estimate.
  ResidentSet(const FleetConfig& config, Registry& registry);
  ~ResidentSet();

  ModelCache& cache() { return *cache_; }

  // Stops the background thread (prefetch, idle unloading) and joins it; no
  // load or unload starts from it afterwards, and a load waiting out its
  // inject_load_delay_ms fails at once. Idempotent. The serving
  // shutdown calls it before the scheduler stops, so the cache's change
  // callback is never called from here into a scheduler that is going away.
  void stop();

  // Loads the models marked preload (blocks; failures are logged and kept as
  // the model's last error).
  void preload();
  // A reload. plan() comes first, before anything changes: it reads each
  // local model's GGUF for its estimate, and throws ConfigError (naming
  // cache.budget) when one can never fit. Then, inside Registry::publish's
  // step (neither blocks): prepare() adds the new local models to the cache,
  // unloaded; apply() starts replaced ones over and forgets removed ones
  // (once their last lease ends). After the step, preload_new() loads the
  // added or replaced models marked preload (blocks; failures are logged).
  struct Plan {
    std::vector<ModelCache::ModelSpec> specs;
    CacheConfig options;
    std::vector<std::string> preload, local_ids;
  };
  Plan plan(const FleetConfig& config) const;
  void prepare(const Plan& plan);
  void apply(const Plan& plan, const Registry::ReloadReport& report);
  void preload_new(const Registry::ReloadReport& report);

  // A request for `id` arrived: feeds the next-model predictor and, with
  // prefetch on, loads the predicted model in the background if it fits
  // without evicting anything.
  void note_request(const std::string& id);

  // Whether the next-model prefetch is on; the MAPE-K loop switches it.
  // Thread-safe.
  void set_prefetch(bool on);
  bool prefetch() const;

  // The last load error of a local model ("" if none or if it loaded since).
  std::string load_error(const std::string& id) const;

  // Whether this model id is served by the cache (a local model).
  bool manages(const std::string& id) const;

  // llama.cpp's one-time set-up in this process, charged to no model.
  // Thread-safe.
  uint64_t backend_overhead_bytes() const;

 private:
  std::vector<ModelCache::ModelSpec> specs_for(const FleetConfig& config) const;
  ModelCache::LoadResult load_measured(const std::string& id);
  void unload(const std::string& id);
  void background();

  Registry& registry_;
  std::mutex memory_mutex_;  // one load or unload at a time: readable RSS deltas
  std::unique_ptr<ModelCache> cache_;

  mutable std::mutex mutex_;
  CacheConfig options_;                 // guarded by mutex_
  std::vector<std::string> preload_;    // guarded by mutex_
  std::vector<std::string> local_ids_;  // guarded by mutex_
  NextModelPredictor predictor_;        // guarded by mutex_
  std::deque<std::string> prefetches_;  // guarded by mutex_
  bool stopping_ = false;               // guarded by mutex_
  std::condition_variable wake_;        // with mutex_: stopping_, prefetches_
  std::thread worker_;
};

}  // namespace calm
