// An energy counter read by software is checked, not trusted. Vendor counters have been
// seen stepping backwards, jumping, and freezing; RAPL counters wrap. Each reading is
// compared with the last accepted one:
//   - a step forwards is accepted when the power it implies is plausible;
//   - a step backwards is a wrap when the counter has a wrap range and the implied
//     power is plausible, otherwise it is rejected;
//   - a rejected reading is counted as a glitch and the baseline is kept, so a one-off
//     bad value costs nothing; if the next reading continues plausibly from the
//     rejected one instead (a persistent jump or reset), the counter is rebased there
//     and only the energy across the jump is lost (the window then falls back to the
//     sampled figure, since its glitch count moved).
// A frozen counter is not detectable here (it looks like zero power); windows detect it
// from last_advance_s() and the sampled power.
#pragma once
#include <cstdint>
#include <optional>

namespace attnscope {

struct CounterSpec {
  double joules_per_unit = 1e-3;        // NVML counts mJ, RAPL µJ
  std::optional<uint64_t> wrap_range;   // the counter runs over [0, wrap_range) (RAPL max_energy_range_uj)
  double max_plausible_watts = 1000;    // a step implying more is a glitch
  double resolution_s = 0.1;            // how often the hardware updates the counter
};

class CheckedCounter {
 public:
  explicit CheckedCounter(CounterSpec spec) : spec_(spec) {}

  // One raw reading taken at time_s. Readings must arrive in time order.
  void feed(uint64_t raw, double time_s);

  double joules() const { return joules_; }         // accepted energy since the first reading
  uint64_t glitches() const { return glitches_; }   // readings rejected
  uint64_t advances() const { return advances_; }   // readings accepted with a new value
  double last_advance_s() const { return last_advance_s_; }  // when one was last seen (first reading: then)
  const CounterSpec& spec() const { return spec_; }

 private:
  // A value the counter was seen to hold, and the last time it was seen holding the
  // value before it: the energy from here to the next value accumulated after that
  // time, so (now − previous_seen_s) bounds the accumulation span from above.
  struct Reference {
    uint64_t raw;
    double previous_seen_s;
  };

  std::optional<double> plausible_step_joules(const Reference& from, uint64_t raw, double time_s) const;
  void accept(uint64_t raw, double time_s, double step_joules);

  CounterSpec spec_;
  std::optional<Reference> baseline_;
  std::optional<Reference> rejected_;  // the last rejected reading, a rebase candidate
  double baseline_last_seen_s_ = 0;
  double joules_ = 0;
  uint64_t glitches_ = 0;
  uint64_t advances_ = 0;
  double last_advance_s_ = 0;
};

}  // namespace attnscope
