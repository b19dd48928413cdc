// What every telemetry source provides: its detection status (available or not, and
// why), samples for the power time series, and — where the hardware has one — a checked
// energy counter. Detection builds a source only when it is available; an unavailable
// source exists only as its SourceStatus.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "telemetry/telemetry_clock.hpp"

namespace attnscope {

enum class DeviceKind { kGpu, kCpu };
const char* device_kind_name(DeviceKind kind);  // "gpu", "cpu"

struct SourceStatus {
  std::string name;  // "nvml", "amdgpu", "rapl"
  DeviceKind device = DeviceKind::kGpu;
  bool available = false;
  std::string detail;        // why it is unavailable, or what was found (device, zones, units)
  std::string power_method;  // how power is read, e.g. "NVML_FI_DEV_POWER_INSTANT (instantaneous)"
  bool has_energy_counter = false;
  std::optional<double> counter_resolution_s;  // how often the counter updates
  std::optional<double> counter_read_s;        // what one counter read cost at detection
  // Window edges read the counter themselves when a read is cheap; otherwise they take
  // the latest reading, which the sampler refreshes every counter_poll_s.
  bool counter_read_at_window_edges = true;
  std::optional<double> counter_poll_s;
  // True when the sampled power comes from a reading of its own, not from differences
  // of the energy counter (RAPL): only then can it stand in for a stale counter.
  bool power_independent_of_counter = true;
  std::optional<double> max_plausible_watts;   // the bound counter steps are checked against
  std::vector<std::string> metrics;            // extra series columns it fills: "memory_used", ...
  uint64_t failed_reads = 0;                   // reads that failed after detection
};

// One point of the power time series. Absent fields were not available, never 0.
struct PowerSample {
  double time_s = 0;  // TelemetryClock seconds
  double watts = 0;
  std::optional<uint64_t> memory_used_bytes;    // vendor-reported device memory in use
  std::optional<double> utilization_percent;    // share of time the device was busy
  std::optional<double> clock_mhz;              // SM / shader clock
  std::optional<double> temperature_c;
};

// The checked counter's state at one reading.
struct CounterSnapshot {
  double time_s = 0;
  double joules = 0;       // accepted energy since the source was created
  uint64_t glitches = 0;   // rejected readings so far
  uint64_t advances = 0;   // accepted readings with a new value so far
  double last_advance_s = 0;  // when the counter last showed a new value
};

class PowerSource {
 public:
  virtual ~PowerSource() = default;
  virtual const SourceStatus& status() const = 0;

  // One sample for the series; called by the sampler thread only. nullopt when the read
  // failed (counted in failed_reads()) or, for counter-derived power, when there is not
  // yet an interval to derive it over.
  virtual std::optional<PowerSample> sample(const TelemetryClock& clock) = 0;

  // Reads the energy counter now (one counter read, no other I/O); nullopt when the
  // source has no counter or the read failed. Safe to call from any thread, concurrently
  // with sample().
  virtual std::optional<CounterSnapshot> read_counter(const TelemetryClock& clock) {
    (void)clock;
    return std::nullopt;
  }

  // The latest successful counter reading, by anyone; no I/O. nullopt before the first.
  virtual std::optional<CounterSnapshot> latest_counter() const { return std::nullopt; }

  uint64_t failed_reads() const { return failed_reads_.load(); }

 protected:
  void count_failed_read() { failed_reads_.fetch_add(1); }

 private:
  std::atomic<uint64_t> failed_reads_{0};
};

// A counter read costing more than this is not done at window edges, which must stay cheap...
constexpr double kMaxEdgeCounterReadSeconds = 200e-6;
// ...the sampler reads it in the background instead, spending at most this share of one
// core on it, and no more often than the counter updates.
constexpr double kMaxCounterPollCpuShare = 0.01;

// Sets counter_read_s, counter_read_at_window_edges and counter_poll_s from the
// measured cost of one read (status.counter_resolution_s must be set).
void set_counter_read_policy(SourceStatus& status, double read_seconds);

// What detection found: the status always, the source when available.
struct DetectedSource {
  SourceStatus status;
  std::unique_ptr<PowerSource> source;
};

// An unavailable source's entry.
DetectedSource unavailable_source(std::string name, DeviceKind device, std::string reason);

}  // namespace attnscope
