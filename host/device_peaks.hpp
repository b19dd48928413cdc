// FP32 and TF32 peak throughput by device name, for MFU. Vendor datasheet figures (dense FP32,
// boost clock); a device not in the table has no MFU unless --peak-tflops is given.
#pragma once
#include <optional>
#include <string>

namespace attnscope {

struct PeakFlops {
  double tflops = 0;
  std::string source;  // "table: NVIDIA H100 SXM5 datasheet" or "--peak-tflops"
};

std::optional<PeakFlops> fp32_peak(const std::string& device_name);
// Dense TF32 tensor-core peak (without sparsity), for MFU of --precision tf32 runs.
std::optional<PeakFlops> tf32_peak(const std::string& device_name);

}  // namespace attnscope
