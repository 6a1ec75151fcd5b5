#include "failover/circuit_breakers.h"

#include <cassert>

namespace calm {

const char* CircuitBreakers::state_name(State state) {
  switch (state) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

CircuitBreakers::CircuitBreakers(Options options, Probe probe, Listener listener)
    : options_(options), probe_(std::move(probe)), listener_(std::move(listener)) {
  assert(options_.failures >= 1);
}

CircuitBreakers::~CircuitBreakers() {
  probes_.stop();
}

bool CircuitBreakers::allow(const std::string& model) const {
  std::lock_guard lock(mutex_);
  const auto it = breakers_.find(model);
  return it == breakers_.end() || it->second.status.state != State::kOpen;
}

void CircuitBreakers::record_success(const std::string& model) {
  std::optional<Change> change;
  {
    std::lock_guard lock(mutex_);
    const auto it = breakers_.find(model);
    if (it == breakers_.end()) return;  // never failed: nothing to reset
    Breaker& breaker = it->second;
    breaker.status.failures_in_a_row = 0;
    if (breaker.status.state == State::kHalfOpen) {
      change =
          move_to(model, breaker, State::kClosed, "a request succeeded after the health check");
    }
  }
  tell(change);
}

void CircuitBreakers::record_failure(const std::string& model, const std::string& error) {
  std::optional<Change> change;
  {
    std::lock_guard lock(mutex_);
    Breaker& breaker = breakers_[model];
    breaker.status.failures++;
    breaker.status.failures_in_a_row++;
    breaker.status.last_error = error;
    if (breaker.status.state == State::kHalfOpen) {
      open(model, breaker, "the trial request after the health check failed: " + error, change);
    } else if (breaker.status.state == State::kClosed &&
               breaker.status.failures_in_a_row >= options_.failures) {
      open(model, breaker,
           std::to_string(breaker.status.failures_in_a_row) +
               " failures in a row, the last: " + error,
           change);
    }
  }
  tell(change);
}

std::optional<CircuitBreakers::Status> CircuitBreakers::status(const std::string& model) const {
  std::lock_guard lock(mutex_);
  const auto it = breakers_.find(model);
  if (it == breakers_.end()) return std::nullopt;
  return snapshot(it->second);
}

std::map<std::string, CircuitBreakers::Status> CircuitBreakers::all() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, Status> out;
  for (const auto& [model, breaker] : breakers_) out[model] = snapshot(breaker);
  return out;
}

CircuitBreakers::Status CircuitBreakers::snapshot(const Breaker& breaker) const {
  Status s = breaker.status;
  if (s.state == State::kOpen) {
    const auto left = breaker.reopen_at - Clock::now();
    s.retry_in =
        std::max(std::chrono::milliseconds(0), std::chrono::ceil<std::chrono::milliseconds>(left));
  }
  return s;
}

CircuitBreakers::Change CircuitBreakers::move_to(const std::string& model, Breaker& breaker,
                                                 State to, std::string reason) {
  Change change{model, breaker.status.state, to, std::move(reason), {}};
  breaker.status.state = to;
  change.status = snapshot(breaker);
  return change;
}

void CircuitBreakers::open(const std::string& model, Breaker& breaker, std::string reason,
                           std::optional<Change>& change) {
  breaker.status.opened++;
  breaker.reopen_at = Clock::now() + options_.cooldown;
  change = move_to(model, breaker, State::kOpen, std::move(reason));
  probes_.after(options_.cooldown, [this, model] { run_probe(model); });
}

void CircuitBreakers::run_probe(const std::string& model) {
  std::string detail;
  const bool healthy = probe_(model, detail);  // may block: no lock held
  std::optional<Change> change;
  {
    std::lock_guard lock(mutex_);
    const auto it = breakers_.find(model);
    if (it == breakers_.end() || it->second.status.state != State::kOpen) return;
    Breaker& breaker = it->second;
    if (healthy) {
      change = move_to(model, breaker, State::kHalfOpen, "the health check passed");
    } else {
      // Still down: another cooldown, and the state stays open (no change to tell).
      breaker.status.last_error = detail.empty() ? breaker.status.last_error : detail;
      breaker.reopen_at = Clock::now() + options_.cooldown;
      probes_.after(options_.cooldown, [this, model] { run_probe(model); });
    }
  }
  tell(change);
}

void CircuitBreakers::tell(const std::optional<Change>& change) const {
  if (change && listener_) listener_(*change);
}

}  // namespace calm
