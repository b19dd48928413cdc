// TF32 tensor-core GEMM on NVIDIA GPUs (cl_kernels/matmul_tf32.cl, kernel gemm_tf32): the host
// emulation of its operand rounding, a CPU reference, the launch, and the run-time probe that
// proves the path on a device before it is used.
#pragma once
#include <string>
#include <vector>

#include "host/runtime/runtime.hpp"
#include "model/ops.hpp"

namespace attnscope {

// cvt.rna.tf32.f32 on the host: round to nearest with ties away from zero, keeping 10 of
// fp32's 23 mantissa bits (the low 13 bits of the result are 0). Works on the bit pattern,
// so subnormals round the same way, and a carry out of the mantissa moves to the next
// binade. NaN and ±inf are returned unchanged. Overflow: a finite value whose magnitude is
// at least the largest TF32 value plus half its unit in the last place (bits 0x7F7FF000,
// about 3.4025e38) rounds to ±inf, as an overflowing IEEE rounding does (cvt without
// .satfinite).
float round_to_tf32(float x);

// One slice of the product gemm_tf32 computes, on the CPU: c = alpha · op(a)·op(b) (+ bias[n])
// + beta · c with every element of a and b rounded by round_to_tf32, products summed in
// double. Layouts as for reference::gemm; bias may be null; c is not read when beta == 0.
void reference_tf32_gemm(float* c, const float* a, const float* b, const float* bias, int M, int N,
                         int K, bool trans_a, bool trans_b, float alpha, float beta);

// gemm_tf32's tunables (matmul_tf32.cl): a work-group of warps_m × warps_n warps (32
// work-items each, 1-D local size) computes a tile_m × tile_n tile of C in K-slabs of tile_k,
// each warp a (tile_m / warps_m) × (tile_n / warps_n) sub-tile. The default, 128x128x16/2x4w
// (warps of 64 × 32, 64 accumulators per lane, 32 KiB of local memory), keeps within 128
// registers, so that two work-groups (16 warps) share an SM.
struct Tf32GemmConfig {
  int tile_m = 128, tile_n = 128, tile_k = 16, warps_m = 2, warps_n = 4;
  // Tiles are scheduled in bands of group_m tile rows, each walked column by column (L2
  // reuse of A and B panels among the work-groups in flight; 1: plain row-major order).
  int group_m = 8;
  // 3xTF32 (Precision::tf32x3): unrounded stages, each fragment split into a TF32 part and
  // a TF32 remainder, three mma per tile and k-step (-DSPLIT_TF32=1). Not a tunable: the
  // planner sets it from the precision.
  bool split = false;

  size_t work_group_size() const { return size_t(warps_m) * warps_n * 32; }
  int warp_tile_m() const { return warps_m > 0 ? tile_m / warps_m : 0; }
  int warp_tile_n() const { return warps_n > 0 ? tile_n / warps_n : 0; }
  // The kernel's constraints: tile_k 8, 16, 32 or 64; warp tiles of whole multiples of 32
  // rows and 16 columns; at most 1024 work-items; group_m ≥ 1.
  bool valid() const;
  // The double-buffered stages, 2 · 4 · tile_k · (tile_m + tile_n) bytes — the kernel's
  // __local use without EMULATE_MMA, the same for every transpose case (no padding).
  size_t local_bytes(bool trans_a = false, bool trans_b = false) const;
  // Registers a work-item needs, about: fp32 accumulators, one k-step of fragments, the
  // prefetched slab and half as much again while it is rounded and stored, addressing.
  // With split, the fragments' remainders too. The basis of register_cap and of the tuning
  // space's register filter.
  int registers_needed() const;
  // The register limit its NVIDIA build asks for (-cl-nv-maxrregcount, the OpenCL
  // counterpart of __launch_bounds__): as many registers as let two work-groups share an
  // SM (65536 registers per SM on sm_80/sm_90) when registers_needed fits in that, else as
  // many as one work-group may have; 255 (no limit passed) when that is the larger.
  // (The cap works only because the kernel then leaves its work-group size undeclared:
  // REGISTER_CAP. For 128x128x16/2x4w on the H200 it makes 158 registers 126 and the
  // GPT-2 products 22% faster: results/20261203-tf32-register-cap_NVIDIA-H200.)
  int register_cap() const;
  // "-DTILE_M=... -DTRANS_A=... -DVECTOR_IO=..." for matmul_tf32.cl, with
  // "-DREGISTER_CAP=1 -cl-nv-maxrregcount=register_cap()" where that is below 255, unless
  // emulate_mma (REGISTER_CAP leaves the work-group size undeclared, or ptxas would ignore
  // the cap). vector_io: every row of A, B and C starts 16-byte aligned (gemm_rows_aligned,
  // model/gemm_spec.hpp), so loads need no scalar path. emulate_mma adds -DEMULATE_MMA=1:
  // tests on CPU devices only, never in production.
  std::string build_options(bool trans_a, bool trans_b, bool emulate_mma = false,
                            bool vector_io = false) const;
  // "128x128x16/2x4w", "…/2x4w/g1" when group_m ≠ 8, "…/3x" when split.
  std::string label() const;
  bool operator==(const Tf32GemmConfig& o) const {
    return tile_m == o.tile_m && tile_n == o.tile_n && tile_k == o.tile_k &&
           warps_m == o.warps_m && warps_n == o.warps_n && group_m == o.group_m &&
           split == o.split;
  }
};

// Whether config's work-group and local memory fit the device.
bool tf32_fits_device(const Tf32GemmConfig& config, const DeviceInfo& device);

// Every valid configuration that fits the device (split ones with split): tiles of 64, 128,
// 192 or 256 in M and N,
// K-slabs of 16 or 32, warps of 32 or 64 rows by 32 or 64 columns, group_m 8 — leaving out
// those whose registers_needed exceeds what one work-group may have (65536 / work-group
// size, at most 255). What a tuner sweeps; tf32_recommended_configs lists the ones to try
// first.
std::vector<Tf32GemmConfig> tf32_tuning_space(const DeviceInfo& device, bool split = false);

// The configurations worth timing first on an H100/H200-class GPU, best guess first (all
// in tf32_tuning_space of a 48 KiB / 1024 device); the tuner tries them before the rest.
std::vector<Tf32GemmConfig> tf32_recommended_configs(bool split = false);

// Launches gemm_tf32 for spec (every slice), exactly as matmul.cl's gemm would be (same
// arguments; bias may be null): global (⌈N/tile_n⌉·work_group_size, ⌈M/tile_m⌉, batch),
// local (work_group_size, 1, 1), VECTOR_IO where gemm_rows_aligned. Throws Error for a bad
// shape, an invalid config, a matrix of 2^31 elements or more, or an operand larger than
// its buffer. Nothing checks that the device is NVIDIA: call probe_tf32 first, except with
// emulate_mma (tests on CPU devices). If the compiler rejects -cl-nv-maxrregcount, the
// kernel is built without it (once, with a note on stderr). ATTNSCOPE_TF32_VERBOSE=1 adds
// -cl-nv-verbose (ptxas's register and spill counts in the build log: see
// ATTNSCOPE_BUILD_LOG). profile_name: the launch's name in the kernel profile ("" →
// "gemm_tf32").
void launch_gemm_tf32(Runtime& rt, const Tf32GemmConfig& config, const Ops::GemmSpec& spec,
                      const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& C,
                      const cl::Buffer* bias, bool emulate_mma = false,
                      const std::string& profile_name = "");

// Whether gemm_tf32 can run on rt's device, and if not, why (one line).
struct Tf32Probe {
  bool available = false;
  std::string reason;  // empty when available
};

// Checks, in order, and stops at the first failure (split: the 3xtf32 path, matmul_tf32.cl
// built with -DSPLIT_TF32=1 and checked against tf32x3_probe_data's exact product instead):
// the device is an NVIDIA GPU
// (cl_nv_device_attribute_query) of compute capability ≥ 8.0 — so no other device ever
// compiles matmul_tf32.cl's inline PTX —; matmul_tf32.cl builds; tf32_probe runs and its
// 16×8 product equals, bit for bit, the host emulation (tf32_probe_product with
// round_to_tf32), and its quad shuffles (the tiled attention's softmax exchange) move
// values between lanes as tf32_probe_exchange says. Never throws for a device that cannot do it; the reason names the device,
// or the build log's first line, or the first differing element.
Tf32Probe probe_tf32(Runtime& rt, bool split = false);

// The probe's operands: a is 16×8 and b 8×8 ([k][n]), both row-major. Every element has
// mantissa bits below TF32's 10 that rounding changes, one per row of a is a tie, signs
// are mixed; rounded (cvt.rna) they have few significant bits, so every product and every
// partial sum of the 16×8 result is exact in fp32, in any order.
struct Tf32ProbeData {
  std::vector<float> a, b;
};
Tf32ProbeData tf32_probe_data();

// c[16×8] = operand(a)·operand(b) for the probe's data with each element of a and b first
// passed through `operand` (round_to_tf32 for what the device must produce; identity for
// fp32 arithmetic; truncation for a kernel that skipped the rounding), summed in double and
// rounded to float once.
std::vector<float> tf32_probe_product(const Tf32ProbeData& data, float (*operand)(float));

// 3xtf32's probe operands: a[m][k] = ±μ(1 + 2^-14), b[k][n] = ±ν(1 + 2^-13) with μ, ν in
// 1..4 and the signs of tf32_probe_data (every product of c[m][n] has one sign). Split,
// hi = ±μ and ±ν, lo = ±μ·2^-14 and ±ν·2^-13, all exact in TF32, and hi·hi + hi·lo + lo·hi
// = ±μν(1 + 3·2^-14): each sum of c is a multiple of 2^-14 below 2^8, exact in fp32 in any
// order. One mma on rounded operands gives ±Σμν instead; dropping either cross term is off
// by a multiple of 2^-14 or 2^-13.
Tf32ProbeData tf32x3_probe_data();
// c[16×8] for split operands: Σ_k hi_a·hi_b + hi_a·lo_b + lo_a·hi_b with split_tf32, in
// double, rounded to float once.
std::vector<float> tf32x3_probe_product(const Tf32ProbeData& data);
// split_tf32_operand (mma_tf32.cl) on the host: hi = x rounded to TF32 (round_to_tf32 for a
// finite x that does not round to inf), lo = round_to_tf32(x − hi).
void split_tf32(float x, float* hi, float* lo);

// What tf32_probe's shuffles must give for its product c (16×8): for i = 0, 1 and each lane
// l of the warp, element 32·i + l is c0 of lane l ^ (i + 1) — c[g][2t] with g, t that lane's
// (lane >> 2, lane & 3).
std::vector<float> tf32_probe_exchange(const std::vector<float>& c);

}  // namespace attnscope
