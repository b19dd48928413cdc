#include "telemetry/energy_window.hpp"

#include <algorithm>
#include <cmath>

namespace attnscope {

const char* energy_method_name(EnergyMethod method) {
  switch (method) {
    case EnergyMethod::kCounter: return "counter";
    case EnergyMethod::kSampled: return "sampled";
    case EnergyMethod::kNone: break;
  }
  return "none";
}

std::string WindowFlags::describe() const {
  std::string text;
  auto add = [&text](bool raised, const char* name) {
    if (raised) text += (text.empty() ? "" : " ") + std::string(name);
  };
  add(glitch_rejected, "glitch_rejected");
  add(stale_counter, "stale_counter");
  add(shorter_than_counter_resolution, "shorter_than_counter_resolution");
  add(counter_too_coarse, "counter_too_coarse");
  add(averaged_power, "averaged_power");
  return text;
}

std::optional<double> SourceEnergy::disagreement() const {
  if (!counter_joules || !sampled_joules || *sampled_joules <= 0) return std::nullopt;
  return (*counter_joules - *sampled_joules) / *sampled_joules;
}

double WindowResult::cpu_utilization() const {
  double duration = duration_s();
  return duration > 0 ? cpu_seconds() / duration : 0;
}

const SourceEnergy* WindowResult::first(DeviceKind device) const {
  for (const SourceEnergy& source : sources)
    if (source.device == device) return &source;
  return nullptr;
}

CounterEdge counter_edge_at_reading(const CounterSnapshot& reading) {
  return CounterEdge{reading, reading.time_s, 0.5 * reading.read_s, 0};
}

bool counter_usable_for(const SourceStatus& status, double duration_s) {
  return status.has_energy_counter && status.counter_resolution_s.value_or(0) <= kCounterTolerance * duration_s;
}

namespace {

// Whether the counter stopped: by the window's end it had not advanced for several of
// its updates (also when it stopped partway through the window), and — where the
// samples are independent of the counter — the device drew power over the window.
bool counter_is_stale(const SourceStatus& status, double duration_s, const CounterSnapshot& end,
                      const SeriesFigures& sampled) {
  double still_for = end.time_s - end.last_advance_s;
  double threshold = std::max(kStaleAfterCounterUpdates * status.counter_resolution_s.value_or(0), kStaleAfterSeconds);
  if (still_for < threshold) return false;
  if (!status.power_independent_of_counter) return true;
  return sampled.joules && duration_s > 0 && *sampled.joules / duration_s >= kBusyWatts;
}

// The counter figure's worst-case error, as time: up to one update period bridged by
// the samples, the uncertainty of both updates' times, and whatever more than a period
// separates an update from its edge (a reading taken away from the edge).
double counter_uncertainty_s(double resolution_s, double begin_s, double end_s, const CounterWindow& counter) {
  auto beyond = [resolution_s](double edge_s, const CounterEdge& e) {
    return std::max(0.0, std::abs(edge_s - e.update_s) - resolution_s);
  };
  return resolution_s + counter.begin.uncertainty_s + counter.end.uncertainty_s + beyond(begin_s, counter.begin) +
         beyond(end_s, counter.end);
}

}  // namespace

SourceEnergy window_energy(const SourceStatus& status, double begin_s, double end_s,
                           const std::optional<CounterWindow>& counter, const SeriesFigures& sampled) {
  double duration_s = end_s - begin_s;
  double resolution_s = status.counter_resolution_s.value_or(0);
  SourceEnergy energy;
  energy.source = status.name;
  energy.device = status.device;
  energy.sampled_joules = sampled.joules;
  energy.peak_watts = sampled.peak_watts;
  energy.peak_memory_used_bytes = sampled.peak_memory_used_bytes;
  energy.samples = sampled.samples_inside;
  WindowFlags& f = energy.flags;
  if (status.has_energy_counter) {
    f.shorter_than_counter_resolution = duration_s < resolution_s;
    f.counter_too_coarse = !f.shorter_than_counter_resolution && !counter_usable_for(status, duration_s);
  }
  if (counter) {
    const CounterSnapshot& b = counter->begin.reading;
    const CounterSnapshot& e = counter->end.reading;
    energy.counter_bridge_joules = counter->end.bridge_joules - counter->begin.bridge_joules;
    energy.counter_joules = e.joules - b.joules + *energy.counter_bridge_joules;
    energy.counter_read_begin_s = b.time_s;
    energy.counter_read_end_s = e.time_s;
    energy.counter_update_begin_s = counter->begin.update_s;
    energy.counter_update_end_s = counter->end.update_s;
    energy.counter_uncertainty_s = counter_uncertainty_s(resolution_s, begin_s, end_s, *counter);
    f.glitch_rejected = e.glitches > b.glitches;
    f.stale_counter = counter_is_stale(status, duration_s, e, sampled);
    f.counter_too_coarse = !f.shorter_than_counter_resolution &&
                           *energy.counter_uncertainty_s > kCounterTolerance * duration_s;
  }
  f.averaged_power = status.power_averaging_s && duration_s < kAveragedPowerWindows * *status.power_averaging_s;
  bool counter_trusted = counter && !f.glitch_rejected && !f.stale_counter && !f.shorter_than_counter_resolution &&
                         !f.counter_too_coarse;
  // Samples derived from a stale counter are as stale as it is.
  bool samples_trusted = sampled.joules && !(f.stale_counter && !status.power_independent_of_counter);
  if (counter_trusted) {
    energy.method = EnergyMethod::kCounter;
    energy.joules = energy.counter_joules;
  } else if (samples_trusted) {
    energy.method = EnergyMethod::kSampled;
    energy.joules = energy.sampled_joules;
  }
  if (energy.joules && duration_s > 0) energy.mean_watts = *energy.joules / duration_s;
  return energy;
}

}  // namespace attnscope
