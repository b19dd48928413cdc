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
  // Every window edge has a counter reading of its own. The caller's thread takes it
  // when a read is cheap; otherwise the sampler takes it on request, so that the
  // caller never waits for the read (telemetry.hpp).
  bool counter_read_by_caller = true;
  // The sampler reads the counter between windows at least every counter_poll_s (and a
  // coarse one also in probes that time its updates, sampler.hpp). Absent where the
  // sampler does not read the counter (a cheap, fine-grained one: RAPL).
  std::optional<double> counter_poll_s;
  // True when the sampled power comes from a reading of its own, not from differences
  // of the energy counter (RAPL): only then can it stand in for a stale counter.
  bool power_independent_of_counter = true;
  // Set when the power reading is itself a moving average over about this many seconds
  // (NVML's nvmlDeviceGetPowerUsage fallback, amdgpu's power1_average): the sampled
  // energy of a window much shorter than that is smeared across its edges, and such
  // windows are flagged averaged_power (energy_window.hpp).
  std::optional<double> power_averaging_s;
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
  double time_s = 0;       // the middle of the read call
  double read_s = 0;       // how long the call took: the value was taken within time_s ± read_s / 2
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

// A counter read costing more than this is not done on the caller's thread at window
// edges, which must stay cheap: the sampler takes the edge's reading instead...
constexpr double kMaxEdgeCounterReadSeconds = 200e-6;
// ...and between windows reads it at most this share of one core, no more often than
// the counter updates.
constexpr double kMaxCounterPollCpuShare = 0.01;
// A counter that updates less often than this is coarse: a reading stands for the
// counter's last update, up to one update period before the read, so the sampler times
// its updates (counter_timeline.hpp) and windows attribute energy to their edges.
constexpr double kCoarseCounterSeconds = 0.01;
// Window edges have readings of their own and probes time a coarse counter's updates;
// the sampler's other reads of it only keep its checks going, and come this seldom.
constexpr double kCoarseCounterPollSeconds = 0.5;

// Sets counter_read_s, counter_read_by_caller and counter_poll_s from the measured cost
// of one read (status.counter_resolution_s must be set).
void set_counter_read_policy(SourceStatus& status, double read_seconds);

// Whether the sampler reads this source's counter: at window edges (an expensive read)
// or to time its updates (a coarse counter).
bool sampler_reads_counter(const SourceStatus& status);
// Whether the counter updates too seldom for a reading to stand for the moment it was taken.
bool coarse_counter(const SourceStatus& status);

// What detection found: the status always, the source when available.
struct DetectedSource {
  SourceStatus status;
  std::unique_ptr<PowerSource> source;
};

// An unavailable source's entry.
DetectedSource unavailable_source(std::string name, DeviceKind device, std::string reason);

}  // namespace attnscope
