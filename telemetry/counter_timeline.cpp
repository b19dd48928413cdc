#include "telemetry/counter_timeline.hpp"

#include <algorithm>
#include <cmath>

namespace attnscope {
namespace {

// Readings this far around the wanted time fit the schedule; where those do not agree
// (the phase moved, say after a driver reset), a shorter span is tried.
constexpr double kFitSpanSeconds = 30;
constexpr double kShortFitSpanSeconds = 5;
// A schedule whose brackets and readings stray further than this share of a period is
// no schedule.
constexpr double kMaxJitterShare = 0.125;
constexpr size_t kMaxReadings = 20000;

}  // namespace

long long UpdateSchedule::index_near(double t) const { return std::llround((t - anchor_s) / period_s); }

double UpdateSchedule::uncertainty_s(long long n) const {
  return anchor_uncertainty_s + double(std::llabs(n)) * period_uncertainty_s + jitter_s;
}

void CounterTimeline::add(const CounterSnapshot& reading) {
  Read read{reading.time_s, reading.read_s, reading.advances};
  auto at = std::upper_bound(reads_.begin(), reads_.end(), read.time_s,
                             [](double t, const Read& r) { return t < r.time_s; });
  reads_.insert(at, read);
  const double oldest_kept = reads_.back().time_s - kTimelineHistorySeconds;
  auto keep = std::lower_bound(reads_.begin(), reads_.end(), oldest_kept,
                               [](const Read& r, double t) { return r.time_s < t; });
  if (reads_.end() - keep > std::ptrdiff_t(kMaxReadings)) keep = reads_.end() - std::ptrdiff_t(kMaxReadings);
  reads_.erase(reads_.begin(), keep);
}

std::vector<CounterBracket> CounterTimeline::narrow_brackets() const {
  std::vector<CounterBracket> brackets;
  const double narrow_s = kNarrowBracketShare * nominal_period_s_;
  for (size_t i = 1; i < reads_.size(); ++i) {
    const Read& before = reads_[i - 1];
    const Read& after = reads_[i];
    // The value advanced between the two: an update after the first value was taken,
    // no later than the second was (each taken somewhere inside its read call).
    if (after.advances > before.advances && after.end_s() - before.start_s() <= narrow_s)
      brackets.push_back(CounterBracket{before.start_s(), after.end_s()});
  }
  return brackets;
}

// How far the schedule strays beyond what its own uncertainty allows: from brackets
// whose update it misplaces, and from readings that show no advance over a span where
// it is sure an update fell.
double CounterTimeline::violation_s(const UpdateSchedule& schedule, const std::vector<CounterBracket>& brackets,
                                    double lo_s, double hi_s) const {
  double worst = 0;
  for (const CounterBracket& b : brackets) {
    if (b.mid_s() < lo_s || b.mid_s() > hi_s) continue;
    long long k = schedule.index_near(b.mid_s());
    double miss = std::abs(b.mid_s() - schedule.update_s(k));
    double allowed = schedule.uncertainty_s(k) + b.half_width_s();
    worst = std::max(worst, miss - allowed);
  }
  for (size_t i = 1; i < reads_.size(); ++i) {
    const Read& before = reads_[i - 1];
    const Read& after = reads_[i];
    if (after.advances != before.advances) continue;
    double quiet_lo = before.end_s(), quiet_hi = after.start_s();  // no update in between
    if (quiet_hi <= quiet_lo || quiet_hi < lo_s || quiet_lo > hi_s) continue;
    for (long long n = schedule.index_near(quiet_lo); schedule.update_s(n) < quiet_hi; ++n) {
      double g = schedule.update_s(n);
      if (g <= quiet_lo) continue;
      double depth = std::min(g - quiet_lo, quiet_hi - g);
      worst = std::max(worst, depth - (schedule.anchor_uncertainty_s +
                                       double(std::llabs(n)) * schedule.period_uncertainty_s));
    }
  }
  return worst;
}

std::optional<UpdateSchedule> CounterTimeline::fit(const std::vector<CounterBracket>& all, double near_s,
                                                   double span_s) const {
  std::vector<CounterBracket> brackets;
  for (const CounterBracket& b : all)
    if (std::abs(b.mid_s() - near_s) <= span_s) brackets.push_back(b);
  if (brackets.empty()) return std::nullopt;

  // The chain of brackets that agree, grown from the narrowest, nearest first; each new
  // one counted in periods from the member that pins that count best, and joining only
  // while the count is certain. The period lies in [t_lo, t_hi]: within kPeriodPrior of
  // nominal, and for every two members k periods apart within (their distance ± both
  // half-widths) / k.
  size_t seed = 0;
  for (size_t i = 1; i < brackets.size(); ++i)
    if (brackets[i].half_width_s() < brackets[seed].half_width_s()) seed = i;
  double t_lo = nominal_period_s_ * (1 - kPeriodPrior), t_hi = nominal_period_s_ * (1 + kPeriodPrior);
  std::vector<std::pair<size_t, long long>> members{{seed, 0}};  // bracket, periods from the seed
  std::vector<size_t> order;
  for (size_t i = 0; i < brackets.size(); ++i)
    if (i != seed) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return std::abs(brackets[x].mid_s() - brackets[seed].mid_s()) <
           std::abs(brackets[y].mid_s() - brackets[seed].mid_s());
  });
  for (size_t i : order) {
    const CounterBracket& b = brackets[i];
    const double period = 0.5 * (t_lo + t_hi), spread = 0.5 * (t_hi - t_lo);
    double best_doubt = 1e300;
    long long k = 0;
    for (const auto& [j, kj] : members) {
      const CounterBracket& c = brackets[j];
      long long dk = std::llround((b.mid_s() - c.mid_s()) / period);
      double doubt = b.half_width_s() + c.half_width_s() + double(std::llabs(dk)) * spread;
      if (doubt < best_doubt) best_doubt = doubt, k = kj + dk;
    }
    if (best_doubt >= 0.5 * period) continue;  // the count of periods would be a guess
    double lo = t_lo, hi = t_hi;
    bool same_update_apart = false;
    for (const auto& [j, kj] : members) {
      const CounterBracket& c = brackets[j];
      long long dk = k - kj;
      double dm = b.mid_s() - c.mid_s(), slack = b.half_width_s() + c.half_width_s();
      if (dk == 0) {
        same_update_apart = same_update_apart || std::abs(dm) > slack;
        continue;
      }
      double p1 = (dm - slack) / double(dk), p2 = (dm + slack) / double(dk);
      lo = std::max(lo, std::min(p1, p2));
      hi = std::min(hi, std::max(p1, p2));
    }
    if (same_update_apart || lo > hi) continue;  // does not fit: judged below
    t_lo = lo;
    t_hi = hi;
    members.emplace_back(i, k);
  }

  // The anchor: the member's update nearest near_s, bounded by every member carried to it.
  UpdateSchedule schedule;
  schedule.period_s = 0.5 * (t_lo + t_hi);
  schedule.period_uncertainty_s = 0.5 * (t_hi - t_lo);
  auto nearest = std::min_element(members.begin(), members.end(), [&](const auto& x, const auto& y) {
    return std::abs(brackets[x.first].mid_s() - near_s) < std::abs(brackets[y.first].mid_s() - near_s);
  });
  const long long k_anchor = nearest->second;
  auto anchor_interval = [&](double slack_s) {
    double a_lo = -1e300, a_hi = 1e300;
    for (const auto& [j, kj] : members) {
      const CounterBracket& b = brackets[j];
      double dk = double(kj - k_anchor);
      double slack = std::abs(dk) * schedule.period_uncertainty_s + slack_s;
      a_lo = std::max(a_lo, b.lo_s - dk * schedule.period_s - slack);
      a_hi = std::min(a_hi, b.hi_s - dk * schedule.period_s + slack);
    }
    return std::make_pair(a_lo, a_hi);
  };
  auto [a_lo, a_hi] = anchor_interval(0);
  if (a_hi < a_lo) {  // members disagree by more than their widths: fall back to the one bracket
    a_lo = brackets[nearest->first].lo_s;
    a_hi = brackets[nearest->first].hi_s;
  }
  schedule.anchor_s = 0.5 * (a_lo + a_hi);
  schedule.anchor_uncertainty_s = 0.5 * (a_hi - a_lo);
  double jitter = violation_s(schedule, brackets, near_s - span_s, near_s + span_s);
  if (jitter > kMaxJitterShare * schedule.period_s) return std::nullopt;
  schedule.jitter_s = std::max(0.0, jitter);
  return schedule;
}

std::optional<UpdateSchedule> CounterTimeline::schedule(double near_s) const {
  std::vector<CounterBracket> brackets = narrow_brackets();
  if (auto schedule = fit(brackets, near_s, kFitSpanSeconds)) return schedule;
  return fit(brackets, near_s, kShortFitSpanSeconds);
}

UpdateEstimate CounterTimeline::update_before(const CounterSnapshot& reading) const {
  // The readings that show this value: the first (s) and the last (l); the one before
  // the first (a) and the one after the last (e).
  Read self{reading.time_s, reading.read_s, reading.advances};
  auto first = std::lower_bound(reads_.begin(), reads_.end(), reading.advances,
                                [](const Read& r, uint64_t adv) { return r.advances < adv; });
  auto past = std::upper_bound(reads_.begin(), reads_.end(), reading.advances,
                               [](uint64_t adv, const Read& r) { return adv < r.advances; });
  const bool found = first != past;
  const Read& s = found ? *first : self;
  const Read& l = found ? *(past - 1) : self;
  const Read* a = found && first != reads_.begin() ? &*(first - 1) : nullptr;
  const Read* e = found && past != reads_.end() ? &*past : nullptr;

  // From the readings alone: the update came after the previous value was last taken
  // and no later than this one was first taken; and the next update, which comes within
  // kMaxUpdateGap periods, came after this value was last taken.
  double hi = s.end_s();
  double lo = l.start_s() - kMaxUpdateGap * nominal_period_s_;
  if (a) lo = std::max(lo, a->start_s());
  if (hi <= lo) lo = hi - kMaxUpdateGap * nominal_period_s_;
  UpdateEstimate estimate{0.5 * (lo + hi), 0.5 * (hi - lo), false, std::nullopt};

  std::optional<UpdateSchedule> schedule = this->schedule(s.time_s);
  if (!schedule) return estimate;
  // Update n made this value if every reading allows it: this value taken from update n
  // until update n + 1, the one before taken before update n, the one after from update n + 1.
  std::vector<long long> candidates;
  for (long long n = schedule->index_near(lo) - 1; n <= schedule->index_near(hi) + 1; ++n) {
    double g = schedule->update_s(n), u = schedule->uncertainty_s(n);
    double g1 = schedule->update_s(n + 1), u1 = schedule->uncertainty_s(n + 1);
    bool possible = s.end_s() >= g - u && l.start_s() <= g1 + u1 && (!a || a->start_s() <= g + u) &&
                    (!e || e->end_s() >= g1 - u1);
    if (possible) candidates.push_back(n);
  }
  // Taken close to a scheduled update (closer than twice its uncertainty and a little),
  // the reading may show it or the one before, now or under a schedule refined later: a
  // reading once that update is surely past tells which, whatever the schedule.
  long long near = schedule->index_near(s.time_s);
  double g_near = schedule->update_s(near), u_near = schedule->uncertainty_s(near);
  std::optional<double> settle;
  if (std::abs(s.time_s - g_near) <= 0.5 * s.read_s + 2 * u_near + kSettleGuardSeconds) settle = g_near + u_near;
  if (candidates.size() == 1) {
    long long n = candidates[0];
    double g = schedule->update_s(n), u = schedule->uncertainty_s(n);
    double c_lo = std::max(lo, g - u), c_hi = std::min(hi, g + u);
    if (c_hi >= c_lo) return UpdateEstimate{0.5 * (c_lo + c_hi), 0.5 * (c_hi - c_lo), true, settle};
  } else if (candidates.size() == 2 && candidates[1] == candidates[0] + 1) {
    long long n = candidates[0];
    double c_lo = std::max(lo, schedule->update_s(n) - schedule->uncertainty_s(n));
    double c_hi = std::min(hi, schedule->update_s(n + 1) + schedule->uncertainty_s(n + 1));
    if (c_hi >= c_lo) estimate = UpdateEstimate{0.5 * (c_lo + c_hi), 0.5 * (c_hi - c_lo), false, std::nullopt};
    estimate.settled_by_reading_after_s = schedule->update_s(n + 1) + schedule->uncertainty_s(n + 1);
  }
  return estimate;
}

}  // namespace attnscope
