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
// work-items each, 1-D local size) computes a tile_m × tile_n tile of C in K-steps of tile_k.
struct Tf32GemmConfig {
  int tile_m = 128, tile_n = 128, tile_k = 32, warps_m = 2, warps_n = 4;

  size_t work_group_size() const { return size_t(warps_m) * warps_n * 32; }
  // The two stages (their pitches depend on the transposes) — the kernel's __local use
  // without EMULATE_MMA.
  size_t local_bytes(bool trans_a, bool trans_b) const;
  // "-DTILE_M=... -DTRANS_A=..." for matmul_tf32.cl. emulate_mma adds -DEMULATE_MMA=1: tests
  // on CPU devices only, never in production.
  std::string build_options(bool trans_a, bool trans_b, bool emulate_mma = false) const;
};

// Launches gemm_tf32 for spec (every slice), exactly as matmul.cl's gemm would be (same
// arguments; bias may be null): global (⌈N/tile_n⌉·work_group_size, ⌈M/tile_m⌉, batch),
// local (work_group_size, 1, 1). Throws Error for a bad shape, a matrix of 2^31 elements or
// more, or an operand larger than its buffer. Nothing checks that the device is NVIDIA:
// call probe_tf32 first, except with emulate_mma (tests on CPU devices). profile_name:
// the launch's name in the kernel profile ("" → "gemm_tf32").
void launch_gemm_tf32(Runtime& rt, const Tf32GemmConfig& config, const Ops::GemmSpec& spec,
                      const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& C,
                      const cl::Buffer* bias, bool emulate_mma = false,
                      const std::string& profile_name = "");

// Whether gemm_tf32 can run on rt's device, and if not, why (one line).
struct Tf32Probe {
  bool available = false;
  std::string reason;  // empty when available
};

// Checks, in order, and stops at the first failure: the device is an NVIDIA GPU
// (cl_nv_device_attribute_query) of compute capability ≥ 8.0 — so no other device ever
// compiles matmul_tf32.cl's inline PTX —; matmul_tf32.cl builds; tf32_probe runs and its
// 16×8 product equals, bit for bit, the host emulation (tf32_probe_product with
// round_to_tf32). Never throws for a device that cannot do it; the reason names the device,
// or the build log's first line, or the first differing element.
Tf32Probe probe_tf32(Runtime& rt);

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

}  // namespace attnscope
