// CpuTimeMeter: an estimate of energy for machines without a real meter:
// this process's CPU time (all its threads) times a power figure per busy
// core. It is an estimate, not a measurement: it ignores idle power, other
// processes, memory and any GPU, and the true power of a busy core varies
// with the CPU, its clock and the work. Good for comparing models on one
// machine, not for absolute joules.
#pragma once

#include "meters/energy_meter.h"

namespace calm {

class CpuTimeMeter : public EnergyMeter {
 public:
  // A rough per-core share of a server CPU's TDP: e.g. 250-300 W over 16-20
  // cores, or a 65 W desktop part over 4 cores. An estimate; configure it
  // for the machine when it is known.
  static constexpr double kDefaultWattsPerCore = 15.0;

  // Throws std::invalid_argument unless watts_per_core is finite and >= 0.
  explicit CpuTimeMeter(double watts_per_core = kDefaultWattsPerCore);

  std::string source() const override { return "cpu-time-estimate"; }
  // CPU seconds used by the process since the meter was created, times the
  // watts per core. Thread-safe.
  double joules_total() override;
  double watts_per_core() const { return watts_per_core_; }  // thread-safe

 private:
  const double watts_per_core_;
  const double start_cpu_seconds_;
};

}  // namespace calm
