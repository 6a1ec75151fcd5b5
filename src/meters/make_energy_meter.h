// make_energy_meter: picks the energy meter for this machine, best first:
// NVML (the GPUs), then RAPL (the CPU packages), then the CPU-time estimate,
// which is always available. A named meter is used or fails loudly, so that
// a configuration asking for measured energy never silently gets an estimate.
#pragma once

#include <memory>
#include <string>

#include "meters/cpu_time_meter.h"
#include "meters/energy_meter.h"

namespace calm {

struct EnergyMeterOptions {
  std::string prefer = "auto";                                 // auto | nvml | rapl | cpu-time
  double watts_per_core = CpuTimeMeter::kDefaultWattsPerCore;  // for cpu-time
  std::string powercap_root;                                   // empty: /sys/class/powercap
  std::string nvml_library;  // empty: libnvidia-ml.so.1 (set by tests)
};

// Throws std::runtime_error for an unknown `prefer`, or a named meter that is
// not available here (saying why), and std::invalid_argument for a bad
// watts_per_core. Thread-safe.
std::unique_ptr<EnergyMeter> make_energy_meter(const EnergyMeterOptions& options);

}  // namespace calm
