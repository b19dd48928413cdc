// Host side of the SGEMM kernel family (cl_kernels/matmul.cl): its tile configurations,
// the plan (configuration and K split) per device and product, and the launch. Ops::gemm
// and Ops::matmul_* go through here; tests use it directly to run every configuration and
// the split path on any device; `attnscope gemm` times and tunes it.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "host/runtime/runtime.hpp"
#include "model/ops.hpp"
#include "model/tf32.hpp"

namespace attnscope {

// matmul.cl's tunables: a work-group computes a tile_m × tile_n tile of C with
// (tile_n/wpt_n) × (tile_m/wpt_m) work-items, each owning a wpt_m × wpt_n micro-tile made
// of 4×4 blocks; K is staged in slabs of tile_k, double-buffered.
struct GemmConfig {
  int tile_m = 0, tile_n = 0, tile_k = 0, wpt_m = 0, wpt_n = 0;

  size_t work_group_size() const { return size_t(tile_m / wpt_m) * (tile_n / wpt_n); }
  size_t local_bytes() const;
  // The kernel's own constraints (micro-tiles of 4×4 blocks, float4 slabs, whole rounds of
  // float4 loads per work-group or fewer).
  bool valid() const;
  // "-DTILE_M=... -DTRANS_A=... -DVECTOR_IO=..." for matmul.cl.
  std::string build_options(bool trans_a, bool trans_b, bool vector_io) const;
  std::string label() const;  // "128x128x8/8x8"
  bool operator==(const GemmConfig& o) const {
    return tile_m == o.tile_m && tile_n == o.tile_n && tile_k == o.tile_k && wpt_m == o.wpt_m &&
           wpt_n == o.wpt_n;
  }
};

// The built-in configurations, largest first; the last one fits any OpenCL device.
const std::vector<GemmConfig>& gemm_configs();
// Every valid configuration that fits the device: the space `attnscope gemm --tune`
// sweeps.
std::vector<GemmConfig> gemm_tuning_space(const DeviceInfo& device);
bool gemm_fits_device(const GemmConfig& config, const DeviceInfo& device);

// How a product runs: one configuration, and the number of K-slices whose partial
// products are summed afterwards (1: no split). `source` says where the plan came from:
// "tuned" (the tuning database's entry for this device and shape class) or "default".
struct GemmPlan {
  GemmConfig config;
  int k_splits = 1;
  std::string source = "default";
};

// Split-K applies to products whose K-slices are contiguous blocks of both operands,
// i.e. dweight's shape (trans_a, not trans_b), one slice, no bias.
bool gemm_splittable(const Ops::GemmSpec& spec, bool has_bias);

// "nt", "nn", "tn", "tt": whether op(A) and op(B) are transposed.
std::string gemm_layout(const Ops::GemmSpec& spec);
// The tuning database's key for a product: layout, batched or not, and each of M, N, K
// as s (< 1024), m (< 4096) or l: "nt:l-m-s", "nt:b:s-s-s".
std::string gemm_shape_class(const Ops::GemmSpec& spec);
// The name a product's launches carry in the kernel profile: "gemm_nt_8192x2304x768",
// "gemm_nt_512x512x64_b192".
std::string gemm_profile_name(const Ops::GemmSpec& spec);

// The plan for this device and product: the tuning database's entry for the device and
// the product's shape class where there is one (and it fits), else the defaults — GPUs:
// the built-in configuration whose tiles fill the compute units best, split-K for
// dweight-shaped products with too few tiles; CPUs: 32×32, no split.
// `table` is the tuning database in use (tests pass their own).
class GemmTuningTable;
const GemmTuningTable& gemm_tuning_table();
GemmPlan plan_gemm(const DeviceInfo& device, const Ops::GemmSpec& spec, bool has_bias,
                   const GemmTuningTable& table = gemm_tuning_table());

// The build options of matmul.cl that `config` needs for `spec` (its transposes, and
// VECTOR_IO where every row of A, B and C starts on a 16-byte boundary).
std::string gemm_build_options(const GemmConfig& config, const Ops::GemmSpec& spec);
extern const char* const kGemmKernelFile;  // "matmul.cl"
extern const char* const kTf32KernelFile;  // "matmul_tf32.cl"

// How a product runs on tensor cores (Precision::tf32 or tf32x3): matmul_tf32.cl's tiles and
// the K split, from the tuning database's entry of that precision for the device and shape
// class, else the default tiles (split-K as for fp32's defaults); config.split for tf32x3.
struct Tf32Plan {
  Tf32GemmConfig config;
  int k_splits = 1;
  std::string source = "default";
};
Tf32Plan plan_gemm_tf32(const DeviceInfo& device, const Ops::GemmSpec& spec, bool has_bias,
                        Precision precision = Precision::tf32,
                        const GemmTuningTable& table = gemm_tuning_table());

// Device scratch of at least `bytes`, owned by the caller (Ops keeps it between calls).
using GemmScratch = std::function<const cl::Buffer&(size_t bytes)>;

// Launches spec as planned. bias (N floats, may be null) is added to every row of C before
// beta·C. With k_splits > 1 (gemm_splittable only), the slices' partial products go to
// scratch and a second kernel adds them in order into C. Throws Error if the configuration
// does not fit the device, or a matrix exceeds 32-bit indexing, or an operand its buffer.
void launch_gemm(Runtime& rt, const GemmPlan& plan, const Ops::GemmSpec& spec, const cl::Buffer& A,
                 const cl::Buffer& B, const cl::Buffer& C, const cl::Buffer* bias,
                 const GemmScratch& scratch);

// Launches spec on tensor cores as planned (the caller has probed the device).
void launch_gemm_tf32_plan(Runtime& rt, const Tf32Plan& plan, const Ops::GemmSpec& spec,
                           const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& C,
                           const cl::Buffer* bias, const GemmScratch& scratch);

// Plans, steps down to a smaller configuration if the compiled kernel allows fewer
// work-items than the planned one needs (register pressure), and launches. With tf32 or
// tf32x3 the product runs on tensor cores (model/tf32.hpp; the caller has probed).
void run_gemm(Runtime& rt, const Ops::GemmSpec& spec, const cl::Buffer& A, const cl::Buffer& B,
              const cl::Buffer& C, const cl::Buffer* bias, const GemmScratch& scratch,
              Precision precision = Precision::fp32);

}  // namespace attnscope
