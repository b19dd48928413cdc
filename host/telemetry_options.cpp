#include "host/telemetry_options.hpp"

namespace attnscope {

void add_telemetry_options(CLI::App& command, TelemetryOptions& options) {
  command.add_option("--sample-ms", options.sample_ms, "Power sampling interval in milliseconds")
      ->check(CLI::Range(1, 60000))
      ->capture_default_str();
  command.add_option("--sysfs-root", options.sysfs_root,
                     "Root under which sysfs is found (DIR/sys, or DIR itself if it is a sysfs mount)")
      ->envname("ATTNSCOPE_SYSFS_ROOT")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
}

TelemetryConfig telemetry_config(const TelemetryOptions& options, const std::string& gpu_pci_bus_id) {
  TelemetryConfig config;
  config.sysfs_root = options.sysfs_root;
  config.gpu_pci_bus_id = gpu_pci_bus_id;
  config.sample_interval = std::chrono::milliseconds(options.sample_ms);
  return config;
}

}  // namespace attnscope
