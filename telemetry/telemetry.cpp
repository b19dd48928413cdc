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

std::vector<std::optional<CounterSnapshot>> Telemetry::read_counters() {
  std::vector<std::optional<CounterSnapshot>> counters;
  for (PowerSource* source : available_)
    counters.push_back(source->status().counter_read_at_window_edges ? source->read_counter(clock_)
                                                                     : source->latest_counter());
  return counters;
}

void Telemetry::begin_window(const std::string& name) {
  OpenWindow window;
  window.begin_s = clock_.now();
  window.usage = read_process_usage();
  window.counters = read_counters();
  std::lock_guard<std::mutex> lock(windows_mutex_);
  if (!open_windows_.emplace(name, std::move(window)).second)
    throw TelemetryError("telemetry window '" + name + "' is already open");
}

WindowResult Telemetry::end_window(const std::string& name) {
  double end_s = clock_.now();
  ProcessUsage usage = read_process_usage();
  std::vector<std::optional<CounterSnapshot>> end_counters = read_counters();
  OpenWindow window;
  {
    std::lock_guard<std::mutex> lock(windows_mutex_);
    auto found = open_windows_.find(name);
    if (found == open_windows_.end())
      throw TelemetryError("telemetry window '" + name + "' is not open");
    window = std::move(found->second);
    open_windows_.erase(found);
  }
  WindowResult result;
  result.name = name;
  result.begin_s = window.begin_s;
  result.end_s = end_s;
  result.cpu_user_s = usage.user_s - window.usage.user_s;
  result.cpu_system_s = usage.system_s - window.usage.system_s;
  result.peak_rss_bytes = usage.peak_rss_bytes;
  for (size_t i = 0; i < available_.size(); ++i) {
    std::optional<CounterWindow> counter;
    if (window.counters[i] && end_counters[i]) counter = CounterWindow{*window.counters[i], *end_counters[i]};
    result.sources.push_back(window_energy(available_[i]->status(), result.begin_s, result.end_s, counter,
                                           sampler_->figures(i, result.begin_s, result.end_s)));
  }
  return result;
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

}  // namespace attnscope
