#include "meters/nvml_meter.h"

#include <dlfcn.h>

namespace calm {
namespace {

// The few NVML declarations used (nvml.h is not needed to build).
using nvmlReturn_t = int;
constexpr nvmlReturn_t NVML_SUCCESS = 0;
using nvmlDevice_t = void*;  // struct nvmlDevice_st*
using InitFn = nvmlReturn_t (*)();
using ShutdownFn = nvmlReturn_t (*)();
using ErrorStringFn = const char* (*)(nvmlReturn_t);
using GetCountFn = nvmlReturn_t (*)(unsigned int*);
using GetHandleFn = nvmlReturn_t (*)(unsigned int, nvmlDevice_t*);
using GetEnergyFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned long long*);  // mJ

}  // namespace

struct NvmlMeter::Api {
  InitFn init = nullptr;
  ShutdownFn shutdown = nullptr;
  ErrorStringFn error_string = nullptr;
  GetCountFn get_count = nullptr;
  GetHandleFn get_handle = nullptr;
  GetEnergyFn get_energy = nullptr;

  std::string error(const std::string& call, nvmlReturn_t rc) const {
    const char* text = error_string != nullptr ? error_string(rc) : nullptr;
    return call + " failed: " + (text != nullptr ? text : "NVML error " + std::to_string(rc));
  }
};

std::unique_ptr<NvmlMeter> NvmlMeter::open(const std::string& library, std::string* why_not) {
  auto fail = [&](std::string reason) -> std::unique_ptr<NvmlMeter> {
    if (why_not != nullptr) *why_not = "NVML: " + std::move(reason);
    return nullptr;
  };
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    return fail("cannot load " + library + (error != nullptr ? ": " + std::string(error) : ""));
  }
  auto api = std::make_unique<Api>();
  auto symbol = [&](const char* name) { return dlsym(handle, name); };
  api->init = reinterpret_cast<InitFn>(symbol("nvmlInit_v2"));
  api->shutdown = reinterpret_cast<ShutdownFn>(symbol("nvmlShutdown"));
  api->error_string = reinterpret_cast<ErrorStringFn>(symbol("nvmlErrorString"));
  api->get_count = reinterpret_cast<GetCountFn>(symbol("nvmlDeviceGetCount_v2"));
  api->get_handle = reinterpret_cast<GetHandleFn>(symbol("nvmlDeviceGetHandleByIndex_v2"));
  api->get_energy = reinterpret_cast<GetEnergyFn>(symbol("nvmlDeviceGetTotalEnergyConsumption"));
  if (api->init == nullptr || api->shutdown == nullptr || api->get_count == nullptr ||
      api->get_handle == nullptr || api->get_energy == nullptr) {
    dlclose(handle);
    return fail(library + " lacks an entry point (driver too old?)");
  }
  if (nvmlReturn_t rc = api->init(); rc != NVML_SUCCESS) {
    std::string reason = api->error("nvmlInit_v2", rc);  // before the library goes
    dlclose(handle);
    return fail(std::move(reason));
  }
  // From here on, NVML is shut down on failure.
  auto shut = [&](std::string reason) {
    api->shutdown();
    dlclose(handle);
    return fail(std::move(reason));
  };
  unsigned int count = 0;
  if (nvmlReturn_t rc = api->get_count(&count); rc != NVML_SUCCESS) {
    return shut(api->error("nvmlDeviceGetCount_v2", rc));
  }
  if (count == 0) return shut("no GPU");
  std::vector<Device> devices;
  for (unsigned int i = 0; i < count; ++i) {
    Device device;
    if (nvmlReturn_t rc = api->get_handle(i, &device.handle); rc != NVML_SUCCESS) {
      return shut(api->error("nvmlDeviceGetHandleByIndex_v2(" + std::to_string(i) + ")", rc));
    }
    unsigned long long mj = 0;
    if (nvmlReturn_t rc = api->get_energy(device.handle, &mj); rc != NVML_SUCCESS) {
      return shut(api->error("nvmlDeviceGetTotalEnergyConsumption(" + std::to_string(i) + ")", rc));
    }
    device.last_mj = mj;
    devices.push_back(device);
  }
  return std::unique_ptr<NvmlMeter>(new NvmlMeter(handle, std::move(api), std::move(devices)));
}

NvmlMeter::NvmlMeter(void* library, std::unique_ptr<Api> api, std::vector<Device> devices)
    : library_(library), api_(std::move(api)), devices_(std::move(devices)) {}

NvmlMeter::~NvmlMeter() {
  api_->shutdown();
  dlclose(library_);
}

double NvmlMeter::joules_total() {
  std::lock_guard lock(mutex_);
  for (Device& device : devices_) {
    unsigned long long mj = 0;
    if (api_->get_energy(device.handle, &mj) != NVML_SUCCESS) continue;
    // The counter starts again from 0 when the driver reloads.
    total_mj_ += mj >= device.last_mj ? mj - device.last_mj : mj;
    device.last_mj = mj;
  }
  return static_cast<double>(total_mj_) * 1e-3;
}

}  // namespace calm
