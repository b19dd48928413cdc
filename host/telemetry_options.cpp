#include "host/telemetry_options.hpp"

#include "telemetry/pci_address.hpp"

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
  command
      .add_option("--gpu-pci-bus-id", options.gpu_pci_bus_id,
                  "PCI address of the GPU whose power to read (e.g. 0000:03:00.0; default: the "
                  "OpenCL device's own, where it exposes one)")
      ->check(CLI::Validator(
          [](std::string& text) {
            return parse_pci_address(text) ? std::string() : "'" + text + "' is not a PCI address (DDDD:BB:DD.F)";
          },
          "PCI"));
}

TelemetryConfig telemetry_config(const TelemetryOptions& options, const std::string& gpu_pci_bus_id) {
  TelemetryConfig config;
  config.sysfs_root = options.sysfs_root;
  config.gpu_pci_bus_id = options.gpu_pci_bus_id.empty() ? gpu_pci_bus_id : options.gpu_pci_bus_id;
  config.sample_interval = std::chrono::milliseconds(options.sample_ms);
  return config;
}

}  // namespace attnscope
