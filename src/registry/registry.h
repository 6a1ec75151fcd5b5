// The registry: every model of the fleet, its configuration and its engine,
// published as one versioned snapshot of the fleet.
//
// Each entry is created from the fleet file. Local models are loaded and
// unloaded by the model cache (cache/resident_set.h), within its memory budget;
// load_all() checks each remote model. A model that fails (a corrupt GGUF, a
// backend that is down) is kept with its error so requests for it get a clear
// 503, while the rest of the fleet serves.
//
// The fleet is a Snapshot: a version number and the entries in fleet-file
// order, immutable once published. Entries are immutable and shared too, so
// a request keeps the entry it was admitted with (and so its engine) until it
// ends, whatever a reload does meanwhile.
//
// Reloading the fleet file while serving takes two calls:
//   stage(config)      builds the next snapshot off to the side (a new or
//                      changed remote is checked here, and the old engine
//                      serves meanwhile); nothing is visible yet;
//   publish(staged, f) swaps it in, in one step: while admissions are held
//                      out (hold_fleet()), the new snapshot replaces the old
//                      and f runs (the model cache and the scheduler learn
//                      the new model set). No request is ever admitted
//                      against a fleet that one part knows and another not.
// What happens to each model:
//   same engine settings, new description/examples/tags → a new entry that
//                                                          shares the engine
//   new model, or changed engine settings              → a new engine
//   model gone from the file                           → unlisted; its engine
//                                                          unloads once its last
//                                                          request ends
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/fleet_config.h"
#include "engines/engine.h"
#include "engines/remote_engine.h"
#include "util/delay_queue.h"

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
    bool checking_ = false;  // guarded by mutex_; a recheck is queued or running
  };
  using EntryPtr = std::shared_ptr<Entry>;

  // One version of the fleet. Immutable.
  struct Snapshot {
    uint64_t version = 0;                      // 1 at start, +1 per published reload
    std::vector<EntryPtr> entries;             // fleet-file order
    EntryPtr find(std::string_view id) const;  // nullptr when no model has this id
  };
  using SnapshotPtr = std::shared_ptr<const Snapshot>;

  // Builds the engine of a model served by nodes (nodes/placed_engine.h),
  // which this layer cannot see; the serve command gives one when the fleet
  // has nodes.
  using NodeEngineFactory = std::function<std::unique_ptr<Engine>(const ModelConfig&)>;

  // Creates one engine per model (nothing is loaded yet): snapshot version 1.
  explicit Registry(const FleetConfig& config, NodeEngineFactory node_engines = {});
  ~Registry();  // stops the rechecks, then unloads every engine

  // Checks every remote model; failures are logged and remembered, never
  // thrown. Call once at start (it blocks on the backends).
  void load_all();
  void unload_all();

  struct ReloadReport {
    std::vector<std::string> added, replaced, updated, removed, unchanged;
  };
  struct Staged {
    SnapshotPtr next;
    ReloadReport report;
  };
  // Builds what the fleet would be under `config` (see the table above);
  // publishes nothing. Blocks while new remotes are checked. Calls of stage()
  // and publish() must not overlap with other such calls.
  Staged stage(const FleetConfig& config);
  // Publishes `staged` in one step; `alongside` runs right after the swap,
  // before admissions resume (it must not block on requests, loads or
  // backends). Returns the new version.
  uint64_t publish(const Staged& staged, const std::function<void()>& alongside = {});
  // stage() then publish(): the fleet becomes what config says.
  ReloadReport apply(const FleetConfig& config);

  // Held (shared) by each admission while it routes and queues, so that a
  // publish() never lands in the middle of one. Thread-safe.
  std::shared_lock<std::shared_mutex> hold_fleet() const;

  // Thread-safe; never blocks on a backend. True when the model can take a
  // request now. A remote model that is down is asked again on the
  // registry's own thread (at most every retry_interval), so a backend that
  // comes up later serves without a restart, and the request that noticed
  // gets its 503 at once; a local model that failed to load stays failed
  // with its error.
  bool ensure_ready(const EntryPtr& entry);
  std::chrono::milliseconds retry_interval{2000};

  // Thread-safe: the fleet now.
  SnapshotPtr snapshot() const;
  // Thread-safe. nullptr when no model has this id.
  EntryPtr find(std::string_view id) const;
  // Thread-safe. Whether a model of this id is listed and loaded (pro-cache asks).
  bool is_ready(std::string_view id) const;
  // Thread-safe: the fleet now, in fleet-file order.
  std::vector<EntryPtr> entries() const;

 private:
  std::unique_ptr<Engine> engine_for(const ModelConfig& config) const;

  const NodeEngineFactory node_engines_;    // fixed after construction
  mutable std::shared_mutex fleet_change_;  // shared: admissions; unique: publish()
  mutable std::mutex mutex_;
  SnapshotPtr snapshot_;  // guarded by mutex_
  DelayQueue rechecks_;   // down remotes asked again; stopped first by ~Registry
};

// The RemoteEngine options of a fleet file's remote model. Workers: the
// model's `parallel` (requests sent upstream at once; kRemoteParallel when
// the file does not say), the same number the scheduler gives the model as
// slots, so a started request always finds a free worker.
RemoteEngine::Options remote_engine_options(const ModelConfig& config);

// Builds the engine a local or remote model's configuration asks for
// (a model served by nodes needs Registry's NodeEngineFactory: throws
// std::invalid_argument for one).
std::unique_ptr<Engine> make_engine(const ModelConfig& config);

// Whether two configurations would build the same engine.
bool same_engine(const ModelConfig& a, const ModelConfig& b);

}  // namespace calm
