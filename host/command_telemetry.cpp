// `attnscope telemetry`: which power and energy sources this machine offers for the
// chosen OpenCL device (and why the others are unavailable), then what each measures
// over a few seconds — a quick check before a long benchmark.
#include <cstdio>
#include <memory>
#include <thread>

#include "host/commands.hpp"
#include "host/options.hpp"
#include "host/runtime/device_info.hpp"
#include "host/telemetry_options.hpp"

namespace attnscope {
namespace {

struct TelemetryCommandArgs {
  double seconds = 5;
  std::string device;
  TelemetryOptions telemetry;
};

template <typename T>
std::string number_or_dash(const std::optional<T>& value, const char* format) {
  if (!value) return "-";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, double(*value));
  return buffer;
}

void print_sources(const std::vector<SourceStatus>& sources) {
  std::printf("sources:\n");
  for (const SourceStatus& s : sources) {
    std::printf("  %-7s %-4s %-12s %s\n", s.name.c_str(), device_kind_name(s.device),
                s.available ? "available" : "unavailable", s.detail.c_str());
    if (s.available) std::printf("  %-7s %-4s %-12s power: %s\n", "", "", "", s.power_method.c_str());
  }
  std::fflush(stdout);
}

void print_window(const WindowResult& window) {
  if (window.sources.empty()) std::printf("no source is available: no power or energy to report\n");
  if (!window.sources.empty())
    std::printf("%-7s %-4s %9s %11s %-8s %11s %11s %9s %9s %12s  %s\n", "source", "dev", "mean W", "energy J",
              "method", "counter J", "sampled J", "differ", "peak W", "peak mem MiB", "flags");
  for (const SourceEnergy& e : window.sources) {
    std::optional<double> disagreement_percent;
    if (auto d = e.disagreement()) disagreement_percent = *d * 100;
    std::optional<double> peak_mib;
    if (e.peak_memory_used_bytes) peak_mib = double(*e.peak_memory_used_bytes) / (1 << 20);
    std::printf("%-7s %-4s %9s %11s %-8s %11s %11s %9s %9s %12s  %s\n", e.source.c_str(),
                device_kind_name(e.device), number_or_dash(e.mean_watts, "%.2f").c_str(),
                number_or_dash(e.joules, "%.3f").c_str(), energy_method_name(e.method),
                number_or_dash(e.counter_joules, "%.3f").c_str(), number_or_dash(e.sampled_joules, "%.3f").c_str(),
                number_or_dash(disagreement_percent, "%+.1f%%").c_str(), number_or_dash(e.peak_watts, "%.2f").c_str(),
                number_or_dash(peak_mib, "%.0f").c_str(), e.flags.describe().c_str());
  }
  std::printf("process: %.3f CPU s (user %.3f, system %.3f) over %.3f s = %.3f cores busy; peak RSS %.1f MiB\n",
              window.cpu_seconds(), window.cpu_user_s, window.cpu_system_s, window.duration_s(),
              window.cpu_utilization(), double(window.peak_rss_bytes) / (1 << 20));
}

void print_sampler(const SamplerStats& stats) {
  std::printf("sampler: %llu ticks, %llu missed; its thread used %.2f ms CPU over %.2f s = %.4f%% of one core\n",
              (unsigned long long)stats.ticks, (unsigned long long)stats.missed_ticks, stats.cpu_seconds * 1e3,
              stats.wall_seconds, stats.cpu_share() * 100);
}

void run_telemetry_command(const TelemetryCommandArgs& args) {
  DeviceInfo device = select_device(args.device);
  std::printf("device: %s (PCI bus id %s)\n", device.short_label().c_str(),
              device.pci_bus_id.empty() ? "not exposed" : device.pci_bus_id.c_str());
  const TelemetryConfig config = telemetry_config(args.telemetry, device.pci_bus_id);
  if (!args.telemetry.gpu_pci_bus_id.empty())
    std::printf("GPU sources matched to PCI bus id %s (--gpu-pci-bus-id)\n", config.gpu_pci_bus_id.c_str());
  Telemetry telemetry(config);
  print_sources(telemetry.sources());
  std::printf("sampling every %d ms for %g s...\n", args.telemetry.sample_ms, args.seconds);
  std::fflush(stdout);
  telemetry.begin_window("telemetry");
  std::this_thread::sleep_for(std::chrono::duration<double>(args.seconds));
  WindowResult window = telemetry.end_window("telemetry");
  print_window(window);
  print_sampler(telemetry.sampler_stats());
}

}  // namespace

void add_telemetry_command(CLI::App& app) {
  auto args = std::make_shared<TelemetryCommandArgs>();
  auto* cmd = app.add_subcommand("telemetry", "List the power/energy sources for a device and measure each for a while");
  cmd->add_option("--seconds", args->seconds, "How long to sample")
      ->check(kPositive)
      ->capture_default_str();
  cmd->add_option("--device", args->device,
                  "OpenCL device: P:D, or part of its name (default: first GPU, else first CPU)");
  add_telemetry_options(*cmd, args->telemetry);
  cmd->callback([args] { run_telemetry_command(*args); });
}

}  // namespace attnscope
