// FP32 and TF32 peak throughput by device name, for MFU. Vendor datasheet figures (dense FP32,
// boost clock); a device not in the table has no MFU unless --peak-tflops is given.
#pragma once
#include <optional>
#include <string>

#include "model/ops.hpp"  // Precision

namespace attnscope {

struct PeakFlops {
  double tflops = 0;
  std::string source;  // "table: NVIDIA H100 SXM5 datasheet" or "--peak-tflops"
};

std::optional<PeakFlops> fp32_peak(const std::string& device_name);
// Dense TF32 tensor-core peak (without sparsity), for MFU of --precision tf32 runs.
std::optional<PeakFlops> tf32_peak(const std::string& device_name);
// The peak a run at `precision` is measured against: FP32, TF32 dense, or for 3xtf32 a
// third of TF32 dense (each fp32 product takes three tensor-core products).
std::optional<PeakFlops> precision_peak(Precision precision, const std::string& device_name);

}  // namespace attnscope
