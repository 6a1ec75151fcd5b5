// EnergyMeter: a source of energy readings for the MAPE-K loop's Monitor step
// (the paper's per-request energy). One meter stands for the whole machine
// part it measures (CPU packages, GPUs, or an estimate); energy_attributor.h
// shares it out among the requests in flight.
//
// Implementations: rapl_meter.h (Linux powercap), nvml_meter.h (NVIDIA GPUs),
// cpu_time_meter.h (an estimate from CPU time); make_energy_meter.h picks one.
#pragma once

#include <string>

namespace calm {

class EnergyMeter {
 public:
  virtual ~EnergyMeter() = default;
  // What the readings come from: "rapl", "nvml", "cpu-time-estimate".
  // Thread-safe.
  virtual std::string source() const = 0;
  // Joules used since the meter was created: a cumulative counter that never
  // decreases. Thread-safe.
  virtual double joules_total() = 0;
};

}  // namespace calm
