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

namespace {

// Whether the counter stopped: by the window's end it had not advanced for several of
// its updates (also when it stopped partway through the window), and — where the
// samples are independent of the counter — the device drew power over the window.
bool counter_is_stale(const SourceStatus& status, double duration_s, const CounterWindow& counter,
                      const SeriesFigures& sampled) {
  double still_for = counter.end.time_s - counter.end.last_advance_s;
  double threshold = std::max(kStaleAfterCounterUpdates * status.counter_resolution_s.value_or(0), kStaleAfterSeconds);
  if (still_for < threshold) return false;
  if (!status.power_independent_of_counter) return true;
  return sampled.joules && duration_s > 0 && *sampled.joules / duration_s >= kBusyWatts;
}

// Whether the counter's steps, and the distance of its readings from the window's
// edges, could make its figure wrong by more than kCounterTolerance.
bool counter_too_coarse(double resolution_s, double begin_s, double end_s, const CounterWindow& counter) {
  double uncertainty_s = resolution_s + std::abs(counter.begin.time_s - begin_s) + std::abs(end_s - counter.end.time_s);
  return uncertainty_s > kCounterTolerance * (end_s - begin_s);
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
  if (counter) {
    energy.counter_joules = counter->end.joules - counter->begin.joules;
    energy.flags.glitch_rejected = counter->end.glitches > counter->begin.glitches;
    energy.flags.stale_counter = counter_is_stale(status, duration_s, *counter, sampled);
    energy.flags.shorter_than_counter_resolution = duration_s < resolution_s;
    energy.flags.counter_too_coarse = !energy.flags.shorter_than_counter_resolution &&
                                      counter_too_coarse(resolution_s, begin_s, end_s, *counter);
  }
  const WindowFlags& f = energy.flags;
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
