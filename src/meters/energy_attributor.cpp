#include "meters/energy_attributor.h"

#include <stdexcept>

namespace calm {

EnergyAttributor::EnergyAttributor(EnergyMeter& meter)
    : meter_(meter), last_joules_(meter.joules_total()) {}

void EnergyAttributor::advance_locked() {
  const double now = meter_.joules_total();
  const double delta = now > last_joules_ ? now - last_joules_ : 0.0;
  last_joules_ = now;
  if (!started_at_.empty()) accumulator_ += delta / static_cast<double>(started_at_.size());
}

uint64_t EnergyAttributor::begin() {
  std::lock_guard lock(mutex_);
  advance_locked();
  // Nothing in flight holds an old value of A: start it again from 0, so it
  // stays small and the subtraction in end() keeps its precision.
  if (started_at_.empty()) accumulator_ = 0;
  const uint64_t token = next_token_++;
  started_at_.emplace(token, accumulator_);
  return token;
}

double EnergyAttributor::end(uint64_t token) {
  std::lock_guard lock(mutex_);
  auto it = started_at_.find(token);
  if (it == started_at_.end()) {
    throw std::invalid_argument("energy: request token " + std::to_string(token) +
                                " is not in flight");
  }
  advance_locked();
  const double joules = accumulator_ - it->second;
  started_at_.erase(it);
  return joules;
}

int EnergyAttributor::in_flight() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(started_at_.size());
}

}  // namespace calm
