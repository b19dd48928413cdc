// Platform/device discovery and selection.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "host/runtime/opencl.hpp"

namespace attnscope {

struct DeviceInfo {
  int platform_index = 0;
  int device_index = 0;
  std::string platform_name;
  std::string name;
  std::string vendor;
  std::string version;         // CL_DEVICE_VERSION
  std::string driver_version;  // CL_DRIVER_VERSION
  bool is_gpu = false;
  bool is_cpu = false;
  unsigned compute_units = 0;
  unsigned clock_mhz = 0;
  uint64_t global_mem_bytes = 0;
  uint64_t local_mem_bytes = 0;
  uint64_t max_alloc_bytes = 0;
  size_t max_work_group_size = 0;
  unsigned base_addr_align_bytes = 0;
  bool fp64 = false;
  std::string pci_bus_id;  // "0000:65:00.0", empty when the driver does not expose it
  std::string tuning_name;  // ATTNSCOPE_DEVICE_LIMITS's tuning=NAME, else empty
  cl::Device device;

  std::string type_name() const;
  // The name the GEMM tuning database is looked up by: tuning_name if set, else name.
  const std::string& tuning_key() const { return tuning_name.empty() ? name : tuning_name; }
  std::string short_label() const;  // "P:D name"
  // Whether the vendor or platform names NVIDIA: the only devices that may ever compile a
  // kernel's inline PTX (each such path is also proven by a probe before it is used).
  bool is_nvidia() const;
};

std::vector<DeviceInfo> list_devices();

// spec: "" → first GPU, else first CPU; "P:D" → platform P device D; anything else →
// first device whose name (or platform name) contains spec, case-insensitive.
// Throws UsageError naming the spec and the available devices when nothing matches.
DeviceInfo select_device(const std::string& spec);

// Multi-line human-readable table used by `attnscope devices`.
std::string describe_devices(const std::vector<DeviceInfo>& devices);

}  // namespace attnscope
