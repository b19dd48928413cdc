#include "telemetry/telemetry.hpp"

#include <thread>

#include "telemetry/amdgpu_source.hpp"
#include "telemetry/nvml_source.hpp"
#include "telemetry/rapl_source.hpp"
#include "telemetry/sysfs_files.hpp"
#include "telemetry/telemetry_error.hpp"

namespace attnscope {

std::vector<DetectedSource> detect_sources(const TelemetryConfig& config) {
  std::filesystem::path sysfs = resolve_sysfs_dir(config.sysfs_root);
  std::vector<DetectedSource> sources;
  sources.push_back(detect_nvml(config.gpu_pci_bus_id, config.nvml_library));
  sources.push_back(detect_amdgpu(sysfs, config.gpu_pci_bus_id));
  sources.push_back(detect_rapl(sysfs));
  return sources;
}

Telemetry::Telemetry(const TelemetryConfig& config) : Telemetry(config, detect_sources(config)) {}

Telemetry::Telemetry(const TelemetryConfig& config, std::vector<DetectedSource> sources)
    : config_(config), detected_(std::move(sources)) {
  if (config.sample_interval < std::chrono::milliseconds(1))
    throw TelemetryError("telemetry sample interval must be at least 1 ms, got " +
                             std::to_string(config.sample_interval.count()) + " ms",
                         TelemetryError::Kind::kBadSetting);
  for (const DetectedSource& detected : detected_)
    if (detected.source) available_.push_back(detected.source.get());
  sampler_ = std::make_unique<Sampler>(available_, clock_, config.sample_interval);
}

Telemetry::~Telemetry() = default;

std::vector<SourceStatus> Telemetry::sources() const {
  std::vector<SourceStatus> statuses;
  for (const DetectedSource& detected : detected_) {
    statuses.push_back(detected.status);
    if (detected.source) statuses.back().failed_reads = detected.source->failed_reads();
  }
  return statuses;
}

std::vector<std::optional<CounterSnapshot>> Telemetry::read_caller_counters() {
  std::vector<std::optional<CounterSnapshot>> counters(available_.size());
  for (size_t i = 0; i < available_.size(); ++i) {
    const SourceStatus& status = available_[i]->status();
    if (status.has_energy_counter && status.counter_read_by_caller) counters[i] = sampler_->read_counter_at_edge(i);
  }
  return counters;
}

CounterEdge Telemetry::counter_edge(size_t index, double edge_s, const CounterSnapshot& reading) const {
  CounterEdge edge = counter_edge_at_reading(reading);
  if (std::optional<UpdateEstimate> update = sampler_->counter_update(index, reading)) {
    edge.update_s = update->time_s;
    edge.uncertainty_s = update->uncertainty_s;
  }
  edge.bridge_joules = sampler_->series_joules(index, edge.update_s, edge_s).value_or(0);
  return edge;
}

void Telemetry::begin_window(const std::string& name) {
  OpenWindow window;
  window.begin_s = clock_.now();
  window.usage = read_process_usage();
  window.counters = read_caller_counters();
  std::lock_guard<std::mutex> lock(windows_mutex_);
  if (open_windows_.count(name))
    throw TelemetryError("telemetry window '" + name + "' is already open");
  window.edge = sampler_->post_edge(window.begin_s);
  open_windows_.emplace(name, std::move(window));
}

WindowResult Telemetry::end_window(const std::string& name) {
  double end_s = clock_.now();
  ProcessUsage usage = read_process_usage();
  std::vector<std::optional<CounterSnapshot>> end_counters = read_caller_counters();
  OpenWindow window;
  {
    std::lock_guard<std::mutex> lock(windows_mutex_);
    auto found = open_windows_.find(name);
    if (found == open_windows_.end())
      throw TelemetryError("telemetry window '" + name + "' is not open");
    window = std::move(found->second);
    open_windows_.erase(found);
  }
  Sampler::EdgeId end_edge = sampler_->post_edge(end_s);
  const double duration_s = end_s - window.begin_s;

  // The first sample after the end (the edge tick, requested just now), and for a window
  // long enough for the counter, the sampler's readings of its edges. The limits only
  // guard against a source that hangs: a read then counts as missing.
  auto wait_start = std::chrono::steady_clock::now();
  sampler_->wait_for_samples(end_edge, wait_start + config_.sample_interval + std::chrono::seconds(1));
  std::vector<char> counter_awaited(available_.size(), 0);
  for (size_t i = 0; i < available_.size(); ++i) {
    const SourceStatus& status = available_[i]->status();
    if (!sampler_->reads_edges(i) || !counter_usable_for(status, duration_s)) continue;
    auto deadline = wait_start + std::chrono::seconds(2) +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(4 * status.counter_read_s.value_or(0)));
    counter_awaited[i] = sampler_->wait_for_reading(window.edge, i, deadline) &&
                         sampler_->wait_for_reading(end_edge, i, deadline);
  }

  // A coarse counter's edge reading taken close to when an update was due may show that
  // update or the one before; the sampler reads once more when the update is surely past
  // (~10 ms later), which tells. Only windows that can use the counter wait for that.
  for (size_t i = 0; i < available_.size(); ++i) {
    const SourceStatus& status = available_[i]->status();
    if (!coarse_counter(status) || !counter_usable_for(status, duration_s)) continue;
    for (std::optional<CounterSnapshot> reading :
         {counter_awaited[i] ? sampler_->edge_reading(window.edge, i) : window.counters[i],
          counter_awaited[i] ? sampler_->edge_reading(end_edge, i) : end_counters[i]}) {
      if (!reading) continue;
      std::optional<UpdateEstimate> update = sampler_->counter_update(i, *reading);
      if (!update || !update->settled_by_reading_after_s) continue;
      // Only a reading soon after that time tells (before the next update is due);
      // the sampler took one then if it could.
      double after_s = *update->settled_by_reading_after_s;
      if (after_s > clock_.now() + 0.5 || after_s < clock_.now() - 0.5 * status.counter_resolution_s.value_or(0))
        continue;
      sampler_->wait_for_reading_after(i, after_s, clock_.time_point_at(after_s) + std::chrono::seconds(1));
    }
  }
  sampler_->note_end_wait(std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start).count());

  WindowResult result;
  result.name = name;
  result.begin_s = window.begin_s;
  result.end_s = end_s;
  result.cpu_user_s = usage.user_s - window.usage.user_s;
  result.cpu_system_s = usage.system_s - window.usage.system_s;
  result.peak_rss_bytes = usage.peak_rss_bytes;
  for (size_t i = 0; i < available_.size(); ++i) {
    std::optional<CounterSnapshot> begin_reading = window.counters[i], end_reading = end_counters[i];
    if (counter_awaited[i]) {
      begin_reading = sampler_->edge_reading(window.edge, i);
      end_reading = sampler_->edge_reading(end_edge, i);
    }
    std::optional<CounterWindow> counter;
    if (begin_reading && end_reading)
      counter = CounterWindow{counter_edge(i, result.begin_s, *begin_reading), counter_edge(i, result.end_s, *end_reading)};
    result.sources.push_back(window_energy(available_[i]->status(), result.begin_s, result.end_s, counter,
                                           sampler_->figures(i, result.begin_s, result.end_s)));
  }
  sampler_->release_edge(window.edge);
  sampler_->release_edge(end_edge);
  return result;
}

void Telemetry::cancel_window(const std::string& name) noexcept {
  std::lock_guard<std::mutex> lock(windows_mutex_);
  auto found = open_windows_.find(name);
  if (found == open_windows_.end()) return;
  sampler_->release_edge(found->second.edge);
  open_windows_.erase(found);
}

ScopedWindow::ScopedWindow(Telemetry& telemetry, std::string name)
    : telemetry_(telemetry), name_(std::move(name)) {
  telemetry_.begin_window(name_);
}

ScopedWindow::~ScopedWindow() {
  if (open_) telemetry_.cancel_window(name_);
}

WindowResult ScopedWindow::end() {
  open_ = false;
  return telemetry_.end_window(name_);
}

WindowResult Telemetry::measure_idle(double seconds) {
  if (!(seconds > 0))
    throw TelemetryError(
        "idle measurement needs a positive duration, got " + std::to_string(seconds),
        TelemetryError::Kind::kBadSetting);
  begin_window("idle");
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return end_window("idle");
}

std::vector<PowerRow> Telemetry::samples_since(SeriesCursor& cursor) const { return sampler_->rows_since(cursor); }

SamplerStats Telemetry::sampler_stats() const { return sampler_->stats(); }

std::optional<UpdateSchedule> Telemetry::counter_schedule(size_t index, double near_s) const {
  return sampler_->counter_schedule(index, near_s);
}

}  // namespace attnscope
