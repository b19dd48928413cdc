#include "telemetry/sampler.hpp"

#include <algorithm>

#include "telemetry/process_stats.hpp"

namespace attnscope {
namespace {

constexpr double kNoRead = 1e300;
// How long a search for an update reads, in periods of the counter.
constexpr double kSearchPeriods = 1.3;
constexpr double kMaxSearchBackoffSeconds = 60;

}  // namespace

Sampler::Sampler(std::vector<PowerSource*> sources, const TelemetryClock& clock,
                 std::chrono::milliseconds interval)
    : sources_(std::move(sources)),
      clock_(clock),
      interval_(interval),
      started_s_(clock.now()),
      series_(sources_.size()),
      read_after_(sources_.size()),
      to_check_(sources_.size()),
      last_read_start_(sources_.size(), -kNoRead) {
  bool any_track = false;
  for (PowerSource* source : sources_) {
    const SourceStatus& status = source->status();
    independent_.push_back(status.power_independent_of_counter);
    any_independent_ = any_independent_ || status.power_independent_of_counter;
    edge_reader_.push_back(status.has_energy_counter && !status.counter_read_by_caller);
    if (sampler_reads_counter(status)) {
      tracks_.push_back(std::make_unique<CounterTrack>(status.counter_resolution_s.value_or(0.1)));
      any_track = true;
    } else {
      tracks_.push_back(nullptr);
    }
  }
  tick(false);
  tick_thread_ = std::thread([this] { run_ticks(); });
  if (any_track) counter_thread_ = std::thread([this] { run_counters(); });
}

Sampler::~Sampler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  tick_wake_.notify_all();
  counter_wake_.notify_all();
  edge_done_.notify_all();
  tick_thread_.join();
  if (counter_thread_.joinable()) counter_thread_.join();
}

// --- ticks ---------------------------------------------------------------------------

void Sampler::run_ticks() {
  // The constructor's tick ran on another thread: this thread's clock starts at zero,
  // and that one tick's cost is not counted.
  auto next = std::chrono::steady_clock::now() + interval_;
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    bool edge = tick_wake_.wait_until(lock, next, [this] { return stopping_ || posted_ > ticked_; });
    if (stopping_) break;
    if (edge) {
      EdgeId upto = posted_;
      lock.unlock();
      tick(true);
      tick_cpu_seconds_.store(thread_cpu_seconds());
      lock.lock();
      ticked_ = upto;
      edge_done_.notify_all();
      continue;
    }
    lock.unlock();
    tick(false);
    tick_cpu_seconds_.store(thread_cpu_seconds());
    lock.lock();
    next += interval_;
    auto now = std::chrono::steady_clock::now();
    if (next <= now) {
      auto behind = (now - next) / interval_ + 1;
      missed_ticks_.fetch_add(uint64_t(behind));
      next += behind * interval_;
    }
  }
}

void Sampler::tick(bool edge) {
  for (size_t i = 0; i < sources_.size(); ++i) {
    // A counter-derived series (RAPL) gains nothing from a sample over a moment's interval.
    if (edge && !independent_[i]) continue;
    std::optional<PowerSample> sample = sources_[i]->sample(clock_);
    if (!sample) continue;
    std::lock_guard<std::mutex> lock(series_mutex_);
    series_[i].append(*sample);
  }
  (edge ? edge_ticks_ : ticks_).fetch_add(1);
}

// --- edges ---------------------------------------------------------------------------

Sampler::EdgeId Sampler::post_edge(double time_s) {
  bool wake_counters = false;
  EdgeId id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = ++posted_;
    Edge edge;
    edge.time_s = time_s;
    edge.readings.resize(sources_.size());
    edge.served.resize(sources_.size());
    for (size_t i = 0; i < sources_.size(); ++i) {
      edge.served[i] = !edge_reader_[i];
      wake_counters = wake_counters || edge_reader_[i];
    }
    edges_.emplace(id, std::move(edge));
    if (!any_independent_) ticked_ = posted_;  // no edge tick to take
  }
  if (any_independent_) tick_wake_.notify_one();
  if (wake_counters) counter_wake_.notify_one();
  return id;
}

bool Sampler::wait_for_samples(EdgeId edge, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  return edge_done_.wait_until(lock, deadline, [&] { return stopping_ || ticked_ >= edge; }) && ticked_ >= edge;
}

bool Sampler::wait_for_reading(EdgeId edge, size_t source, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto served = [&] {
    auto found = edges_.find(edge);
    return found == edges_.end() || found->second.served[source];
  };
  return edge_done_.wait_until(lock, deadline, [&] { return stopping_ || served(); }) && served();
}

std::optional<CounterSnapshot> Sampler::edge_reading(EdgeId edge, size_t source) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = edges_.find(edge);
  if (found == edges_.end() || !found->second.served[source]) return std::nullopt;
  return found->second.readings[source];
}

void Sampler::release_edge(EdgeId edge) {
  std::lock_guard<std::mutex> lock(mutex_);
  edges_.erase(edge);
}

// --- counters ------------------------------------------------------------------------

std::optional<CounterSnapshot> Sampler::read_counter(size_t source) {
  std::optional<CounterSnapshot> reading = sources_[source]->read_counter(clock_);
  if (reading && tracks_[source]) {
    std::lock_guard<std::mutex> lock(timeline_mutex_);
    tracks_[source]->timeline.add(*reading);
  }
  return reading;
}

std::optional<CounterSnapshot> Sampler::read_counter_at_edge(size_t source) {
  std::optional<CounterSnapshot> reading = read_counter(source);
  if (reading && tracks_[source] && coarse_counter(sources_[source]->status())) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      to_check_[source].push_back(*reading);
    }
    counter_wake_.notify_one();
  }
  return reading;
}

void Sampler::request_read_after_locked(size_t source, double after_s) {
  if (last_read_start_[source] <= after_s) read_after_[source].push_back(after_s);
}

double Sampler::next_read_after_locked(size_t source) const {
  double first = kNoRead;
  for (double t : read_after_[source]) first = std::min(first, t);
  return first;
}

bool Sampler::wait_for_reading_after(size_t source, double after_s, std::chrono::steady_clock::time_point deadline) {
  if (!tracks_[source]) return false;
  const double target_s = after_s + kSettleMarginSeconds;
  std::unique_lock<std::mutex> lock(mutex_);
  request_read_after_locked(source, target_s);
  counter_wake_.notify_one();
  return edge_done_.wait_until(lock, deadline, [&] { return stopping_ || last_read_start_[source] > target_s; }) &&
         last_read_start_[source] > target_s;
}

void Sampler::plan_settling(size_t source, const CounterSnapshot& reading) {
  std::optional<UpdateEstimate> update = counter_update(source, reading);
  if (!update || !update->settled_by_reading_after_s) return;
  std::lock_guard<std::mutex> lock(mutex_);
  request_read_after_locked(source, *update->settled_by_reading_after_s + kSettleMarginSeconds);
}

std::optional<UpdateEstimate> Sampler::counter_update(size_t source, const CounterSnapshot& reading) const {
  if (!tracks_[source] || !coarse_counter(sources_[source]->status())) return std::nullopt;
  std::lock_guard<std::mutex> lock(timeline_mutex_);
  return tracks_[source]->timeline.update_before(reading);
}

std::optional<UpdateSchedule> Sampler::counter_schedule(size_t source, double near_s) const {
  if (!tracks_[source] || !coarse_counter(sources_[source]->status())) return std::nullopt;
  std::lock_guard<std::mutex> lock(timeline_mutex_);
  return tracks_[source]->timeline.schedule(near_s);
}

bool Sampler::has_unserved_locked() const {
  for (const auto& [id, edge] : edges_)
    for (char served : edge.served)
      if (!served) return true;
  return false;
}

std::optional<CounterSnapshot> Sampler::read_and_serve(size_t source) {
  double start_s = clock_.now();
  std::optional<CounterSnapshot> reading = read_counter(source);
  tracks_[source]->last_read_s = clock_.now();
  counter_reads_.fetch_add(1);
  bool served_edge = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    last_read_start_[source] = start_s;
    std::vector<double>& pending = read_after_[source];
    pending.erase(std::remove_if(pending.begin(), pending.end(), [start_s](double t) { return t < start_s; }),
                  pending.end());
    for (auto& [id, edge] : edges_) {
      if (edge.served[source]) continue;
      edge.readings[source] = reading;
      edge.served[source] = 1;
      served_edge = true;
    }
  }
  edge_done_.notify_all();
  if (served_edge && reading) plan_settling(source, *reading);
  return reading;
}

void Sampler::serve_pending() {
  for (size_t i = 0; i < sources_.size(); ++i) {
    if (!edge_reader_[i]) continue;
    bool pending = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [id, edge] : edges_) pending = pending || !edge.served[i];
    }
    if (pending) read_and_serve(i);
  }
}

Sampler::Plan Sampler::plan_for(size_t source, double now_s) {
  CounterTrack& track = *tracks_[source];
  const SourceStatus& status = sources_[source]->status();
  Plan poll;
  poll.source = source;
  poll.kind = Plan::kRead;
  poll.at_s = track.last_read_s + status.counter_poll_s.value_or(kCounterProbeSeconds);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    poll.at_s = std::min(poll.at_s, next_read_after_locked(source) + 1e-4);  // a settling read
  }
  if (!coarse_counter(status)) return poll;

  const double read_s = status.counter_read_s.value_or(0);
  const double period_s = track.timeline.nominal_period_s();
  std::optional<UpdateSchedule> schedule;
  std::vector<CounterBracket> brackets;
  {
    std::lock_guard<std::mutex> lock(timeline_mutex_);
    schedule = track.timeline.schedule(now_s);
    brackets = track.timeline.narrow_brackets();
  }
  Plan next = poll;
  if (!schedule) {
    track.probe.reset();
    if (track.next_search_s < next.at_s) next = Plan{track.next_search_s, source, Plan::kSearch, 0};
    return next;
  }
  if (track.probe && now_s > track.probe->latest_start_s) track.probe.reset();  // missed its moment
  if (!track.probe) {
    double due_s = now_s;
    if (!brackets.empty()) {
      double span_s = brackets.back().mid_s() - brackets.front().mid_s();
      due_s = brackets.back().mid_s() + std::clamp(0.25 * span_s, kCounterProbeMinSeconds, kCounterProbeSeconds);
    }
    if (due_s > now_s) {
      if (due_s < next.at_s) next = Plan{due_s, source, Plan::kReplan, 0};
      return next;
    }
    // The first update that a probe starting from now can catch: its first read done
    // before the update's earliest time, its reads going on to past the latest.
    const double lead_s = read_s + 1e-3;
    long long n = schedule->index_near(now_s);
    while (schedule->update_s(n) - schedule->uncertainty_s(n) - lead_s < now_s) ++n;
    double g = schedule->update_s(n), u = schedule->uncertainty_s(n);
    if (2 * u > period_s) {  // too vague to aim at: search
      if (track.next_search_s < next.at_s) next = Plan{std::max(now_s, track.next_search_s), source, Plan::kSearch, 0};
      return next;
    }
    track.probe = Probe{g - u - lead_s, g + u + lead_s + read_s, g - u - 0.5 * read_s};
  }
  if (track.probe->start_s < next.at_s) next = Plan{track.probe->start_s, source, Plan::kProbe, track.probe->deadline_s};
  return next;
}

// Reads back to back until the value advances (an update caught between two reads: a
// narrow bracket) or the deadline; serves any edge posted meanwhile.
void Sampler::probe(size_t source, double deadline_s, bool search) {
  CounterTrack& track = *tracks_[source];
  const SourceStatus& status = sources_[source]->status();
  if (search) deadline_s = clock_.now() + kSearchPeriods * track.timeline.nominal_period_s() +
                           2 * status.counter_read_s.value_or(0);
  bool caught = false;
  std::optional<CounterSnapshot> first = read_and_serve(source);
  while (first && !caught && clock_.now() < deadline_s) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) break;
    }
    std::optional<CounterSnapshot> next = read_and_serve(source);
    if (!next) break;
    caught = next->advances != first->advances;
    serve_pending();
  }
  if (search) {
    track.next_search_s = clock_.now() + track.search_backoff_s;
    track.search_backoff_s = caught ? kCounterSearchBackoffSeconds
                                    : std::min(2 * track.search_backoff_s, kMaxSearchBackoffSeconds);
  } else {
    track.probe.reset();
  }
}

void Sampler::run_counters() {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) break;
    }
    serve_pending();
    for (size_t i = 0; i < sources_.size(); ++i) {
      std::vector<CounterSnapshot> readings;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        readings.swap(to_check_[i]);
      }
      for (const CounterSnapshot& reading : readings) plan_settling(i, reading);
    }
    double now_s = clock_.now();
    Plan next;
    for (size_t i = 0; i < sources_.size(); ++i) {
      if (!tracks_[i]) continue;
      Plan plan = plan_for(i, now_s);
      if (plan.at_s < next.at_s) next = plan;
    }
    if (next.at_s <= now_s) {
      switch (next.kind) {
        case Plan::kRead: read_and_serve(next.source); break;
        case Plan::kProbe: probe(next.source, next.deadline_s, false); break;
        case Plan::kSearch: probe(next.source, 0, true); break;
        case Plan::kReplan: break;
      }
      counter_cpu_seconds_.store(thread_cpu_seconds());
      continue;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    // Woken for an edge to serve, a reading to check, or a settling read due before the plan.
    auto work = [this, &next] {
      if (stopping_ || has_unserved_locked()) return true;
      for (size_t i = 0; i < sources_.size(); ++i)
        if (!to_check_[i].empty() || next_read_after_locked(i) + 1e-4 < next.at_s) return true;
      return false;
    };
    if (work()) continue;  // a reading to check or a settling read asked for since planning
    counter_wake_.wait_until(lock, clock_.time_point_at(std::min(next.at_s, now_s + 3600.0)), work);
  }
}

// --- series --------------------------------------------------------------------------

SeriesFigures Sampler::figures(size_t source, double t0, double t1) const {
  std::lock_guard<std::mutex> lock(series_mutex_);
  const PowerSeries& series = series_[source];
  SeriesFigures figures;
  figures.joules = series.joules(t0, t1);
  figures.peak_watts = series.peak_watts(t0, t1);
  figures.peak_memory_used_bytes = series.peak_memory_used(t0, t1);
  figures.samples_inside = series.count_inside(t0, t1);
  return figures;
}

std::optional<double> Sampler::series_joules(size_t source, double t0, double t1) const {
  std::lock_guard<std::mutex> lock(series_mutex_);
  return series_[source].joules(t0, t1);
}

std::vector<PowerRow> Sampler::rows_since(SeriesCursor& cursor) const {
  std::lock_guard<std::mutex> lock(series_mutex_);
  cursor.next.resize(series_.size(), 0);
  std::vector<PowerRow> rows;
  for (size_t s = 0; s < series_.size(); ++s) {
    for (size_t i = cursor.next[s]; i < series_[s].size(); ++i)
      rows.push_back(PowerRow{sources_[s]->status().name, series_[s][i]});
    cursor.next[s] = series_[s].size();
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const PowerRow& a, const PowerRow& b) { return a.sample.time_s < b.sample.time_s; });
  return rows;
}

void Sampler::note_end_wait(double seconds) {
  std::lock_guard<std::mutex> lock(wait_mutex_);
  ++end_waits_;
  end_wait_total_s_ += seconds;
  end_wait_max_s_ = std::max(end_wait_max_s_, seconds);
}

SamplerStats Sampler::stats() const {
  SamplerStats stats;
  stats.wall_seconds = clock_.now() - started_s_;
  stats.cpu_seconds = tick_cpu_seconds_.load() + counter_cpu_seconds_.load();
  stats.ticks = ticks_.load();
  stats.missed_ticks = missed_ticks_.load();
  stats.edge_ticks = edge_ticks_.load();
  stats.counter_reads = counter_reads_.load();
  std::lock_guard<std::mutex> lock(wait_mutex_);
  stats.end_waits = end_waits_;
  stats.end_wait_mean_s = end_waits_ ? end_wait_total_s_ / double(end_waits_) : 0;
  stats.end_wait_max_s = end_wait_max_s_;
  return stats;
}

}  // namespace attnscope
