#include "telemetry/power_source.hpp"

namespace attnscope {

const char* device_kind_name(DeviceKind kind) { return kind == DeviceKind::kGpu ? "gpu" : "cpu"; }

DetectedSource unavailable_source(std::string name, DeviceKind device, std::string reason) {
  DetectedSource detected;
  detected.status.name = std::move(name);
  detected.status.device = device;
  detected.status.available = false;
  detected.status.detail = std::move(reason);
  return detected;
}

}  // namespace attnscope
