// Host side of the SGEMM kernel family (cl_kernels/matmul.cl): its tile configurations,
// the choice of one per device and problem, and the launch. Ops::gemm and Ops::matmul_*
// go through here; tests use it directly to run every configuration on any device.
#pragma once
#include <string>
#include <vector>

#include "host/runtime.hpp"
#include "model/ops.hpp"

namespace attnscope {

// matmul.cl's tunables: a work-group computes a tile_m × tile_n tile of C with
// (tile_n/wpt_n) × (tile_m/wpt_m) work-items, each owning a wpt_m × wpt_n micro-tile.
struct GemmConfig {
  int tile_m, tile_n, tile_k, wpt_m, wpt_n;

  size_t work_group_size() const { return size_t(tile_m / wpt_m) * (tile_n / wpt_n); }
  size_t local_bytes() const { return sizeof(float) * tile_k * (tile_m + tile_n + 2); }
  // "-DTILE_M=... -DTRANS_A=..." for matmul.cl.
  std::string build_options(bool trans_a, bool trans_b) const;
  std::string label() const;  // "128x128x16/8x8"
};

// Every configuration, largest first; the last one fits any OpenCL device.
const std::vector<GemmConfig>& gemm_configs();

// The configuration for this device and problem: on GPUs the largest tile that fits the
// device's local memory and work-group size and still gives every compute unit work
// (128×128 for the model's products, 64×64 for small ones); on CPUs 32×32.
GemmConfig choose_gemm_config(const DeviceInfo& device, int M, int N, int batch);

// Launches spec with the given configuration. bias (N floats, may be null) is added to
// every row of C before beta·C. Throws Error if the configuration does not fit the
// device or the compiled kernel, or if a matrix exceeds 32-bit indexing.
void launch_gemm(Runtime& rt, const GemmConfig& config, const Ops::GemmSpec& spec,
                 const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& C,
                 const cl::Buffer* bias = nullptr);

// Chooses a configuration (falling back to smaller ones if the compiled kernel allows
// fewer work-items than the configuration needs) and launches.
void run_gemm(Runtime& rt, const Ops::GemmSpec& spec, const cl::Buffer& A, const cl::Buffer& B,
              const cl::Buffer& C, const cl::Buffer* bias = nullptr);

}  // namespace attnscope
