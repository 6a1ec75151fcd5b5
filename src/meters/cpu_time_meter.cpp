#include "meters/cpu_time_meter.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace calm {
namespace {

double process_cpu_seconds() {
  timespec ts{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double checked_watts(double watts_per_core) {
  if (!std::isfinite(watts_per_core) || watts_per_core < 0) {
    throw std::invalid_argument("watts per core must be a finite number >= 0, not " +
                                std::to_string(watts_per_core));
  }
  return watts_per_core;
}

}  // namespace

CpuTimeMeter::CpuTimeMeter(double watts_per_core)
    : watts_per_core_(checked_watts(watts_per_core)), start_cpu_seconds_(process_cpu_seconds()) {}

double CpuTimeMeter::joules_total() {
  // The process's CPU clock never goes back, so neither does this.
  return std::max(0.0, process_cpu_seconds() - start_cpu_seconds_) * watts_per_core_;
}

}  // namespace calm
