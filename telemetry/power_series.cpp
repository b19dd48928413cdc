#include "telemetry/power_series.hpp"

#include <algorithm>

namespace attnscope {

void PowerSeries::append(const PowerSample& sample) {
  if (!samples_.empty() && sample.time_s <= samples_.back().time_s) return;
  double integral = 0;
  if (!samples_.empty()) {
    const PowerSample& last = samples_.back();
    integral = integral_.back() + 0.5 * (last.watts + sample.watts) * (sample.time_s - last.time_s);
  }
  samples_.push_back(sample);
  integral_.push_back(integral);
}

size_t PowerSeries::first_after(double t) const {
  return size_t(std::upper_bound(samples_.begin(), samples_.end(), t,
                                 [](double time, const PowerSample& s) { return time < s.time_s; }) -
                samples_.begin());
}

size_t PowerSeries::count_inside(double t0, double t1) const {
  if (t1 < t0) return 0;
  auto begin = std::lower_bound(samples_.begin(), samples_.end(), t0,
                                [](const PowerSample& s, double time) { return s.time_s < time; });
  return size_t(samples_.begin() + first_after(t1) - begin);
}

std::optional<double> PowerSeries::watts_at(double t) const {
  if (samples_.empty()) return std::nullopt;
  size_t next = first_after(t);
  if (next == 0) return samples_.front().watts;
  if (next == samples_.size()) return samples_.back().watts;
  const PowerSample& a = samples_[next - 1];
  const PowerSample& b = samples_[next];
  double fraction = (t - a.time_s) / (b.time_s - a.time_s);
  return a.watts + fraction * (b.watts - a.watts);
}

double PowerSeries::integral_to(double t) const {
  size_t next = first_after(t);
  if (next == 0) return (t - samples_.front().time_s) * samples_.front().watts;
  const PowerSample& a = samples_[next - 1];
  double edge_watts = *watts_at(t);
  return integral_[next - 1] + 0.5 * (a.watts + edge_watts) * (t - a.time_s);
}

std::optional<double> PowerSeries::joules(double t0, double t1) const {
  if (samples_.empty()) return std::nullopt;
  return integral_to(t1) - integral_to(t0);
}

std::optional<double> PowerSeries::peak_watts(double t0, double t1) const {
  if (samples_.empty()) return std::nullopt;
  double peak = std::max(*watts_at(t0), *watts_at(t1));
  for (size_t i = first_after(t0); i < samples_.size() && samples_[i].time_s <= t1; ++i)
    peak = std::max(peak, samples_[i].watts);
  return peak;
}

std::optional<uint64_t> PowerSeries::peak_memory_used(double t0, double t1) const {
  std::optional<uint64_t> peak;
  size_t end = first_after(t1);
  for (size_t i = first_after(t0); i < end; ++i)
    if (samples_[i].memory_used_bytes) peak = std::max(peak.value_or(0), *samples_[i].memory_used_bytes);
  if (peak) return peak;
  for (size_t i = end; i-- > 0;)
    if (samples_[i].memory_used_bytes) return samples_[i].memory_used_bytes;
  return std::nullopt;
}

}  // namespace attnscope
