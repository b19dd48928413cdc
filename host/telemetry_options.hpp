// The telemetry options every measuring subcommand shares (--sample-ms, --sysfs-root),
// so that `attnscope telemetry`, the trainer and the benchmark spell them alike.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "telemetry/telemetry.hpp"

namespace attnscope {

struct TelemetryOptions {
  int sample_ms = 50;
  std::string sysfs_root = "/";
  std::string gpu_pci_bus_id;  // "": the OpenCL device's own
};

// Adds --sample-ms MS (1..60000), --sysfs-root DIR (env ATTNSCOPE_SYSFS_ROOT; an
// existing directory) and --gpu-pci-bus-id ID (a PCI address) to `command`, writing into
// `options`, which must outlive parsing.
void add_telemetry_options(CLI::App& command, TelemetryOptions& options);

// The configuration for the OpenCL device with this PCI bus id (DeviceInfo::pci_bus_id),
// or for the GPU --gpu-pci-bus-id names.
TelemetryConfig telemetry_config(const TelemetryOptions& options, const std::string& gpu_pci_bus_id);

}  // namespace attnscope
