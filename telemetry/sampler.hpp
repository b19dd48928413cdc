// The sampler thread: every interval it asks each source for a sample and appends it to
// that source's PowerSeries. Ticks are scheduled on the steady clock (a late tick does
// not shift the ones after it; missed ticks are skipped, not bunched). Readers query the
// series under a lock held only for the append or the query, never across a source
// read, so begin/end of a window never wait for a slow sysfs read.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "telemetry/power_series.hpp"
#include "telemetry/power_source.hpp"
#include "telemetry/telemetry_clock.hpp"

namespace attnscope {

// What the series say about one source over one interval.
struct SeriesFigures {
  std::optional<double> joules;  // trapezoid integral with interpolated edges
  std::optional<double> peak_watts;
  std::optional<uint64_t> peak_memory_used_bytes;
  size_t samples_inside = 0;
};

// One row of power.csv.
struct PowerRow {
  std::string source;  // SourceStatus::name
  PowerSample sample;
};

// Where a consumer of the series stopped reading (one position per source).
struct SeriesCursor {
  std::vector<size_t> next;
};

struct SamplerStats {
  double wall_seconds = 0;  // since the sampler started
  double cpu_seconds = 0;   // CPU time the sampler thread used
  uint64_t ticks = 0;
  uint64_t missed_ticks = 0;  // ticks skipped because a tick overran the interval
  double cpu_share() const { return wall_seconds > 0 ? cpu_seconds / wall_seconds : 0; }  // cores
};

class Sampler {
 public:
  // The sources must outlive the sampler. Takes one sample of each at once, then
  // starts the thread.
  Sampler(std::vector<PowerSource*> sources, const TelemetryClock& clock, std::chrono::milliseconds interval);
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  SeriesFigures figures(size_t source, double t0, double t1) const;
  // Samples appended since the cursor, all sources merged in time order; advances it.
  std::vector<PowerRow> rows_since(SeriesCursor& cursor) const;
  SamplerStats stats() const;

 private:
  void run();
  void tick();

  std::vector<PowerSource*> sources_;
  const TelemetryClock& clock_;
  std::chrono::milliseconds interval_;
  double started_s_;

  mutable std::mutex series_mutex_;
  std::vector<PowerSeries> series_;

  std::mutex stop_mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;

  std::atomic<double> cpu_seconds_{0};
  std::atomic<uint64_t> ticks_{0};
  std::atomic<uint64_t> missed_ticks_{0};
  std::thread thread_;
};

}  // namespace attnscope
