// attnscope telemetry: power, energy, memory and CPU time of a training run, measured in
// named energy windows. This header is the API the trainer and the benchmark use.
//
// Sources (each detected at construction and reported available or not, with the reason):
//   nvml    NVIDIA GPU: energy counter, instantaneous power, memory, utilization, SM
//           clock, temperature (nvml_source.hpp)
//   amdgpu  AMD GPU: hwmon power, VRAM used, utilization, clock, temperature (amdgpu_source.hpp)
//   rapl    CPU packages + DRAM: energy counters (rapl_source.hpp)
// plus this process's CPU time and peak RSS (process_stats.hpp). The GPU sources match
// the OpenCL device by PCI bus id (DeviceInfo::pci_bus_id); at most one of them is
// available for a given device.
//
// A sampler thread records every source's power (and memory, utilization, clock,
// temperature where available) at a fixed interval; a window reports per source the
// energy from the checked hardware counter or, where that cannot be trusted, from the
// sampled series, with both figures and the reason (energy_window.hpp). docs/telemetry.md
// says how each figure is measured and what its caveats are.
//
// Typical use (what a training run records):
//
//   Telemetry telemetry(telemetry_config(options, device.pci_bus_id));
//   manifest["telemetry"] = telemetry_manifest_json(telemetry);      // sources and reasons
//   WindowResult idle = telemetry.measure_idle(2.0);                 // idle power, for net energy
//   SeriesCursor cursor;
//   write_power_csv_header(power_csv);
//   telemetry.begin_window("run");
//   for (each step) {
//     telemetry.begin_window("step");
//     ... enqueue the step, clFinish ...
//     WindowResult step = telemetry.end_window("step");
//     if (const SourceEnergy* gpu = step.gpu())   // GPU energy, mean power, method, peak memory
//       record(gpu->joules, gpu->mean_watts, energy_method_name(gpu->method), gpu->peak_memory_used_bytes);
//     if (const SourceEnergy* cpu = step.cpu()) record(cpu->joules);
//     record(step.cpu_seconds(), step.cpu_utilization());
//     write_power_csv_rows(power_csv, telemetry.samples_since(cursor));
//   }
//   WindowResult run = telemetry.end_window("run");
//
// Every std::optional that is absent means "not measured" and is written as an empty
// CSV cell or JSON null, never as 0.
//
// Thread safety and cost: begin_window/end_window may be called from any thread,
// concurrently with the sampler and with each other; windows of different names may
// overlap (a run window around step windows); a name may be open once at a time.
//
// Neither ever waits for an expensive read. Each edge takes the time, getrusage, and the
// counters whose read is cheap (RAPL: one small sysfs read per zone, ~10 µs), and posts
// the edge to the sampler (sampler.hpp), which at once samples every source's power
// (an edge tick) and reads the counters whose read is expensive (NVML's: 2.4 ms on an
// H200, up to 4 ms on an H100, driver 580) on its own threads, each reading timestamped
// when it is taken. begin_window returns without waiting for either. end_window waits
// for its edge tick — the first sample after the window's end, so that the sampled
// integral interpolates the power at the end instead of holding the last sample; about
// the cost of one power read — and, only for a window long enough for the counter's
// figure to be chosen (counter_usable_for: 2 s for NVML), for the sampler's counter
// readings of its edges and, where the end's reading was taken close to a counter update,
// for one settling reading ~10 ms after that update (a few ms to a few tens of ms in
// all). A step window of a training loop therefore never waits for a counter read; the
// step's own timing (StepResult) ends before end_window is called. Shorter windows
// report the sampled figure and no counter figure for such a counter (flagged
// counter_too_coarse or shorter_than_counter_resolution). The counter's figure is
// attributed to the window's own edges (energy_window.hpp, counter_timeline.hpp).
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "telemetry/energy_window.hpp"
#include "telemetry/power_source.hpp"
#include "telemetry/process_stats.hpp"
#include "telemetry/sampler.hpp"
#include "telemetry/telemetry_clock.hpp"
#include "telemetry/telemetry_error.hpp"

namespace attnscope {

struct TelemetryConfig {
  // The root under which sysfs is found: <root>/sys, or <root> itself where it is a
  // sysfs mount (a container's /host/sys, a test's fixture tree).
  std::string sysfs_root = "/";
  // The OpenCL device's PCI bus id ("0000:65:00.0"); empty: no GPU source can match.
  std::string gpu_pci_bus_id;
  std::chrono::milliseconds sample_interval{50};
  std::string nvml_library = "libnvidia-ml.so.1";
};

// Detects every source the configuration allows: nvml, amdgpu, rapl, in that order.
std::vector<DetectedSource> detect_sources(const TelemetryConfig& config);

class Telemetry {
 public:
  // Detects the sources and starts the sampler. Throws TelemetryError (a bad setting) for
  // a sample interval under 1 ms.
  explicit Telemetry(const TelemetryConfig& config);
  // Uses sources detected by the caller (tests, or a caller that filters them).
  Telemetry(const TelemetryConfig& config, std::vector<DetectedSource> sources);
  ~Telemetry();
  Telemetry(const Telemetry&) = delete;
  Telemetry& operator=(const Telemetry&) = delete;

  // Every source, available or not, with its reason and its failed reads so far.
  std::vector<SourceStatus> sources() const;

  // Opens the window `name`; throws TelemetryError if a window of that name is open. Never waits
  // for the sampler.
  void begin_window(const std::string& name);
  // Closes it and reports it (waiting for the sampler as described above); throws
  // TelemetryError if no window of that name is open.
  WindowResult end_window(const std::string& name);
  // Forgets the window `name` without reporting it, if it is open (a run that failed
  // inside it); the name can then be opened again.
  void cancel_window(const std::string& name) noexcept;
  // A window named "idle" over `seconds` of sleeping: the idle power of every source.
  WindowResult measure_idle(double seconds);

  // The series' samples recorded since the cursor (all sources, in time order), for
  // power.csv; advances the cursor. Each consumer keeps its own cursor.
  std::vector<PowerRow> samples_since(SeriesCursor& cursor) const;

  // The sampler's own cost (CPU seconds of its threads per wall second), and how long
  // end_window waited for it.
  SamplerStats sampler_stats() const;
  // The update schedule learnt for a coarse counter of the available source `index`
  // (diagnostics and tests); nullopt when none.
  std::optional<UpdateSchedule> counter_schedule(size_t index, double near_s) const;

  const TelemetryClock& clock() const { return clock_; }
  const TelemetryConfig& config() const { return config_; }

 private:
  struct OpenWindow {
    double begin_s = 0;
    ProcessUsage usage;
    std::vector<std::optional<CounterSnapshot>> counters;  // per available source, the caller-read ones
    Sampler::EdgeId edge = 0;
  };
  // The caller's readings of the cheap counters, per available source.
  std::vector<std::optional<CounterSnapshot>> read_caller_counters();
  CounterEdge counter_edge(size_t index, double edge_s, const CounterSnapshot& reading) const;

  TelemetryConfig config_;
  TelemetryClock clock_;
  std::vector<DetectedSource> detected_;  // in detection order
  std::vector<PowerSource*> available_;   // the sampler's sources, same order
  std::unique_ptr<Sampler> sampler_;
  std::mutex windows_mutex_;
  std::map<std::string, OpenWindow> open_windows_;
};

// A window open for as long as this object lives (RAII): end() closes and reports it; a
// scope left by an exception cancels it, so that a failed run leaves no window open.
class ScopedWindow {
 public:
  ScopedWindow(Telemetry& telemetry, std::string name);
  ~ScopedWindow();
  ScopedWindow(const ScopedWindow&) = delete;
  ScopedWindow& operator=(const ScopedWindow&) = delete;
  WindowResult end();
  bool open() const { return open_; }

 private:
  Telemetry& telemetry_;
  std::string name_;
  bool open_ = true;
};

}  // namespace attnscope
