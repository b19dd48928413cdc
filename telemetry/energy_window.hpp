// What an energy window reports, and how each source's figure is chosen. A window has
// a name and two edges (like Zeus's begin_window/end_window); for every available
// source it keeps both figures that exist — the checked counter's and the sampled
// integral — and picks one:
//   counter  when the source has a counter and none of the flags below is raised;
//   sampled  otherwise, provided the samples are independent of a stale counter;
//   none     (joules absent) when nothing trustworthy is left.
//
// The counter's figure is attributed to the window's own edges. A reading shows the
// energy up to the counter's last update before it (for NVML, up to ~100 ms before), so
// each edge's reading comes with the time of that update (counter_timeline.hpp) and the
// sampled energy between that update and the edge is added (or, where the update came
// after the edge, taken off):
//   counter = reading(end) − reading(begin) + ∫[update(end), end] P − ∫[update(begin), begin] P.
// The samples thus bridge at most about one update period in all; the rest is the
// counter's own.
//
// Flags: glitch_rejected (a counter reading in the window was rejected, so the counter
// difference misses energy), stale_counter (at the window's end the counter had not
// advanced for several of its update periods while the device drew power),
// shorter_than_counter_resolution (the window is shorter than one counter update, e.g.
// < 100 ms for NVML), counter_too_coarse (the counter's figure could be off by more than
// kCounterTolerance of the window: its worst case, as time, is one update period bridged
// by samples, plus how uncertain the two updates' times are, plus any distance of a
// reading's update from its edge beyond one period; so windows under about
// resolution / kCounterTolerance — 2 s for NVML — use the samples), and averaged_power
// (the source's power reading is itself a moving average, and the window is shorter
// than kAveragedPowerWindows of its averaging time: the sampled figure is smeared across
// the window's edges; this flag does not change the method).
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
// A moving average over A seconds lags the power by about A/2; over a window of
// duration d with the power changing at its edges, that misplaces up to about A/(2d)
// of its energy at each edge: over 5 % below d = 10 A.
constexpr double kAveragedPowerWindows = 10;

struct WindowFlags {
  bool glitch_rejected = false;
  bool stale_counter = false;
  bool shorter_than_counter_resolution = false;
  bool counter_too_coarse = false;
  bool averaged_power = false;
  std::string describe() const;  // the raised flags' names, space-separated; "" when none
};

struct SourceEnergy {
  std::string source;  // SourceStatus::name
  DeviceKind device = DeviceKind::kGpu;
  EnergyMethod method = EnergyMethod::kNone;
  std::optional<double> joules;          // the chosen figure
  std::optional<double> counter_joules;  // checked counter, attributed to the window's edges
  std::optional<double> sampled_joules;  // trapezoid integral of the series
  // How the counter's figure was made: when its edge readings were taken (the window's
  // requested edges are WindowResult::begin_s/end_s), the times of the counter updates
  // they stand for, what of counter_joules the samples bridged between those updates and
  // the window's edges, and its worst-case error as time (counter_too_coarse).
  std::optional<double> counter_read_begin_s, counter_read_end_s;
  std::optional<double> counter_update_begin_s, counter_update_end_s;
  std::optional<double> counter_bridge_joules;
  std::optional<double> counter_uncertainty_s;
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

// A counter reading serving one window edge, and what it stands for.
struct CounterEdge {
  CounterSnapshot reading;
  double update_s = 0;       // when the counter last updated before the reading: the time its value holds for
  double uncertainty_s = 0;  // ± on update_s
  double bridge_joules = 0;  // sampled energy from update_s to the window's edge (negative if the edge came first)
};
// A reading that stands for the moment it was taken, with nothing to bridge.
CounterEdge counter_edge_at_reading(const CounterSnapshot& reading);

// The counter readings at a window's edges.
struct CounterWindow {
  CounterEdge begin;
  CounterEdge end;
};

// Whether a window this long can have the counter's figure at all: one update period
// is within kCounterTolerance of it. (Shorter windows use the samples whatever the
// readings, so the sampler's edge readings are not waited for.)
bool counter_usable_for(const SourceStatus& status, double duration_s);

// One source's figures for the window [begin_s, end_s], chosen as the header describes.
// A source with a counter but no CounterWindow (no readings, or none waited for) gets
// the duration-based flags only.
SourceEnergy window_energy(const SourceStatus& status, double begin_s, double end_s,
                           const std::optional<CounterWindow>& counter, const SeriesFigures& sampled);

}  // namespace attnscope
