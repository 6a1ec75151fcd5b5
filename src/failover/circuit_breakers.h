// Circuit breakers: one per model. A model whose backend keeps failing is
// taken out of service for a cooldown, its health is checked, and it is let
// back in once healthy, so that requests go to its fallbacks meanwhile
// instead of waiting on a dead backend one timeout at a time.
//
// clang-format off
//   [closed] ──`failures` failures in a row──► [open] ──cooldown ends──► probe(model)
//      ▲                                         ▲                          │
//      │                                         ├──── probe fails ◄────────┤
//      │                                         │                          ▼ probe ok
//      └────── a request succeeds ────────── [half_open] ◄──────────────────┘
//                                                │
//                                                └── a request fails ──► [open]
// clang-format on
//
// - closed:    allow() is true; a success resets the count of failures.
// - open:      allow() is false; the pipeline tries the next fallback, or
//              answers 503 with Retry-After set to what is left of the cooldown.
// - half_open: allow() is true: the next requests are the trial, and the
//              first one to end decides.
// Only failures of the backend count (connection refused, 5xx, timeouts, a
// load that fails), never a client's bad request or a cancel.
//
// Every change of state is told to the listener (on the thread that caused
// it, without the lock held): the server logs it as an adaptation. The probe
// runs on the breakers' own thread, so a health check that waits on a
// dead backend holds no request thread.
//
// Thread-safe. The destructor stops the probe thread first; no listener or
// probe call runs after it returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "util/delay_queue.h"

namespace calm {

class CircuitBreakers {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };
  static const char* state_name(State state);  // "closed", "open", "half_open"

  struct Options {
    int failures = 3;                           // failures in a row that open a breaker (>= 1)
    std::chrono::milliseconds cooldown{10000};  // open this long before each health check
  };

  // One model's breaker.
  struct Status {
    State state = State::kClosed;
    int failures_in_a_row = 0;
    uint64_t failures = 0;  // in all
    uint64_t opened = 0;    // times it opened
    std::string last_error;
    std::chrono::milliseconds retry_in{0};  // open: until the next health check
  };

  struct Change {
    std::string model;
    State from = State::kClosed;
    State to = State::kClosed;
    std::string reason;  // one line
    Status status;       // after the change
  };

  // True when the model's backend is healthy. Called on the breakers' thread;
  // may block (bounded by the backend's connect timeout). `detail` is why not.
  using Probe = std::function<bool(const std::string& model, std::string& detail)>;
  using Listener = std::function<void(const Change& change)>;

  CircuitBreakers(Options options, Probe probe, Listener listener = {});
  ~CircuitBreakers();
  CircuitBreakers(const CircuitBreakers&) = delete;
  CircuitBreakers& operator=(const CircuitBreakers&) = delete;

  // Thread-safe. Whether a request may go to the model now.
  bool allow(const std::string& model) const;
  // Thread-safe. What a request to the model found.
  void record_success(const std::string& model);
  void record_failure(const std::string& model, const std::string& error);

  // Thread-safe. std::nullopt: the model never failed (its breaker is closed).
  std::optional<Status> status(const std::string& model) const;
  // Thread-safe: every model that has failed at least once.
  std::map<std::string, Status> all() const;
  const Options& options() const { return options_; }

 private:
  struct Breaker {
    Status status;
    std::chrono::steady_clock::time_point reopen_at;  // open: when the probe runs
  };
  using Clock = std::chrono::steady_clock;

  // Sets the state under mutex_; returns the change to tell.
  Change move_to(const std::string& model, Breaker& breaker, State to, std::string reason);
  void open(const std::string& model, Breaker& breaker, std::string reason,
            std::optional<Change>& change);
  void run_probe(const std::string& model);
  void tell(const std::optional<Change>& change) const;
  Status snapshot(const Breaker& breaker) const;

  const Options options_;
  const Probe probe_;
  const Listener listener_;
  mutable std::mutex mutex_;
  std::map<std::string, Breaker> breakers_;  // guarded by mutex_
  DelayQueue probes_;                        // last member: stopped (joined) first
};

}  // namespace calm
