#include "telemetry/nvml_api.hpp"

#include <dlfcn.h>

namespace attnscope::nvml {
namespace {

template <typename Function>
bool bind(void* handle, const char* symbol, Function*& slot) {
  slot = reinterpret_cast<Function*>(dlsym(handle, symbol));
  return slot != nullptr;
}

}  // namespace

std::string Api::error_string(Return status) const {
  const char* text = ErrorString ? ErrorString(status) : nullptr;
  return std::string(text ? text : "unknown NVML error") + " (" + std::to_string(status) + ")";
}

std::unique_ptr<Library> Library::open(const std::string& file_name, std::string* reason) {
  void* handle = dlopen(file_name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* error = dlerror();
    *reason = "dlopen(" + file_name + ") failed: " + (error ? error : "unknown error") +
              " (is the NVIDIA driver installed?)";
    return nullptr;
  }
  Api api{};
  const char* missing = nullptr;
  if (!bind(handle, "nvmlInit_v2", api.Init_v2)) missing = "nvmlInit_v2";
  else if (!bind(handle, "nvmlShutdown", api.Shutdown)) missing = "nvmlShutdown";
  else if (!bind(handle, "nvmlErrorString", api.ErrorString)) missing = "nvmlErrorString";
  else if (!bind(handle, "nvmlDeviceGetHandleByPciBusId_v2", api.DeviceGetHandleByPciBusId_v2))
    missing = "nvmlDeviceGetHandleByPciBusId_v2";
  else if (!bind(handle, "nvmlDeviceGetPowerUsage", api.DeviceGetPowerUsage)) missing = "nvmlDeviceGetPowerUsage";
  else if (!bind(handle, "nvmlDeviceGetName", api.DeviceGetName)) missing = "nvmlDeviceGetName";
  if (missing) {
    *reason = file_name + " lacks " + missing + " (driver too old)";
    return nullptr;
  }
  bind(handle, "nvmlDeviceGetFieldValues", api.DeviceGetFieldValues);
  bind(handle, "nvmlDeviceGetTotalEnergyConsumption", api.DeviceGetTotalEnergyConsumption);
  bind(handle, "nvmlDeviceGetEnforcedPowerLimit", api.DeviceGetEnforcedPowerLimit);
  bind(handle, "nvmlDeviceGetMemoryInfo", api.DeviceGetMemoryInfo);
  bind(handle, "nvmlDeviceGetUtilizationRates", api.DeviceGetUtilizationRates);
  bind(handle, "nvmlDeviceGetClockInfo", api.DeviceGetClockInfo);
  bind(handle, "nvmlDeviceGetTemperature", api.DeviceGetTemperature);
  bind(handle, "nvmlSystemGetDriverVersion", api.SystemGetDriverVersion);
  Return status = api.Init_v2();
  if (status != kSuccess) {
    *reason = "nvmlInit_v2 failed: " + api.error_string(status);
    return nullptr;
  }
  std::unique_ptr<Library> library(new Library());
  library->api_ = api;
  return library;
}

Library::~Library() { api_.Shutdown(); }

}  // namespace attnscope::nvml
