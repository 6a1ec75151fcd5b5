// EnergyAttributor: shares one meter's energy out among the requests in
// flight, fairly, so that each request gets its own joules (the per-request
// energy the Monitor step reports).
//
// An accumulator A integrates, over time, the meter's energy divided by the
// number of requests in flight. On every begin() and end() the meter is read
// and the energy since the previous reading is added to A divided by the
// number in flight before the change (energy used while nothing was in
// flight is idle energy and goes to no one). A request gets A(at its end) -
// A(at its begin). So two requests that overlap fully get half each of their
// common interval's energy, a lone request gets all of its interval's, and
// the requests' shares add up to the energy metered while any was in flight.
//
// The split is even, not by work done: a request that waits in the engine
// while another computes still gets its share of that interval.
//
// Thread-safe: one mutex, O(1) per call (plus one meter read).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "meters/energy_meter.h"

namespace calm {

class EnergyAttributor {
 public:
  // `meter` must outlive the attributor. Reads it once.
  explicit EnergyAttributor(EnergyMeter& meter);

  // A request starts: returns its token. Thread-safe.
  uint64_t begin();
  // The request ends: returns the joules attributed to it. Throws
  // std::invalid_argument for a token that is not in flight. Thread-safe.
  double end(uint64_t token);

  std::string source() const { return meter_.source(); }  // thread-safe
  int in_flight() const;                                  // thread-safe

 private:
  void advance_locked();  // reads the meter into accumulator_

  EnergyMeter& meter_;
  mutable std::mutex mutex_;
  double last_joules_ = 0;                           // guarded by mutex_
  double accumulator_ = 0;                           // A; guarded by mutex_
  uint64_t next_token_ = 1;                          // guarded by mutex_
  std::unordered_map<uint64_t, double> started_at_;  // token -> A at begin; guarded by mutex_
};

}  // namespace calm
