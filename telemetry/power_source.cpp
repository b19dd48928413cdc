#include "telemetry/power_source.hpp"

#include <algorithm>

namespace attnscope {

const char* device_kind_name(DeviceKind kind) { return kind == DeviceKind::kGpu ? "gpu" : "cpu"; }

void set_counter_read_policy(SourceStatus& status, double read_seconds) {
  status.counter_read_s = read_seconds;
  status.counter_read_by_caller = read_seconds <= kMaxEdgeCounterReadSeconds;
  if (sampler_reads_counter(status))
    status.counter_poll_s = std::max({status.counter_resolution_s.value_or(0), read_seconds / kMaxCounterPollCpuShare,
                                      coarse_counter(status) ? kCoarseCounterPollSeconds : 0.0});
  else
    status.counter_poll_s.reset();
}

bool coarse_counter(const SourceStatus& status) {
  return status.has_energy_counter && status.counter_resolution_s.value_or(0) >= kCoarseCounterSeconds;
}

bool sampler_reads_counter(const SourceStatus& status) {
  return status.has_energy_counter && (!status.counter_read_by_caller || coarse_counter(status));
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
