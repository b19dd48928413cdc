#include "telemetry/power_source.hpp"

#include <algorithm>

namespace attnscope {

const char* device_kind_name(DeviceKind kind) { return kind == DeviceKind::kGpu ? "gpu" : "cpu"; }

void set_counter_read_policy(SourceStatus& status, double read_seconds) {
  status.counter_read_s = read_seconds;
  status.counter_read_at_window_edges = read_seconds <= kMaxEdgeCounterReadSeconds;
  if (status.counter_read_at_window_edges)
    status.counter_poll_s.reset();
  else
    status.counter_poll_s = std::max(status.counter_resolution_s.value_or(0), read_seconds / kMaxCounterPollCpuShare);
}

DetectedSource unavailable_source(std::string name, DeviceKind device, std::string reason) {
  DetectedSource detected;
  detected.status.name = std::move(name);
  detected.status.device = device;
  detected.status.available = false;
  detected.status.detail = std::move(reason);
  return detected;
}

}  // namespace attnscope
