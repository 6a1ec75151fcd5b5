// The wall clock as unix seconds (with the fraction): the timestamps that the
// knowledge store records and the MAPE-K loop reports. Thread-safe.
#pragma once

#include <chrono>

namespace calm {

inline double unix_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace calm
