// AMD GPU power from the amdgpu driver's hwmon: <sysfs>/class/drm/cardN/device/hwmon/
// hwmon*/power1_average (firmware-averaged, µW), else power1_input (instantaneous, µW).
// The card is the one whose PCI address (the device symlink's target, else uevent
// PCI_SLOT_NAME) equals the OpenCL device's. VRAM used comes from device/
// mem_info_vram_used (bytes), utilization from device/gpu_busy_percent, the shader clock
// from hwmon freq1_input (Hz), temperature from hwmon temp1_input (m°C), each where present.
// amdgpu exposes no energy counter here: energy is always the sampled integral.
#pragma once
#include <filesystem>
#include <string>

#include "telemetry/power_source.hpp"

namespace attnscope {

// power1_average's averaging time is the firmware's and is not exposed; about a second
// on the cards documented (SMU power averaging), taken as this for the averaged_power flag.
constexpr double kAmdgpuAveragePowerSeconds = 1.0;

DetectedSource detect_amdgpu(const std::filesystem::path& sysfs_dir, const std::string& pci_bus_id);

}  // namespace attnscope
