// One source's power time series and the integral of it over any interval. Energy is
// integrated by the trapezoid rule between samples; at an interval's edges the power is
// interpolated linearly between the neighbouring samples, and held at the first/last
// sample's value beyond the series' ends (the sampler cannot know the power after its
// latest sample; end_window waits for a sample after the window's end, so a window's
// integral holds only if a source hangs). A running integral is kept so an interval costs two binary searches,
// however long the series.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "telemetry/power_source.hpp"

namespace attnscope {

class PowerSeries {
 public:
  // Samples must come in time order; one not after the last is ignored.
  void append(const PowerSample& sample);

  size_t size() const { return samples_.size(); }
  const PowerSample& operator[](size_t i) const { return samples_[i]; }

  // Number of samples with t0 <= time <= t1.
  size_t count_inside(double t0, double t1) const;

  // Energy over [t0, t1] in joules; nullopt when the series is empty.
  std::optional<double> joules(double t0, double t1) const;

  // Highest power over [t0, t1]: the samples inside and the interpolated edges.
  std::optional<double> peak_watts(double t0, double t1) const;

  // Highest device memory in use among the samples inside [t0, t1]; for an interval
  // with no sample inside, the latest reading before t1.
  std::optional<uint64_t> peak_memory_used(double t0, double t1) const;

  // Power at time t, interpolated as described above; nullopt when empty.
  std::optional<double> watts_at(double t) const;

 private:
  double integral_to(double t) const;  // ∫ from the first sample's time to t (negative before it)
  size_t first_after(double t) const;  // index of the first sample with time > t

  std::vector<PowerSample> samples_;
  std::vector<double> integral_;  // integral_[i] = ∫ from samples_[0].time_s to samples_[i].time_s
};

}  // namespace attnscope
