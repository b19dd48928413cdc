// The sampler: two threads that read the sources so that the threads opening and closing
// energy windows never wait for a slow read.
//
// The tick thread, every interval, asks each source for a sample and appends it to that
// source's PowerSeries. Ticks are scheduled on the steady clock (a late tick does not
// shift the ones after it; missed ticks are skipped, not bunched). A window edge
// (post_edge) wakes it at once for an edge tick: a sample of every source whose power is
// a reading of its own, so that the series straddles the edge within a fraction of a
// millisecond instead of holding the last sample across up to one interval.
//
// The counter thread reads the energy counters that the callers do not
// (sampler_reads_counter): at every window edge, as soon as the edge is posted, for a
// counter whose read is expensive (NVML's costs milliseconds on some GPUs); between
// windows at least every counter_poll_s, which keeps the counter's checks and its stale
// detection going; and, for a coarse counter, in short probes timed to catch the
// counter's updates (a run of back-to-back reads just before and after an update the
// schedule predicts, every 0.5–2 s; a longer search while there is no schedule), which
// feed the counter's timeline (counter_timeline.hpp). A reading serves every edge posted
// before it completed, so a window edge costs at most one read, and a reading taken
// during a probe serves an edge as well as any. An edge reading (the sampler's or the
// caller's) taken close to when the schedule had an update due may show that update or
// the one before; the counter thread then reads once more when the update is surely
// past, which tells (UpdateEstimate::settled_by_reading_after_s).
//
// Readers query the series under a lock held only for the append or the query, never
// across a source read.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "telemetry/counter_timeline.hpp"
#include "telemetry/power_series.hpp"
#include "telemetry/power_source.hpp"
#include "telemetry/telemetry_clock.hpp"

namespace attnscope {

// A settling reading is taken this long after the time its estimate names, so that a
// schedule refined later (with a different uncertainty) still counts it as past the
// update; a tenth of NVML's period, so still well before the next update.
constexpr double kSettleMarginSeconds = 0.01;
// Once the schedule is known, a probe catches an update every quarter of the span the
// schedule's brackets cover so far (the period's error shrinks as that grows), but at
// least this often and at most...
constexpr double kCounterProbeMinSeconds = 0.5;
constexpr double kCounterProbeSeconds = 2.0;
// ...and while it is not, a search (reads back to back for up to a period and a third)
// runs at once, and again after this long (doubling up to a minute) when it found none.
constexpr double kCounterSearchBackoffSeconds = 5.0;

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
  double cpu_seconds = 0;   // CPU time the sampler's threads used
  uint64_t ticks = 0;
  uint64_t missed_ticks = 0;   // ticks skipped because a tick overran the interval
  uint64_t edge_ticks = 0;     // extra ticks taken at window edges
  uint64_t counter_reads = 0;  // counter reads by the counter thread (edges, polls, probes)
  uint64_t end_waits = 0;      // end_window calls that waited for the sampler
  double end_wait_mean_s = 0;  // and how long they waited
  double end_wait_max_s = 0;
  double cpu_share() const { return wall_seconds > 0 ? cpu_seconds / wall_seconds : 0; }  // cores
};

class Sampler {
 public:
  using EdgeId = uint64_t;

  // The sources must outlive the sampler. Takes one sample of each at once, then
  // starts the threads.
  Sampler(std::vector<PowerSource*> sources, const TelemetryClock& clock, std::chrono::milliseconds interval);
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // A window edge at time_s (TelemetryClock): never waits for a read. The edge tick and
  // the counter readings for it follow on the sampler's threads.
  EdgeId post_edge(double time_s);
  // Until the edge tick has taken its samples (true), or the deadline.
  bool wait_for_samples(EdgeId edge, std::chrono::steady_clock::time_point deadline);
  // Until the counter thread's reading of `source` for the edge is in (true; the
  // reading may still be nullopt if the read failed), or the deadline.
  bool wait_for_reading(EdgeId edge, size_t source, std::chrono::steady_clock::time_point deadline);
  std::optional<CounterSnapshot> edge_reading(EdgeId edge, size_t source) const;
  void release_edge(EdgeId edge);
  // Whether the counter thread takes this source's edge readings (an expensive read).
  bool reads_edges(size_t source) const { return edge_reader_[source]; }

  // A counter reading taken now on the calling thread (a cheap counter at a window
  // edge), recorded in the source's timeline where it has one.
  std::optional<CounterSnapshot> read_counter(size_t source);
  // The same at a window edge: the counter thread checks the reading and settles it
  // with one more read if it was taken close to when an update was due.
  std::optional<CounterSnapshot> read_counter_at_edge(size_t source);
  // Until the counter thread has taken a reading of `source` that began a little
  // (kSettleMarginSeconds) after `after_s` (it is asked to), or the deadline.
  bool wait_for_reading_after(size_t source, double after_s, std::chrono::steady_clock::time_point deadline);
  // When the counter update that `reading` shows happened (counter_timeline.hpp).
  // Nullopt for a counter without a timeline (one that is not coarse).
  std::optional<UpdateEstimate> counter_update(size_t source, const CounterSnapshot& reading) const;
  std::optional<UpdateSchedule> counter_schedule(size_t source, double near_s) const;

  SeriesFigures figures(size_t source, double t0, double t1) const;
  // The series' integral over [t0, t1] (negative when t1 < t0); nullopt when empty.
  std::optional<double> series_joules(size_t source, double t0, double t1) const;
  // Samples appended since the cursor, all sources merged in time order; advances it.
  std::vector<PowerRow> rows_since(SeriesCursor& cursor) const;
  void note_end_wait(double seconds);
  SamplerStats stats() const;

 private:
  struct Edge {
    double time_s = 0;
    std::vector<std::optional<CounterSnapshot>> readings;  // per source
    std::vector<char> served;                              // per source: its reading is in
  };
  // A probe planned for one counter: reads from start_s until it sees an advance, or deadline_s.
  struct Probe {
    double start_s = 0;
    double deadline_s = 0;
    double latest_start_s = 0;  // started later than this, it would miss the update
  };
  // The counter thread's state for one source whose counter it reads.
  struct CounterTrack {
    explicit CounterTrack(double period_s) : timeline(period_s) {}
    CounterTimeline timeline;  // guarded by timeline_mutex_
    double last_read_s = -1e300;
    double next_search_s = 0;
    double search_backoff_s = kCounterSearchBackoffSeconds;
    std::optional<Probe> probe;
  };

  void run_ticks();
  void run_counters();
  void tick(bool edge);
  bool has_unserved_locked() const;
  // One read of `source` on the counter thread, serving every edge posted before it
  // completed; an edge reading that needs settling gets a settling read planned.
  std::optional<CounterSnapshot> read_and_serve(size_t source);
  // Plans a read of `source` after the time its reading's update estimate names, if it does.
  void plan_settling(size_t source, const CounterSnapshot& reading);
  void request_read_after_locked(size_t source, double after_s);
  double next_read_after_locked(size_t source) const;
  void serve_pending();
  // The next thing to do for one counter, and when.
  struct Plan {
    enum Kind { kRead, kProbe, kSearch, kReplan };
    double at_s = 1e300;
    size_t source = 0;
    Kind kind = kReplan;
    double deadline_s = 0;  // of a probe
  };
  Plan plan_for(size_t source, double now_s);
  void probe(size_t source, double deadline_s, bool search);

  std::vector<PowerSource*> sources_;
  const TelemetryClock& clock_;
  std::chrono::milliseconds interval_;
  double started_s_;
  std::vector<char> independent_;   // power is a reading of its own: sampled at edge ticks
  std::vector<char> edge_reader_;   // the counter thread takes the edge readings
  std::vector<std::unique_ptr<CounterTrack>> tracks_;  // sources whose counter the counter thread reads
  bool any_independent_ = false;

  mutable std::mutex series_mutex_;
  std::vector<PowerSeries> series_;
  mutable std::mutex timeline_mutex_;

  mutable std::mutex mutex_;  // edges_, the sequence numbers, stopping_
  std::condition_variable tick_wake_;
  std::condition_variable counter_wake_;
  std::condition_variable edge_done_;
  std::map<EdgeId, Edge> edges_;
  // Per source: the counter thread is to read after this time (settling an edge reading),
  // the caller's edge readings for it to check, and when its last read began.
  std::vector<std::vector<double>> read_after_;
  std::vector<std::vector<CounterSnapshot>> to_check_;
  std::vector<double> last_read_start_;
  EdgeId posted_ = 0;
  EdgeId ticked_ = 0;
  bool stopping_ = false;

  std::atomic<double> tick_cpu_seconds_{0};
  std::atomic<double> counter_cpu_seconds_{0};
  std::atomic<uint64_t> ticks_{0};
  std::atomic<uint64_t> missed_ticks_{0};
  std::atomic<uint64_t> edge_ticks_{0};
  std::atomic<uint64_t> counter_reads_{0};
  mutable std::mutex wait_mutex_;
  uint64_t end_waits_ = 0;
  double end_wait_total_s_ = 0;
  double end_wait_max_s_ = 0;
  std::thread tick_thread_;
  std::thread counter_thread_;
};

}  // namespace attnscope
