// PCI addresses as the different interfaces spell them. OpenCL and sysfs write
// "0000:65:00.0" (4-hex-digit domain), NVML writes "00000000:65:00.0" (8 digits), some
// tools omit the domain ("65:00.0"). Devices are matched by the parsed address, never
// by string comparison or by index.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace attnscope {

struct PciAddress {
  uint32_t domain = 0;
  uint32_t bus = 0;
  uint32_t device = 0;
  uint32_t function = 0;

  bool operator==(const PciAddress& o) const {
    return domain == o.domain && bus == o.bus && device == o.device && function == o.function;
  }
  bool operator!=(const PciAddress& o) const { return !(*this == o); }
};

// Parses "[domain:]bus:device.function" in hex, any case; nullopt when malformed or
// out of range (bus ≤ ff, device ≤ 1f, function ≤ 7).
std::optional<PciAddress> parse_pci_address(const std::string& text);

// "0000:65:00.0": the sysfs and OpenCL spelling.
std::string sysfs_pci_string(const PciAddress& address);

// "00000000:65:00.0": the spelling nvmlDeviceGetHandleByPciBusId_v2 documents.
std::string nvml_pci_string(const PciAddress& address);

}  // namespace attnscope
