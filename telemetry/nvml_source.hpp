// NVIDIA GPU telemetry through NVML (see nvml_api.hpp for the loading). The device is
// found by PCI bus id with nvmlDeviceGetHandleByPciBusId_v2, never by index (NVML and
// OpenCL may enumerate GPUs in different orders).
//   energy: nvmlDeviceGetTotalEnergyConsumption (mJ since driver load, Volta and newer),
//           checked against the enforced power limit times a margin; it advances about
//           every 100 ms.
//   power:  NVML_FI_DEV_POWER_INSTANT through nvmlDeviceGetFieldValues where the driver
//           has it; otherwise nvmlDeviceGetPowerUsage, which on Ampere and newer is a
//           1-second moving average (SourceStatus::power_method says which).
//   also:   memory used, GPU utilization, SM clock, temperature, where supported.
#pragma once
#include <string>

#include "telemetry/power_source.hpp"

namespace attnscope {

// Counter steps are rejected above the enforced power limit times this margin: real
// draw overshoots the limit only briefly, a glitch implies far more.
constexpr double kNvmlPowerLimitMargin = 2.0;
// The bound when the driver does not report the enforced limit: above any current board.
constexpr double kNvmlFallbackMaxPlausibleWatts = 4000;
constexpr double kNvmlCounterResolutionSeconds = 0.1;
// nvmlDeviceGetPowerUsage, the fallback power reading, averages over this long (Ampere and newer).
constexpr double kNvmlAveragePowerSeconds = 1.0;

DetectedSource detect_nvml(const std::string& pci_bus_id, const std::string& library_file);

}  // namespace attnscope
