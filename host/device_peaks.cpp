#include "host/device_peaks.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

namespace attnscope {
namespace {

struct Entry {
  const char* name_contains;  // lower case; the first match wins, so specific names first
  double tflops;
  const char* datasheet;
};

// Dense FP32 (non-tensor) TFLOP/s from the vendors' datasheets.
const std::vector<Entry>& table() {
  static const std::vector<Entry> entries = {
      {"h100 pcie", 51.2, "NVIDIA H100 PCIe datasheet"},
      {"h100 nvl", 60.0, "NVIDIA H100 NVL datasheet"},
      {"h100", 66.9, "NVIDIA H100 SXM5 datasheet"},
      {"h200", 66.9, "NVIDIA H200 SXM datasheet"},
      {"a100", 19.5, "NVIDIA A100 datasheet"},
      {"l40s", 91.6, "NVIDIA L40S datasheet"},
      {"rtx 4090", 82.6, "NVIDIA GeForce RTX 4090 specifications"},
      {"rtx 3090", 35.6, "NVIDIA GeForce RTX 3090 specifications"},
      {"v100", 15.7, "NVIDIA V100 SXM2 datasheet"},
      {"mi300x", 163.4, "AMD Instinct MI300X datasheet"},
      {"mi250x", 47.9, "AMD Instinct MI250X datasheet"},
  };
  return entries;
}

// Dense TF32 tensor-core TFLOP/s (the datasheets' figures with sparsity, halved).
const std::vector<Entry>& tf32_table() {
  static const std::vector<Entry> entries = {
      {"h100 pcie", 378.0, "NVIDIA H100 PCIe datasheet"},
      {"h100 nvl", 417.5, "NVIDIA H100 NVL datasheet"},
      {"h100", 494.7, "NVIDIA H100 SXM5 datasheet"},
      {"h200", 494.7, "NVIDIA H200 SXM datasheet"},
      {"a100", 156.0, "NVIDIA A100 datasheet"},
  };
  return entries;
}

std::optional<PeakFlops> lookup(const std::vector<Entry>& entries, const std::string& device_name) {
  std::string name = device_name;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  for (const auto& e : entries)
    if (name.find(e.name_contains) != std::string::npos)
      return PeakFlops{e.tflops, std::string("table: ") + e.datasheet};
  return std::nullopt;
}

}  // namespace

std::optional<PeakFlops> tf32_peak(const std::string& device_name) {
  return lookup(tf32_table(), device_name);
}

std::optional<PeakFlops> fp32_peak(const std::string& device_name) {
  return lookup(table(), device_name);
}

std::optional<PeakFlops> precision_peak(Precision precision, const std::string& device_name) {
  if (precision == Precision::fp32) return fp32_peak(device_name);
  std::optional<PeakFlops> peak = tf32_peak(device_name);
  if (peak && precision == Precision::tf32x3) {
    peak->tflops /= 3;
    peak->source += ", divided by 3 (3xtf32: three TF32 products per product)";
  }
  return peak;
}

}  // namespace attnscope
