#include "telemetry/sampler.hpp"

#include <algorithm>

#include "telemetry/process_stats.hpp"

namespace attnscope {

Sampler::Sampler(std::vector<PowerSource*> sources, const TelemetryClock& clock,
                 std::chrono::milliseconds interval)
    : sources_(std::move(sources)),
      clock_(clock),
      interval_(interval),
      started_s_(clock.now()),
      series_(sources_.size()) {
  tick();
  thread_ = std::thread([this] { run(); });
}

Sampler::~Sampler() {
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stopping_ = true;
  }
  stop_signal_.notify_all();
  thread_.join();
}

void Sampler::run() {
  // The constructor's tick ran on another thread: this thread's clock starts at zero,
  // and that one tick's cost is not counted.
  auto next = std::chrono::steady_clock::now() + interval_;
  std::unique_lock<std::mutex> lock(stop_mutex_);
  while (!stop_signal_.wait_until(lock, next, [this] { return stopping_; })) {
    lock.unlock();
    tick();
    cpu_seconds_.store(thread_cpu_seconds());
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

void Sampler::tick() {
  for (size_t i = 0; i < sources_.size(); ++i) {
    std::optional<PowerSample> sample = sources_[i]->sample(clock_);
    if (!sample) continue;
    std::lock_guard<std::mutex> lock(series_mutex_);
    series_[i].append(*sample);
  }
  ticks_.fetch_add(1);
}

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

SamplerStats Sampler::stats() const {
  SamplerStats stats;
  stats.wall_seconds = clock_.now() - started_s_;
  stats.cpu_seconds = cpu_seconds_.load();
  stats.ticks = ticks_.load();
  stats.missed_ticks = missed_ticks_.load();
  return stats;
}

}  // namespace attnscope
