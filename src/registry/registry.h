// The registry: every model of the fleet, its configuration and its engine.
//
// Each entry is created from the fleet file. Local models are loaded and
// unloaded by the model cache (cache/resident_set.h), within its memory budget;
// load_all() checks each remote model. A model that fails (a corrupt GGUF, a
// backend that is down) is kept with its error so requests for it get a clear
// 503, while the rest of the fleet serves.
//
// Reloading the fleet file while serving (apply()) never drops a request in
// flight: entries are immutable and shared, so a request keeps the entry it
// was routed to (and so its engine) until it ends.
//   same engine settings, new description/examples/tags → a new entry that
//                                                          shares the engine
//   new model, or changed engine settings              → a new engine (a remote
//                                                          is checked before it
//                                                          is listed)
//   model gone from the file                           → unlisted; its engine
//                                                          unloads once its last
//                                                          request ends
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/fleet_config.h"
#include "engines/engine.h"
#include "engines/remote_engine.h"

namespace calm {

class Registry {
 public:
  struct Entry {
    ModelConfig config;
    std::shared_ptr<Engine> engine;

    bool ready() const { return engine->loaded(); }
    std::string load_error() const;  // empty when none; thread-safe

   private:
    friend class Registry;
    mutable std::mutex mutex_;
    std::string load_error_;                          // guarded by mutex_
    std::chrono::steady_clock::time_point last_try_;  // guarded by mutex_
  };
  using EntryPtr = std::shared_ptr<Entry>;

  // Creates one engine per model (nothing is loaded yet).
  explicit Registry(const FleetConfig& config);
  ~Registry();

  // Checks every remote model; failures are logged and remembered, never
  // thrown. Call once at start.
  void load_all();
  void unload_all();

  struct ReloadReport {
    std::vector<std::string> added, replaced, updated, removed, unchanged;
  };
  // Makes the fleet what config says (see the table above). Thread-safe with
  // find() and entries(); calls of apply() must not overlap.
  ReloadReport apply(const FleetConfig& config);

  // Thread-safe. True when the model can take a request now. A remote model
  // that was down is asked again (at most every retry_interval), so a backend
  // that comes up later serves without a restart; a local model that failed
  // to load stays failed with its error.
  bool ensure_ready(Entry& entry);
  std::chrono::milliseconds retry_interval{2000};

  // Thread-safe. nullptr when no model has this id.
  EntryPtr find(std::string_view id) const;
  // Thread-safe. Whether a model of this id is listed and loaded (pro-cache asks).
  bool is_ready(std::string_view id) const;
  // Thread-safe: the fleet now, in fleet-file order.
  std::vector<EntryPtr> entries() const;

 private:
  mutable std::shared_mutex mutex_;
  std::vector<EntryPtr> entries_;  // guarded by mutex_
};

// The RemoteEngine options of a fleet file's remote model. Workers: the
// model's `parallel` (requests sent upstream at once; kRemoteParallel when
// the file does not say), the same number the scheduler gives the model as
// slots, so a started request always finds a free worker.
RemoteEngine::Options remote_engine_options(const ModelConfig& config);

// Builds the engine a model's configuration asks for.
std::unique_ptr<Engine> make_engine(const ModelConfig& config);

// Whether two configurations would build the same engine.
bool same_engine(const ModelConfig& a, const ModelConfig& b);

}  // namespace calm
