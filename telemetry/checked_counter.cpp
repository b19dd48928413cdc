#include "telemetry/checked_counter.hpp"

#include <algorithm>

namespace attnscope {

void CheckedCounter::feed(uint64_t raw, double time_s) {
  if (!baseline_) {
    // The counter's last update before the first reading is at most one resolution ago.
    baseline_ = Reference{raw, time_s - spec_.resolution_s};
    baseline_last_seen_s_ = time_s;
    last_advance_s_ = time_s;
    return;
  }
  if (raw == baseline_->raw) {
    baseline_last_seen_s_ = time_s;
    rejected_.reset();
    return;
  }
  if (auto step = plausible_step_joules(*baseline_, raw, time_s)) {
    accept(raw, time_s, *step);
    return;
  }
  if (rejected_) {
    if (auto step = plausible_step_joules(*rejected_, raw, time_s)) {
      accept(raw, time_s, *step);
      return;
    }
  }
  ++glitches_;
  rejected_ = Reference{raw, baseline_last_seen_s_};
}

std::optional<double> CheckedCounter::plausible_step_joules(const Reference& from, uint64_t raw,
                                                            double time_s) const {
  uint64_t units;
  if (raw >= from.raw)
    units = raw - from.raw;
  else if (spec_.wrap_range && from.raw < *spec_.wrap_range)
    units = (*spec_.wrap_range - from.raw) + raw;
  else
    return std::nullopt;
  double joules = double(units) * spec_.joules_per_unit;
  // A counter that updates every resolution_s can show a whole update's energy between
  // two readings taken a moment apart, so the span is never taken below one update.
  double span_s = std::max(time_s - from.previous_seen_s, spec_.resolution_s);
  if (joules > spec_.max_plausible_watts * span_s) return std::nullopt;
  return joules;
}

void CheckedCounter::accept(uint64_t raw, double time_s, double step_joules) {
  joules_ += step_joules;
  ++advances_;
  last_advance_s_ = time_s;
  baseline_ = Reference{raw, baseline_last_seen_s_};
  baseline_last_seen_s_ = time_s;
  rejected_.reset();
}

}  // namespace attnscope
