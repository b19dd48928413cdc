// When a coarse energy counter updates, learnt from its readings.
//
// NVML's energy counter moves only about every 100 ms: a reading returns the energy up
// to the counter's last update, which lies anywhere up to one update period before the
// read. The difference of two readings is therefore the energy between two updates, and
// over a window of a few seconds that is off by up to one period's energy (±3.7 % over
// 2.7 s at 100 ms). To attribute energy to a window's own edges, a window needs the
// time of the update that each edge's reading stands for; the energy between that
// update and the edge is then bridged with the sampled power (energy_window.hpp).
//
// Every reading of the counter (time, how long the read took, how many times its value
// has advanced) goes into the timeline. Two readings whose values differ by one advance
// bracket one update: it happened after the first value was taken and no later than the
// second. Where the two were taken close together (the sampler probes for that, see
// sampler.hpp) the bracket is narrow, and narrow brackets fix the update schedule: updates
// at anchor + n·period. The period is taken within kPeriodPrior of the nominal one (the
// source's counter_resolution_s) and narrowed by every two brackets of the chain that
// agree (grown from the narrowest, counting periods only while the count is certain);
// the anchor is the chain's update nearest the time asked about, narrowed by every
// member. Brackets that do not fit, and readings whose value did not advance where the
// schedule put an update, are the schedule's measured jitter. When that exceeds an eighth of a
// period the counter is not periodic enough to be scheduled, and an update's time is
// bounded by the readings alone (to within kMaxUpdateGap periods).
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "telemetry/power_source.hpp"

namespace attnscope {

// The true period is taken to lie within this share of the nominal one.
constexpr double kPeriodPrior = 0.02;
// A bracket narrower than this share of the period pins an update.
constexpr double kNarrowBracketShare = 0.25;
// Without a schedule, the counter is taken to update at least every this many nominal
// periods (NVML's: every 100 ms on average, measured on an H100).
constexpr double kMaxUpdateGap = 1.25;
// An edge reading this close to a scheduled update (beyond twice its uncertainty) asks
// for a settling reading (UpdateEstimate::settled_by_reading_after_s).
constexpr double kSettleGuardSeconds = 0.003;
// Readings older than this (behind the newest) are forgotten.
constexpr double kTimelineHistorySeconds = 120;

// An interval that holds exactly one update of the counter.
struct CounterBracket {
  double lo_s = 0;
  double hi_s = 0;
  double mid_s() const { return 0.5 * (lo_s + hi_s); }
  double half_width_s() const { return 0.5 * (hi_s - lo_s); }
};

// The counter's updates: at anchor_s + n·period_s, each within uncertainty_s(n).
struct UpdateSchedule {
  double anchor_s = 0;
  double anchor_uncertainty_s = 0;
  double period_s = 0;
  double period_uncertainty_s = 0;
  double jitter_s = 0;  // how far the brackets and readings stray from the schedule beyond their widths

  long long index_near(double t) const;  // the update nearest to t
  double update_s(long long n) const { return anchor_s + double(n) * period_s; }
  double uncertainty_s(long long n) const;
};

// The time of the update whose value a reading shows.
struct UpdateEstimate {
  double time_s = 0;
  double uncertainty_s = 0;  // half-width of the interval it is known to lie in
  bool scheduled = false;    // pinned by the schedule (else bounded by the readings alone)
  // Set when the reading was taken close to when the schedule had an update due, so
  // that it may show that update or the one before (now, when the estimate is the pair's
  // hull and not scheduled, or under a schedule refined later): one more reading taken
  // soon after this time (well before the next update) tells which.
  std::optional<double> settled_by_reading_after_s;
};

class CounterTimeline {
 public:
  explicit CounterTimeline(double nominal_period_s) : nominal_period_s_(nominal_period_s) {}

  // A reading, in any order (readings from different threads may arrive out of order).
  void add(const CounterSnapshot& reading);

  // The schedule that fits the brackets near `near_s`; nullopt when there is no narrow
  // bracket, or the counter does not keep a schedule.
  std::optional<UpdateSchedule> schedule(double near_s) const;

  // The update that `reading` (one of the readings added) shows the value of. Readings
  // added after it count too: a later probe can pin an earlier edge.
  UpdateEstimate update_before(const CounterSnapshot& reading) const;

  std::vector<CounterBracket> narrow_brackets() const;
  double nominal_period_s() const { return nominal_period_s_; }
  size_t size() const { return reads_.size(); }

 private:
  struct Read {
    double time_s;
    double read_s;
    uint64_t advances;
    double start_s() const { return time_s - 0.5 * read_s; }
    double end_s() const { return time_s + 0.5 * read_s; }
  };

  std::optional<UpdateSchedule> fit(const std::vector<CounterBracket>& brackets, double near_s,
                                    double span_s) const;
  double violation_s(const UpdateSchedule& schedule, const std::vector<CounterBracket>& brackets, double lo_s,
                     double hi_s) const;

  double nominal_period_s_;
  std::vector<Read> reads_;  // in time order
};

}  // namespace attnscope
