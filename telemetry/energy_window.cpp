#include "telemetry/energy_window.hpp"

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

// Whether a counter that did not advance should have: the window spans several of its
// updates, and (where the samples are independent of the counter) the device drew power.
bool counter_is_stale(const SourceStatus& status, const CounterWindow& counter, const SeriesFigures& sampled) {
  if (counter.end.advances > counter.begin.advances) return false;
  double span = counter.end.time_s - counter.begin.time_s;
  if (span < kStaleAfterCounterUpdates * status.counter_resolution_s.value_or(0)) return false;
  if (!status.power_independent_of_counter) return true;
  return sampled.joules && span > 0 && *sampled.joules / span >= kBusyWatts;
}

}  // namespace

SourceEnergy window_energy(const SourceStatus& status, double duration_s,
                           const std::optional<CounterWindow>& counter, const SeriesFigures& sampled) {
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
    energy.flags.stale_counter = counter_is_stale(status, *counter, sampled);
    energy.flags.shorter_than_counter_resolution = duration_s < status.counter_resolution_s.value_or(0);
  }
  const WindowFlags& f = energy.flags;
  bool counter_trusted = counter && !f.glitch_rejected && !f.stale_counter && !f.shorter_than_counter_resolution;
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
