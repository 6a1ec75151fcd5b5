// The scheduler: one global queue in front of every model of the fleet, local
// or remote (the paper's CAS, with the cache in cache/model_cache.h).
//
// A request's life (no thread waits for any of it):
//
//   submit() ──► [queued] ──policy picks it──► [started] ──load, if needed──► [running] ──► ~Ticket
//      │            │  cancel(): gone, no callback  (a cache lease is        (on_start got
//      │            └─ queue_timeout: on_fail        reserved at once)        the Ticket)
//      └─ queue full: 503, model's limit: 429, never fits: CacheError (thrown at once)
//
// - Which queued request starts next is the queue policy's choice
//   (queue_policy.h: fifo, stcf, swap-aware), made whenever capacity may have
//   changed: a request arrived, one finished, a load settled.
// - A request starts only when its model has a free slot (a local model's
//   parallel batch, a remote model's concurrent upstream requests) or, for a
//   local model that is not resident, when the cache can make room for it now;
//   and, with max_active_models, only when it would not make one local model
//   too many decoding at once. Starting reserves the cache lease under the
//   scheduler's lock, so the scheduler's view and the cache's never disagree:
//   no request is started on a model that a reserved swap is about to evict.
// - Remote models hold no cache lease; they are admitted, limited and queued
//   exactly like local ones.
// - Callbacks run without the scheduler's lock: on_start on the thread that
//   dispatched (a hit) or on the loader thread (after the model's load);
//   on_fail on the timer thread (queue timeout), the loader thread (a failed
//   load) or the thread that called stop(). Keep them short: they must not block.
// - Expected service times (STCF) come from a rolling window per model of
//   how long its requests ran once their model was resident.
//
// Threads: the loader (waits out loads, one at a time, as the cache loads one
// at a time) and the timer (wakes only at the next queue deadline). Both are
// joined by stop() or the destructor.
//
// Thread-safe. Lock order: the scheduler's lock, then the cache's. The
// cache's change callback calls dispatch() without the cache's lock held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cache/model_cache.h"
#include "scheduler/queue_policy.h"

namespace calm {

// Why a request was not started. The HTTP layer answers 503 (queue full,
// timed out or stopping, with Retry-After) or 429 (the model's own limit).
class SchedulerError : public std::runtime_error {
 public:
  enum class Kind { kQueueFull, kModelBusy, kTimedOut, kStopping };
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
    // Local models decoding at once; 0: no limit. Each model's batch already
    // uses all its threads, so on a CPU a second model decoding beside it only
    // steals cores (llama.cpp's threads spin), and both slow down.
    size_t max_active_models = 0;
    size_t service_window = 100;  // observations per model for STCF
  };
  struct ModelSlots {
    std::string id;
    int slots = 1;          // requests it serves at once
    int max_in_flight = 0;  // queued + running for this model; more get 429; 0: no limit
    bool local = true;      // false: a remote model, no cache lease
  };

  // Throws std::invalid_argument for an unknown policy. The cache must outlive
  // the scheduler; the scheduler installs the cache's change callback.
  Scheduler(Options options, ModelCache& cache, std::vector<ModelSlots> models);
  ~Scheduler();  // stop(), then removes the cache's change callback

  // Replaces the model set (a fleet reload, inside Registry::publish's step).
  // Requests already admitted keep their place; a model no longer listed can
  // no longer be submitted, and its record goes once its requests end.
  // Thread-safe.
  void update_models(std::vector<ModelSlots> models);

  // One started request. Its destructor ends it: the slot frees and the next
  // request is picked. Not thread-safe itself: one owner.
  class Ticket {
   public:
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    const std::string& model() const { return model_; }
    bool cache_hit() const { return local_ ? lease_.was_hit() : true; }
    double queue_ms() const { return queue_ms_; }  // arrival until started
    double load_ms() const { return load_ms_; }    // started until resident

   private:
    friend class Scheduler;
    Ticket(Scheduler* scheduler, std::string model, bool local)
        : scheduler_(scheduler), model_(std::move(model)), local_(local) {}
    Scheduler* scheduler_;
    std::string model_;
    bool local_;
    ModelCache::Lease lease_;
    SchedClock::time_point running_since_;
    double queue_ms_ = 0, load_ms_ = 0;
  };

  using OnStart = std::function<void(std::unique_ptr<Ticket>)>;
  // The request will never start: a SchedulerError (timed out, shutting down)
  // or a CacheError (its model failed to load, or left the cache).
  using OnFail = std::function<void(std::exception_ptr)>;

  // A submitted request, until it starts or fails. Thread-safe.
  class Admission {
   public:
    // Takes the request out of the queue if it is still there, or has the
    // loader drop its ticket once its load settles. Returns true when neither
    // callback will run; false when on_start has run or is running (or
    // on_fail): the ticket's owner ends it then.
    bool cancel();

   private:
    friend class Scheduler;
    Admission(Scheduler* scheduler, uint64_t id) : scheduler_(scheduler), id_(id) {}
    Scheduler* scheduler_;
    uint64_t id_;
  };

  // Admits a request for `model` and returns at once. Throws, before anything
  // is queued: SchedulerError (queue full: 503; the model's max_in_flight:
  // 429; stopping: 503), CacheError (a local model that can never fit the
  // budget), std::out_of_range (a model the scheduler does not know).
  // Exactly one of on_start and on_fail runs later, unless cancel() comes
  // first. The Admission must not outlive the scheduler.
  std::shared_ptr<Admission> submit(const std::string& model, OnStart on_start, OnFail on_fail);

  // submit(), then blocks until the request starts (tests, tools). Throws
  // what submit() throws, and what on_fail would have carried.
  std::unique_ptr<Ticket> enter(const std::string& model);

  // Refuses every new request (503) and fails every queued one (503, the
  // server is stopping); running requests keep their tickets. Joins the
  // loader and timer threads. Idempotent; thread-safe.
  void stop();

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
    uint64_t cancelled = 0;         // left before running: while queued or while its model loaded
    double longest_queue_ms = 0;    // the longest arrival-to-start seen
    double longest_service_ms = 0;  // the longest run on a resident model seen
    std::vector<ModelStats> models;
  };
  Stats stats() const;

 private:
  struct Waiter {
    QueuedRequest request;
    OnStart on_start;
    OnFail on_fail;
    bool local = true;
  };
  // A started request whose callback is still to run (outside the lock).
  struct Start {
    std::shared_ptr<Waiter> waiter;
    std::unique_ptr<Ticket> ticket;  // null: failed, see error
    std::exception_ptr error;
  };
  struct Model {
    ModelSlots slots;
    bool listed = true;  // false: gone from the fleet, kept until its requests end
    int running = 0;
    size_t queued = 0;
    std::deque<double> service_ms;  // rolling window
    double service_sum = 0;
  };

  std::vector<Start> dispatch_locked();  // queues the starts that need a load for the loader
  void deliver(std::vector<Start> starts);
  ModelAvailability availability_locked(const std::string& model) const;
  double expected_service_locked(const Model& m) const;
  int retry_after_locked() const;
  void remove_queued_locked(uint64_t id);
  bool cancel(uint64_t id);
  void finish(Ticket& ticket);
  void loader_thread();
  void timer_thread();

  const Options options_;
  ModelCache& cache_;
  std::unique_ptr<QueuePolicy> policy_;  // guarded by mutex_
  std::chrono::milliseconds max_wait_;   // guarded by mutex_
  mutable std::mutex mutex_;
  std::condition_variable wake_;                         // loader and timer wait on it
  std::map<std::string, Model> models_;                  // guarded by mutex_
  std::deque<QueuedRequest> queue_;                      // guarded by mutex_; arrival order
  std::map<uint64_t, std::shared_ptr<Waiter>> waiters_;  // guarded by mutex_; queued, by id
  std::deque<Start> loads_;                              // guarded by mutex_; for the loader
  uint64_t loading_id_ = 0;                              // guarded by mutex_; the loader's now
  std::set<uint64_t> cancelled_loads_;                   // guarded by mutex_; ids in loads_
  uint64_t next_id_ = 1;                                 // guarded by mutex_
  bool stopping_ = false;                                // guarded by mutex_
  Stats counters_;  // guarded by mutex_ (the counter fields only)
  std::thread loader_;
  std::thread timer_;
};

}  // namespace calm
