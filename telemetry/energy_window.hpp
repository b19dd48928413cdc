// What an energy window reports, and how each source's figure is chosen. A window has
// a name and two edges (like Zeus's begin_window/end_window); for every available
// source it keeps both figures that exist — the checked counter's difference and the
// sampled integral — and picks one:
//   counter  when the source has a counter and none of the flags below is raised;
//   sampled  otherwise, provided the samples are independent of a stale counter;
//   none     (joules absent) when nothing trustworthy is left.
// Flags: glitch_rejected (a counter reading in the window was rejected, so the counter
// difference misses energy), stale_counter (at the window's end the counter had not
// advanced for several of its update periods while the device drew power),
// shorter_than_counter_resolution (the window is shorter than one counter update, e.g.
// < 100 ms for NVML, so the counter alone cannot measure it), and counter_too_coarse
// (the counter's granularity could put the window's figure off by more than
// kCounterTolerance: the counter moves in steps of one update, and where its readings
// were taken away from the window's edges — see SourceStatus::counter_read_at_window_edges
// — each edge is uncertain by that gap as well; so the worst-case error is
// (resolution + gap at begin + gap at end) / duration).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "telemetry/power_source.hpp"
#include "telemetry/sampler.hpp"

namespace attnscope {

enum class EnergyMethod { kCounter, kSampled, kNone };
const char* energy_method_name(EnergyMethod method);  // "counter", "sampled", "none"

// A counter that has shown no advance for this many of its update periods, and for at
// least kStaleAfterSeconds (so that a fast counter read by a descheduled thread is not
// called stale), is stale.
constexpr double kStaleAfterCounterUpdates = 3;
constexpr double kStaleAfterSeconds = 0.25;
// Below this mean sampled power a device counts as idle, and a still counter is no fault.
constexpr double kBusyWatts = 1.0;
// The largest worst-case quantization error accepted from a counter.
constexpr double kCounterTolerance = 0.05;

struct WindowFlags {
  bool glitch_rejected = false;
  bool stale_counter = false;
  bool shorter_than_counter_resolution = false;
  bool counter_too_coarse = false;
  std::string describe() const;  // the raised flags' names, space-separated; "" when none
};

struct SourceEnergy {
  std::string source;  // SourceStatus::name
  DeviceKind device = DeviceKind::kGpu;
  EnergyMethod method = EnergyMethod::kNone;
  std::optional<double> joules;          // the chosen figure
  std::optional<double> counter_joules;  // checked counter difference, where there is a counter
  std::optional<double> sampled_joules;  // trapezoid integral of the series
  std::optional<double> mean_watts;      // joules / duration
  std::optional<double> peak_watts;      // highest sampled power in the window
  std::optional<uint64_t> peak_memory_used_bytes;  // vendor-reported device memory, peak of samples
  size_t samples = 0;                    // series samples inside the window
  WindowFlags flags;

  // (counter − sampled) / sampled where both exist and sampled > 0.
  std::optional<double> disagreement() const;
};

struct WindowResult {
  std::string name;
  double begin_s = 0;  // TelemetryClock seconds
  double end_s = 0;
  std::vector<SourceEnergy> sources;  // one per available source
  double cpu_user_s = 0;              // this process, over the window
  double cpu_system_s = 0;
  uint64_t peak_rss_bytes = 0;        // the process's peak resident set, at the window's end

  double duration_s() const { return end_s - begin_s; }
  double cpu_seconds() const { return cpu_user_s + cpu_system_s; }
  double cpu_utilization() const;  // cpu_seconds / duration: cores busy on average

  // The first available source of that kind (a GPU is NVML or amdgpu, never both);
  // nullptr when there is none.
  const SourceEnergy* gpu() const { return first(DeviceKind::kGpu); }
  const SourceEnergy* cpu() const { return first(DeviceKind::kCpu); }
  const SourceEnergy* first(DeviceKind device) const;
};

// The counter readings at a window's edges.
struct CounterWindow {
  CounterSnapshot begin;
  CounterSnapshot end;
};

// One source's figures for the window [begin_s, end_s], chosen as the header describes.
SourceEnergy window_energy(const SourceStatus& status, double begin_s, double end_s,
                           const std::optional<CounterWindow>& counter, const SeriesFigures& sampled);

}  // namespace attnscope
