// Host side of the SGEMM kernel family (cl_kernels/matmul.cl): its tile configurations,
// the plan (configuration and K split) per device and product, and the launch. Ops::gemm
// and Ops::matmul_* go through here; tests use it directly to run every configuration and
// the split path on any device.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "host/runtime/runtime.hpp"
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

// How a product runs: one configuration, and the number of K-slices whose partial
// products are summed afterwards (1: no split).
struct GemmPlan {
  GemmConfig config;
  int k_splits = 1;
};

// Split-K applies to products whose K-slices are contiguous blocks of both operands,
// i.e. dweight's shape (trans_a, not trans_b), one slice, no bias.
bool gemm_splittable(const Ops::GemmSpec& spec, bool has_bias);

// The plan for this device and product. GPUs: 128×128 tiles when they give two work-groups
// per compute unit with little padding; a dweight-shaped product with too few tiles (small
// M·N, long K) keeps 128×128 and splits K into up to 16 slices instead; otherwise 64×64.
// CPUs: 32×32, no split.
// Configurations must fit the device's local memory and work-group size.
GemmPlan plan_gemm(const DeviceInfo& device, const Ops::GemmSpec& spec, bool has_bias);

// Device scratch of at least `bytes`, owned by the caller (Ops keeps it between calls).
using GemmScratch = std::function<const cl::Buffer&(size_t bytes)>;

// Launches spec as planned. bias (N floats, may be null) is added to every row of C before
// beta·C. With k_splits > 1 (gemm_splittable only), the slices' partial products go to
// scratch and a second kernel adds them in order into C. Throws Error if the configuration
// does not fit the device, or a matrix exceeds 32-bit indexing, or an operand its buffer.
void launch_gemm(Runtime& rt, const GemmPlan& plan, const Ops::GemmSpec& spec, const cl::Buffer& A,
                 const cl::Buffer& B, const cl::Buffer& C, const cl::Buffer* bias,
                 const GemmScratch& scratch);

// Plans, steps down to a smaller configuration if the compiled kernel allows fewer
// work-items than the planned one needs (register pressure), and launches.
void run_gemm(Runtime& rt, const Ops::GemmSpec& spec, const cl::Buffer& A, const cl::Buffer& B,
              const cl::Buffer& C, const cl::Buffer* bias, const GemmScratch& scratch);

}  // namespace attnscope
