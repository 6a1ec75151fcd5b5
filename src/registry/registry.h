// The registry: every model of the fleet, its configuration and its engine.
//
// Each entry is created from the fleet file at start. load_all() loads each
// model; a model that fails (a corrupt GGUF, a backend that is down) is kept
// with its error so requests for it get a clear 503, while the rest of the
// fleet serves.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/fleet_config.h"
#include "engines/engine.h"

namespace calm {

class Registry {
 public:
  struct Entry {
    ModelConfig config;
    std::unique_ptr<Engine> engine;

    bool ready() const { return engine->loaded(); }
    std::string load_error() const;  // empty when none; thread-safe

   private:
    friend class Registry;
    mutable std::mutex mutex_;
    std::string load_error_;                          // guarded by mutex_
    std::chrono::steady_clock::time_point last_try_;  // guarded by mutex_
  };

  // Creates one engine per model (nothing is loaded yet).
  explicit Registry(const FleetConfig& config);
  // For tests: entries with engines made elsewhere.
  explicit Registry(std::vector<std::unique_ptr<Entry>> entries);
  ~Registry();

  // Loads every model; failures are logged and remembered, never thrown.
  // Not thread-safe with itself; call once at start.
  void load_all();
  void unload_all();

  // Thread-safe. True when the model can take a request now. A remote model
  // that was down is asked again (at most every retry_interval), so a backend
  // that comes up later serves without a restart; a local model that failed
  // to load stays failed with its error.
  bool ensure_ready(Entry& entry);
  std::chrono::milliseconds retry_interval{2000};

  // Thread-safe. nullptr when no model has this id.
  Entry* find(std::string_view id) const;
  const std::vector<std::unique_ptr<Entry>>& entries() const { return entries_; }

 private:
  std::vector<std::unique_ptr<Entry>> entries_;  // fixed after construction
};

// Builds the engine a model's configuration asks for.
std::unique_ptr<Engine> make_engine(const ModelConfig& config);

}  // namespace calm
