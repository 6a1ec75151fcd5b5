// NvmlMeter: the energy of every NVIDIA GPU on the machine, from NVML's
// per-device total energy counter (millijoules since the driver loaded;
// Volta and later).
//
// libnvidia-ml.so.1 is loaded at run time (dlopen), so calm builds and runs
// without the NVIDIA driver or headers; open() says whether it is usable here.
// Measures the GPUs only, not the CPUs that feed them.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "meters/energy_meter.h"

namespace calm {

class NvmlMeter : public EnergyMeter {
 public:
  static constexpr const char* kDefaultLibrary = "libnvidia-ml.so.1";

  // A meter over all GPUs, or nullptr when the library cannot be loaded, NVML
  // does not start, there is no GPU, or a GPU cannot report its energy (then
  // `why_not`, if given, says why). `library` is for tests.
  static std::unique_ptr<NvmlMeter> open(const std::string& library = kDefaultLibrary,
                                         std::string* why_not = nullptr);
  ~NvmlMeter() override;  // nvmlShutdown, then unloads the library
  NvmlMeter(const NvmlMeter&) = delete;
  NvmlMeter& operator=(const NvmlMeter&) = delete;

  std::string source() const override { return "nvml"; }
  // Thread-safe. A GPU that cannot be read this time adds nothing until it
  // can be read again.
  double joules_total() override;
  size_t device_count() const { return devices_.size(); }  // thread-safe

 private:
  struct Api;  // the NVML entry points
  struct Device {
    void* handle = nullptr;  // nvmlDevice_t
    uint64_t last_mj = 0;    // the previous reading
  };
  NvmlMeter(void* library, std::unique_ptr<Api> api, std::vector<Device> devices);

  void* const library_;  // dlopen handle
  const std::unique_ptr<Api> api_;
  std::mutex mutex_;
  std::vector<Device> devices_;  // set in the constructor; last_mj guarded by mutex_
  uint64_t total_mj_ = 0;        // guarded by mutex_
};

}  // namespace calm
