#include "telemetry/pci_address.hpp"

#include <cctype>
#include <cstdio>
#include <vector>

namespace attnscope {
namespace {

// Parses a non-empty run of hex digits no longer than max_digits.
std::optional<uint32_t> parse_hex_field(const std::string& text, size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 16 + uint32_t(std::isdigit(static_cast<unsigned char>(c))
                                      ? c - '0'
                                      : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
  }
  return value;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts(1);
  for (char c : text) {
    if (c == separator)
      parts.emplace_back();
    else
      parts.back() += c;
  }
  return parts;
}

std::string format_pci(const char* format, const PciAddress& a) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, format, a.domain, a.bus, a.device, a.function);
  return buffer;
}

}  // namespace

std::optional<PciAddress> parse_pci_address(const std::string& text) {
  std::vector<std::string> fields = split(text, ':');
  if (fields.size() == 2) fields.insert(fields.begin(), "0");
  if (fields.size() != 3) return std::nullopt;
  std::vector<std::string> device_function = split(fields[2], '.');
  if (device_function.size() != 2) return std::nullopt;
  auto domain = parse_hex_field(fields[0], 8);
  auto bus = parse_hex_field(fields[1], 2);
  auto device = parse_hex_field(device_function[0], 2);
  auto function = parse_hex_field(device_function[1], 1);
  if (!domain || !bus || !device || !function || *device > 0x1f || *function > 7) return std::nullopt;
  return PciAddress{*domain, *bus, *device, *function};
}

std::string sysfs_pci_string(const PciAddress& address) {
  return format_pci("%04x:%02x:%02x.%x", address);
}

std::string nvml_pci_string(const PciAddress& address) {
  return format_pci("%08x:%02x:%02x.%x", address);
}

}  // namespace attnscope
