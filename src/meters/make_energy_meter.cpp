#include "meters/make_energy_meter.h"

#include <stdexcept>

#include "meters/nvml_meter.h"
#include "meters/rapl_meter.h"

namespace calm {

std::unique_ptr<EnergyMeter> make_energy_meter(const EnergyMeterOptions& options) {
  const std::string& prefer = options.prefer;
  if (prefer != "auto" && prefer != "nvml" && prefer != "rapl" && prefer != "cpu-time") {
    throw std::runtime_error("unknown energy meter '" + prefer +
                             "' (expected auto, nvml, rapl or cpu-time)");
  }
  const std::string library =
      options.nvml_library.empty() ? NvmlMeter::kDefaultLibrary : options.nvml_library;
  const std::string root =
      options.powercap_root.empty() ? RaplMeter::kDefaultRoot : options.powercap_root;
  std::string why_not;
  if (prefer == "auto" || prefer == "nvml") {
    if (auto meter = NvmlMeter::open(library, &why_not)) return meter;
    if (prefer == "nvml") throw std::runtime_error("energy meter 'nvml' unavailable: " + why_not);
  }
  if (prefer == "auto" || prefer == "rapl") {
    if (auto meter = RaplMeter::open(root, &why_not)) return meter;
    if (prefer == "rapl") throw std::runtime_error("energy meter 'rapl' unavailable: " + why_not);
  }
  return std::make_unique<CpuTimeMeter>(options.watts_per_core);
}

}  // namespace calm
