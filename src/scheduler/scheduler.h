// The scheduler: one global queue in front of the local models (the paper's
// CAS, with the cache in cache/model_cache.h).
//
// A request's life:
//
//   enter() ──► [queued] ──policy picks it──► [started] ──lease.wait()──► [running] ──► ~Ticket
//                  │  queue full: 503            (a cache lease is reserved     (the model is
//                  │  model's limit: 429          at once; a load may follow)    resident)
//                  └─ queue_timeout: 503
//
// - Which queued request starts next is the queue policy's choice
//   (queue_policy.h: fifo, stcf, swap-aware), made whenever capacity may have
//   changed: a request arrived, one finished, a load settled.
// - A request starts only when its model has a free parallel slot (the
//   engine's batching) or, for a model that is not resident, when the cache
//   can make room for it now; and, with max_active_models, only when it would
//   not make one model too many decoding at once. Starting reserves the cache lease under the
//   scheduler's lock, so the scheduler's view and the cache's never disagree:
//   no request is started on a model that a reserved swap is about to evict.
// - Expected service times (STCF) come from a rolling window per model of
//   how long its requests ran once their model was resident.
//
// Thread-safe. Lock order: the scheduler's lock, then the cache's. The
// cache's change callback calls dispatch() without the cache's lock held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/model_cache.h"
#include "scheduler/queue_policy.h"

namespace calm {

// Why a request was not started. The HTTP layer answers 503 (queue full or
// timed out, with Retry-After) or 429 (the model's own limit).
class SchedulerError : public std::runtime_error {
 public:
  enum class Kind { kQueueFull, kModelBusy, kTimedOut };
  SchedulerError(Kind kind, const std::string& message, int retry_after_s)
      : std::runtime_error(message), kind_(kind), retry_after_s_(retry_after_s) {}
  Kind kind() const { return kind_; }
  int retry_after_s() const { return retry_after_s_; }

 private:
  Kind kind_;
  int retry_after_s_;
};

class Scheduler {
 public:
  struct Options {
    std::string policy = "fifo";
    std::chrono::milliseconds max_wait{5000};  // swap-aware's aging bound
    size_t max_queue = 1024;                   // queued requests; more get 503
    std::chrono::milliseconds queue_timeout{300000};
    // Models decoding at once; 0: no limit. Each model's batch already uses
    // all its threads, so on a CPU a second model decoding beside it only
    // steals cores (llama.cpp's threads spin), and both slow down.
    size_t max_active_models = 0;
    size_t service_window = 100;  // observations per model for STCF
  };
  struct ModelSlots {
    std::string id;
    int slots = 1;          // requests it decodes at once
    int max_in_flight = 0;  // queued + running for this model; more get 429; 0: no limit
  };

  // Throws std::invalid_argument for an unknown policy. The cache must outlive
  // the scheduler; the scheduler installs the cache's change callback.
  Scheduler(Options options, ModelCache& cache, std::vector<ModelSlots> models);
  ~Scheduler();

  // Replaces the model set (a fleet reload). Requests already admitted keep
  // their place; a model no longer listed can no longer be entered.
  void update_models(std::vector<ModelSlots> models);

  // One admitted request. Its destructor ends it: the slot frees and the next
  // request is picked.
  class Ticket {
   public:
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    const std::string& model() const { return model_; }
    bool cache_hit() const { return lease_.was_hit(); }
    double queue_ms() const { return queue_ms_; }  // arrival until started
    double load_ms() const { return load_ms_; }    // started until resident

   private:
    friend class Scheduler;
    Ticket(Scheduler* scheduler, std::string model)
        : scheduler_(scheduler), model_(std::move(model)) {}
    Scheduler* scheduler_;
    std::string model_;
    ModelCache::Lease lease_;
    SchedClock::time_point running_since_;
    double queue_ms_ = 0, load_ms_ = 0;
  };

  // Admits a request for `model`, waits for its turn and for its model to be
  // resident. Blocks. Throws SchedulerError (503/429 cases), CacheError (the
  // model failed to load, or is unknown to the cache), std::out_of_range for a
  // model the scheduler does not know.
  std::unique_ptr<Ticket> enter(const std::string& model);

  // swap-aware's aging bound, now; the MAPE-K loop moves it (see
  // mapek/planner.h). Thread-safe; takes effect at the next pick.
  void set_max_wait(std::chrono::milliseconds max_wait);
  std::chrono::milliseconds max_wait() const;

  // Picks and starts every request that can start now. Thread-safe; called on
  // every change, and by the cache's change callback.
  void dispatch();

  struct ModelStats {
    std::string id;
    int slots = 0;
    int running = 0;  // started, including those waiting for their load
    size_t queued = 0;
    double expected_service_ms = 0;
  };
  struct Stats {
    std::string policy;
    double max_wait_ms = 0;
    size_t max_queue = 0;
    size_t queued = 0;
    uint64_t admitted = 0, rejected_queue_full = 0, rejected_model_busy = 0, timed_out = 0;
    double longest_queue_ms = 0;    // the longest arrival-to-start seen
    double longest_service_ms = 0;  // the longest run on a resident model seen
    std::vector<ModelStats> models;
  };
  Stats stats() const;

 private:
  struct Waiter {
    QueuedRequest request;
    std::condition_variable cv;
    std::optional<ModelCache::Lease> lease;  // set when started
    std::string error;                       // set when it cannot start at all
  };
  struct Model {
    ModelSlots slots;
    bool listed = true;  // false: gone from the fleet, kept until its requests end
    int running = 0;
    size_t queued = 0;
    std::deque<double> service_ms;  // rolling window
    double service_sum = 0;
  };

  void dispatch_locked();
  ModelAvailability availability_locked(const std::string& model) const;
  double expected_service_locked(const Model& m) const;
  int retry_after_locked() const;
  void finish(Ticket& ticket);

  const Options options_;
  ModelCache& cache_;
  std::unique_ptr<QueuePolicy> policy_;  // guarded by mutex_
  std::chrono::milliseconds max_wait_;   // guarded by mutex_
  mutable std::mutex mutex_;
  std::map<std::string, Model> models_;  // guarded by mutex_
  std::deque<QueuedRequest> queue_;      // guarded by mutex_
  std::map<uint64_t, Waiter*> waiters_;  // guarded by mutex_; by request id
  uint64_t next_id_ = 1;                 // guarded by mutex_
  Stats counters_;                       // guarded by mutex_ (the counter fields only)
};

}  // namespace calm
