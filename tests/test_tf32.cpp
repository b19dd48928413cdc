// The TF32 tensor-core GEMM (cl_kernels/matmul_tf32.cl, model/tf32.hpp): the host emulation of
// cvt.rna.tf32.f32, the run-time probe and its data, and the whole gemm_tf32 kernel with its
// tensor-core instructions emulated (EMULATE_MMA), which runs on any device (PoCL in CI):
// tiling, staging, edges, epilogue and the PTX fragment mapping. On an NVIDIA GPU
// (ATTNSCOPE_TEST_DEVICE) the probe must pass and the real kernel is checked too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "host/runtime/error.hpp"
#include "model/gemm_spec.hpp"
#include "model/gemm_tuning.hpp"
#include "model/reference/layers.hpp"
#include "model/tf32.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using testing::from_device;
using testing::poisoned;
using testing::random_vector;
using testing::relative_error;
using testing::shared_runtime;
using testing::to_device;

constexpr double kTolerance = 1e-5;  // fp32 sums of TF32 products against a double reference
// 3xtf32 against the fp32 operands' double product: each product within about 2^-21, the
// fp32 sums over K ≤ 300 (measured on PoCL: ≈ 1e-7).
constexpr double kSplitTolerance = 1e-6;

float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

// ---------------------------------------------------------------- round_to_tf32

TEST(Tf32Rounding, HandComputedCases) {
  struct Case {
    uint32_t in, out;
    const char* what;
  };
  // TF32 keeps bits 31..13; the dropped 13 bits decide: < 0x1000 down, ≥ 0x1000 up (in
  // magnitude), 0x1000 exactly being the tie.
  const Case cases[] = {
      {0x3f800000, 0x3f800000, "1 is exact"},
      {0x3f802000, 0x3f802000, "1 + 2^-10 is exact"},
      {0x3f801000, 0x3f802000, "1 + 2^-11: tie, away from zero (ties-to-even would give 1)"},
      {0x3f803000, 0x3f804000, "1 + 3·2^-11: tie, away from zero"},
      {0x3f800fff, 0x3f800000, "just below the tie: down"},
      {0x3f801001, 0x3f802000, "just above the tie: up"},
      {0xbf801000, 0xbf802000, "-(1 + 2^-11): tie, away from zero is down"},
      {0xbf800fff, 0xbf800000, "negative, below the tie: towards zero"},
      {0x3ffff000, 0x40000000, "2 - 2^-11: tie, carries into the exponent: 2"},
      {0x3fffffff, 0x40000000, "2 - 2^-23: carries into the exponent: 2"},
      {0xbfffffff, 0xc0000000, "-(2 - 2^-23): -2"},
      {0x3fffe000, 0x3fffe000, "largest TF32 below 2 is exact"},
      {0x00000000, 0x00000000, "+0"},
      {0x80000000, 0x80000000, "-0"},
      {0x00000fff, 0x00000000, "smallest subnormals round to +0"},
      {0x80000fff, 0x80000000, "negative ones to -0"},
      {0x00001000, 0x00002000, "subnormal tie: away from zero"},
      {0x80001000, 0x80002000, "negative subnormal tie: away from zero"},
      {0x00003000, 0x00004000, "subnormal 3·2^-137: tie, away"},
      {0x007ff000, 0x00800000, "largest subnormals carry into the smallest normal"},
      {0x7f7fe000, 0x7f7fe000, "largest TF32 is exact"},
      {0x7f7fefff, 0x7f7fe000, "below half an ulp above it: down"},
      {0x7f7ff000, 0x7f800000, "half an ulp above the largest TF32: overflows to inf"},
      {0x7f7fffff, 0x7f800000, "FLT_MAX overflows to inf"},
      {0xff7fffff, 0xff800000, "-FLT_MAX to -inf"},
      {0x7f800000, 0x7f800000, "inf"},
      {0xff800000, 0xff800000, "-inf"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(bits(round_to_tf32(from_bits(c.in))), c.out)
        << std::hex << "0x" << c.in << ": " << c.what;
  // NaN stays NaN, also one whose payload sits only in the dropped bits (rounding the bit
  // pattern blindly would carry it into inf or clear it to inf).
  for (uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7f801000u, 0x7fbfffffu})
    EXPECT_TRUE(std::isnan(round_to_tf32(from_bits(nan)))) << std::hex << nan;
  // Every result has its low 13 bits clear.
  for (float x : random_vector(1000, 100.f)) EXPECT_EQ(bits(round_to_tf32(x)) & 0x1fffu, 0u) << x;
}

// ---------------------------------------------------------------- split (3xtf32)

// hi is x rounded to TF32, lo the remainder rounded to TF32; both have their low 13 bits
// clear, and hi + lo is within 2^-22 of x (the remainder has at most 13 significant bits).
TEST(Tf32Split, HandComputedCasesAndBounds) {
  float hi, lo;
  split_tf32(1.f + std::ldexp(1.f, -14), &hi, &lo);
  EXPECT_EQ(hi, 1.f);
  EXPECT_EQ(lo, std::ldexp(1.f, -14));
  // Above the tie: hi rounds up, lo is negative.
  split_tf32(from_bits(0x3f801008), &hi, &lo);  // 1 + 2^-11 + 2^-20
  EXPECT_EQ(bits(hi), 0x3f802000u);              // 1 + 2^-10
  EXPECT_EQ(double(hi) + double(lo), 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -20));
  EXPECT_LT(lo, 0.f);
  // lo with 13 significant bits: its rounding is the only loss.
  split_tf32(from_bits(0x3f800fff), &hi, &lo);  // 1 + 0xfff·2^-23
  EXPECT_EQ(hi, 1.f);
  EXPECT_EQ(bits(lo), bits(round_to_tf32(float(0xfff * std::ldexp(1.0, -23)))));
  for (float x : random_vector(10000, 1000.f)) {
    split_tf32(x, &hi, &lo);
    EXPECT_EQ(bits(hi) & 0x1fffu, 0u) << x;
    EXPECT_EQ(bits(lo) & 0x1fffu, 0u) << x;
    EXPECT_LE(std::fabs(double(hi) + double(lo) - double(x)), std::ldexp(std::fabs(double(x)), -22))
        << x;
  }
}

// The split probe's product is exact in fp32 in any order, and one mma on rounded operands,
// or three with either cross term missing, gives something else in every element.
TEST(Tf32Probe, SplitDataTellsThreeMmaFromOneAndIsExact) {
  const Tf32ProbeData data = tf32x3_probe_data();
  const std::vector<float> want = tf32x3_probe_product(data);
  const std::vector<float> one = tf32_probe_product(data, round_to_tf32);
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      std::vector<float> terms[3];  // hi·hi, hi·lo, lo·hi
      for (int k = 0; k < 8; ++k) {
        float a_hi, a_lo, b_hi, b_lo;
        split_tf32(data.a[m * 8 + k], &a_hi, &a_lo);
        split_tf32(data.b[k * 8 + n], &b_hi, &b_lo);
        EXPECT_NE(a_lo, 0.f);
        EXPECT_NE(b_lo, 0.f);
        terms[0].push_back(a_hi * b_hi), terms[1].push_back(a_hi * b_lo);
        terms[2].push_back(a_lo * b_hi);
      }
      const float w = want[m * 8 + n];
      EXPECT_NE(w, one[m * 8 + n]) << m << "," << n;
      float forward = 0.f, backward = 0.f, no_hi_lo = 0.f, no_lo_hi = 0.f;
      for (int i = 0; i < 3; ++i)
        for (int k = 0; k < 8; ++k) {
          forward += terms[i][k];
          backward += terms[2 - i][7 - k];
          if (i != 1) no_hi_lo += terms[i][k];
          if (i != 2) no_lo_hi += terms[i][k];
        }
      EXPECT_EQ(forward, w) << m << "," << n;
      EXPECT_EQ(backward, w) << m << "," << n;
      EXPECT_NE(no_hi_lo, w) << m << "," << n;
      EXPECT_NE(no_lo_hi, w) << m << "," << n;
    }
}

// ---------------------------------------------------------------- probe

float identity(float x) { return x; }
float truncated(float x) { return from_bits(bits(x) & 0xffffe000u); }
float ties_to_even(float x) {  // TF32 rounding a device might wrongly use
  const uint32_t u = bits(x);
  return from_bits((u + 0xfffu + ((u >> 13) & 1u)) & 0xffffe000u);
}

TEST(Tf32Probe, DataDistinguishesRoundedFromUnroundedArithmetic) {
  const Tf32ProbeData data = tf32_probe_data();
  ASSERT_EQ(data.a.size(), 16u * 8u);
  ASSERT_EQ(data.b.size(), 8u * 8u);
  // Every operand element is changed by the rounding.
  for (float x : data.a) EXPECT_NE(bits(round_to_tf32(x)), bits(x)) << x;
  for (float x : data.b) EXPECT_NE(bits(round_to_tf32(x)), bits(x)) << x;
  const std::vector<float> rounded = tf32_probe_product(data, round_to_tf32);
  const std::vector<float> plain = tf32_probe_product(data, identity);
  const std::vector<float> cut = tf32_probe_product(data, truncated);
  const std::vector<float> even = tf32_probe_product(data, ties_to_even);
  for (size_t i = 0; i < rounded.size(); ++i) {
    // Every element of the result tells each wrong arithmetic from the right one.
    EXPECT_NE(rounded[i], plain[i]) << "fp32 arithmetic, element " << i;
    EXPECT_NE(rounded[i], cut[i]) << "truncated operands, element " << i;
    EXPECT_NE(rounded[i], even[i]) << "ties to even, element " << i;
  }
  // The rounded product is exact in fp32 whatever the order of the sum (so the device's
  // result can be compared with ==): forwards, backwards and pairwise in float give the
  // double sum.
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      float p[8];
      for (int k = 0; k < 8; ++k)
        p[k] = round_to_tf32(data.a[m * 8 + k]) * round_to_tf32(data.b[k * 8 + n]);
      float forward = 0.f, backward = 0.f;
      for (int k = 0; k < 8; ++k) forward += p[k], backward += p[7 - k];
      const float pairwise = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
      const float want = rounded[m * 8 + n];
      EXPECT_EQ(forward, want) << m << "," << n;
      EXPECT_EQ(backward, want) << m << "," << n;
      EXPECT_EQ(pairwise, want) << m << "," << n;
      for (int k = 0; k < 8; ++k)  // each product exact too
        EXPECT_EQ(double(p[k]), double(round_to_tf32(data.a[m * 8 + k])) *
                                    double(round_to_tf32(data.b[k * 8 + n])));
    }
}

// The lanes' c0 values differ pairwise, so a shuffle that reads the wrong lane (or none)
// cannot pass the probe; the expected exchange is c0 of lane ^ 1 and lane ^ 2.
TEST(Tf32Probe, ExchangeTellsEveryLaneApart) {
  const std::vector<float> c = tf32_probe_product(tf32_probe_data(), round_to_tf32);
  std::set<uint32_t> c0;
  for (int lane = 0; lane < 32; ++lane) c0.insert(bits(c[(lane >> 2) * 8 + 2 * (lane & 3)]));
  EXPECT_EQ(c0.size(), 32u);
  const std::vector<float> exchanged = tf32_probe_exchange(c);
  ASSERT_EQ(exchanged.size(), 64u);
  EXPECT_EQ(bits(exchanged[0]), bits(c[2]));        // lane 0 gets lane 1's c0: C[0][2]
  EXPECT_EQ(bits(exchanged[32 + 5]), bits(c[8 + 6]));  // lane 5 gets lane 7's: C[1][6]
}

bool is_nvidia_gpu(const DeviceInfo& d) {
  std::string vendor = d.vendor;
  for (auto& c : vendor) c = char(std::tolower(static_cast<unsigned char>(c)));
  return d.is_gpu && vendor.find("nvidia") != std::string::npos;
}

// On PoCL (CI): unavailable, with a reason naming the device, and no exception (and so
// matmul_tf32.cl's PTX never reaches PoCL's compiler). On an NVIDIA GPU of compute
// capability ≥ 8.0: available (build, run and bit-exact product).
TEST(Tf32Probe, ReportsWhetherTheDeviceCanRunIt) {
  Runtime& rt = shared_runtime();
  Tf32Probe probe;
  EXPECT_NO_THROW(probe = probe_tf32(rt));
  if (!is_nvidia_gpu(rt.device())) {
    EXPECT_FALSE(probe.available);
    EXPECT_NE(probe.reason.find(rt.device().name), std::string::npos) << probe.reason;
    EXPECT_NE(probe.reason.find("NVIDIA GPU with compute capability"), std::string::npos)
        << probe.reason;
    if (rt.device().is_cpu) {
      EXPECT_NE(probe.reason.find("is a CPU (" + rt.device().platform_name + ")"),
                std::string::npos)
          << probe.reason;
    }
  } else {  // the path must work, unless the GPU is older than sm_80
    std::cout << "tf32 probe on " << rt.device().name << ": "
              << (probe.available ? "available" : probe.reason) << "\n";
    EXPECT_TRUE(probe.available || probe.reason.find(" has compute capability ") != std::string::npos)
        << probe.reason;
  }
  EXPECT_EQ(probe.reason.empty(), probe.available) << probe.reason;
}

// tf32_probe with its mma emulated, built with `options`, on `data`: its product and its
// quad exchanges against what the host computes, bit for bit.
void expect_emulated_probe_gives(const Tf32ProbeData& data, const std::string& options,
                                 const std::vector<float>& want) {
  Runtime& rt = shared_runtime();
  auto a = to_device(data.a), b = to_device(data.b);
  auto c = poisoned(16 * 8), exchanged = poisoned(2 * 32);
  cl::Kernel kernel = rt.kernel("matmul_tf32.cl", "tf32_probe", "-DEMULATE_MMA=1" + options);
  set_args(kernel, a.buffer(), b.buffer(), c.buffer(), exchanged.buffer());
  rt.launch(kernel, cl::NDRange(32), cl::NDRange(32));
  const std::vector<float> got = from_device(c, 16 * 8);
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(bits(got[i]), bits(want[i])) << "C[" << i / 8 << "][" << i % 8 << "] " << got[i]
                                           << " vs " << want[i];
  const std::vector<float> got_exchanged = from_device(exchanged, 2 * 32);
  const std::vector<float> want_exchanged = tf32_probe_exchange(want);
  for (size_t i = 0; i < want_exchanged.size(); ++i)
    EXPECT_EQ(bits(got_exchanged[i]), bits(want_exchanged[i]))
        << "mask " << i / 32 + 1 << " lane " << i % 32;
}

// The probe kernel itself, its mma emulated: lane → fragment mapping and the rounding give
// the host's result bit for bit.
TEST(Tf32Probe, EmulatedProbeKernelMatchesHostBitForBit) {
  const Tf32ProbeData data = tf32_probe_data();
  expect_emulated_probe_gives(data, "", tf32_probe_product(data, round_to_tf32));
}

// The split probe kernel (-DSPLIT_TF32=1: MMA_OPERANDS), its mma emulated: the split and the
// three mma give the host's 3xtf32 product bit for bit.
TEST(Tf32Probe, EmulatedSplitProbeKernelMatchesHostBitForBit) {
  const Tf32ProbeData data = tf32x3_probe_data();
  expect_emulated_probe_gives(data, " -DSPLIT_TF32=1", tf32x3_probe_product(data));
}

// ---------------------------------------------------------------- gemm_tf32

struct Result {
  double error = 0;            // slices against reference_tf32_gemm
  double error_unrounded = 0;  // slices against fp32 operands (reference::gemm)
  bool outside_untouched = true;
  std::vector<float> slices;
};

// Runs gemm_tf32 on every slice of s (C poisoned with NaN when beta == 0, else random) and
// the CPU reference with rounded operands.
Result run_tf32_gemm(const Ops::GemmSpec& s, bool with_bias, bool emulate,
                     const Tf32GemmConfig& config = {}) {
  const size_t a_size = size_t(s.M) * s.K, b_size = size_t(s.K) * s.N, c_size = size_t(s.M) * s.N;
  // At least one element each: K = 0 leaves a and b empty, and OpenCL has no empty uploads.
  std::vector<float> a = random_vector(std::max<size_t>(1, s.offset_a + (s.batch - 1) * s.stride_a + a_size));
  std::vector<float> b = random_vector(std::max<size_t>(1, s.offset_b + (s.batch - 1) * s.stride_b + b_size));
  std::vector<float> c = random_vector(s.offset_c + (s.batch - 1) * s.stride_c + c_size);
  if (s.beta == 0.f) c.assign(c.size(), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> bias = random_vector(std::max(s.N, 1));
  auto da = to_device(a), db = to_device(b), dc = to_device(c), dbias = to_device(bias);
  launch_gemm_tf32(shared_runtime(), config, s, da, db, dc, with_bias ? &dbias.buffer() : nullptr,
                   emulate);
  std::vector<float> got = from_device(dc, c.size()), want = c, plain = c;
  Result r;
  std::vector<bool> in_slice(c.size(), false);
  std::vector<float> want_slices, plain_slices;
  for (int z = 0; z < s.batch; ++z) {
    const size_t oc = s.offset_c + z * s.stride_c;
    reference_tf32_gemm(want.data() + oc, a.data() + s.offset_a + z * s.stride_a,
                        b.data() + s.offset_b + z * s.stride_b, with_bias ? bias.data() : nullptr,
                        s.M, s.N, s.K, s.trans_a, s.trans_b, s.alpha, s.beta);
    reference::gemm(plain.data() + oc, a.data() + s.offset_a + z * s.stride_a,
                    b.data() + s.offset_b + z * s.stride_b, s.M, s.N, s.K, s.trans_a, s.trans_b,
                    s.alpha, s.beta);
    for (size_t i = 0; i < c_size; ++i) {
      if (with_bias) plain[oc + i] += bias[i % s.N];
      in_slice[oc + i] = true;
      r.slices.push_back(got[oc + i]);
      want_slices.push_back(want[oc + i]);
      plain_slices.push_back(plain[oc + i]);
    }
  }
  for (size_t i = 0; i < c.size(); ++i)
    if (!in_slice[i] && bits(got[i]) != bits(c[i])) r.outside_untouched = false;
  r.error = relative_error(r.slices, want_slices);
  r.error_unrounded = relative_error(r.slices, plain_slices);
  return r;
}

Ops::GemmSpec spec_of(int M, int N, int K, int transposes) {
  Ops::GemmSpec s;
  s.M = M, s.N = N, s.K = K, s.trans_a = transposes & 1, s.trans_b = transposes & 2;
  return s;
}

// Three slices of 37 × 29 × 23 at odd offsets and strides (every slice misaligned: scalar
// loads and stores), alpha 0.5, beta −1.5.
Ops::GemmSpec odd_batched_spec(int transposes) {
  Ops::GemmSpec s = spec_of(37, 29, 23, transposes);
  s.batch = 3, s.alpha = 0.5f, s.beta = -1.5f;
  s.offset_a = 7, s.offset_b = 3, s.offset_c = 11;
  s.stride_a = 37 * 23 + 5, s.stride_b = 29 * 23 + 1, s.stride_c = 37 * 29 + 13;
  return s;
}

std::string describe(const Ops::GemmSpec& s) {
  return "M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
         " trans_a=" + std::to_string(s.trans_a) + " trans_b=" + std::to_string(s.trans_b) +
         " batch=" + std::to_string(s.batch) + " alpha=" + std::to_string(s.alpha) +
         " beta=" + std::to_string(s.beta);
}

// Shapes: one element; odd sizes with K not a multiple of 8 (one and two K-steps, edge
// tiles in M and N, scalar loads); multiples of 4 (float4 loads everywhere, three K-steps,
// the last one partial); K = 0 (C = bias + beta·C).
const std::vector<std::vector<int>> kShapes = {
    {1, 1, 1}, {129, 130, 17}, {70, 200, 45}, {200, 136, 72}};

void check_emulated(const Ops::GemmSpec& s, bool with_bias) {
  Result r = run_tf32_gemm(s, with_bias, true);
  EXPECT_LT(r.error, kTolerance) << describe(s) << " bias=" << with_bias;
  EXPECT_TRUE(r.outside_untouched) << describe(s) << ": wrote outside its slices";
}

TEST(Tf32Gemm, EmulatedEveryTransposeAndShapeMatchesReference) {
  for (const auto& shape : kShapes)
    for (int t = 0; t < 4; ++t) check_emulated(spec_of(shape[0], shape[1], shape[2], t), false);
}

TEST(Tf32Gemm, EmulatedAlphaBetaBiasAndKZero) {
  for (int t = 0; t < 4; ++t) {
    Ops::GemmSpec s = spec_of(129, 130, 17, t);
    s.alpha = 0.5f, s.beta = -1.5f;
    check_emulated(s, true);
    s = spec_of(70, 200, 45, t);
    s.alpha = -2.f;  // beta = 0: C poisoned, must not be read
    check_emulated(s, true);
    s = spec_of(5, 7, 0, t);
    s.beta = 0.25f;
    check_emulated(s, true);
  }
}

TEST(Tf32Gemm, EmulatedBatchedWithOffsetsAndStrides) {
  for (int t = 0; t < 4; ++t) {
    Ops::GemmSpec s = odd_batched_spec(t);
    check_emulated(s, true);
    // Multiples of 4: the float4 / float2 paths, per slice; beta = 0 on poison.
    s = spec_of(136, 132, 44, t);
    s.batch = 2, s.alpha = 1.f, s.beta = 0.f;
    s.offset_a = 4, s.offset_b = 8, s.offset_c = 12;
    s.stride_a = 136 * 44 + 4, s.stride_b = 132 * 44 + 12, s.stride_c = 136 * 132 + 8;
    check_emulated(s, false);
  }
}

// A smaller configuration (4 warps as 2 × 2, 64 × 64 tiles, warps of 32 × 32, K-steps of 16),
// in bands of 2 tile rows (129 and 200 rows: 3 and 4 tile rows, the last band partial or
// not), two transpose cases each.
TEST(Tf32Gemm, EmulatedOtherTileConfiguration) {
  const Tf32GemmConfig config{64, 64, 16, 2, 2, 2};
  for (int t : {1, 2})
    for (const auto& shape : kShapes) {
      Ops::GemmSpec s = spec_of(shape[0], shape[1], shape[2], t);
      Result r = run_tf32_gemm(s, t == 1, true, config);
      EXPECT_LT(r.error, kTolerance) << describe(s);
      EXPECT_TRUE(r.outside_untouched) << describe(s);
    }
}

// The tuning table's tf32 and 3xtf32 entries, emulated, each in the layout it was tuned for
// (the one the planner gives it) with VECTOR_IO, as GPT-2's aligned products run on the
// GPU: edge tiles in M, N and K, bias, C read (beta ≠ 0) and C poisoned (beta = 0). One
// build per configuration and layout (entries of several shape classes share them): PoCL
// compiles each variant of the kernel for seconds. 3xtf32 entries are held to
// kSplitTolerance against the fp32 operands.
TEST(Tf32Gemm, EmulatedTuningTableEntries) {
  int tested = 0, split = 0;
  std::set<std::string> built;
  for (const auto& entry : gemm_tuning_table().entries()) {
    if (!entry.on_tensor_cores()) continue;
    ASSERT_EQ(entry.tf32.split, entry.precision == "3xtf32") << entry.shape_class;
    const std::string layout = entry.shape_class.substr(0, 2);  // "nt", "nn", "tn"
    if (!built.insert(entry.tf32.label() + " " + layout).second) continue;
    const int t = (layout[0] == 't' ? 1 : 0) | (layout[1] == 't' ? 2 : 0);
    for (const auto& shape : std::vector<std::vector<int>>{{136, 132, 44}, {68, 260, 72}}) {
      Ops::GemmSpec s = spec_of(shape[0], shape[1], shape[2], t);
      ASSERT_TRUE(gemm_rows_aligned(s));
      const bool bias = shape[0] == 136;
      if (bias) s.alpha = 0.5f, s.beta = -1.5f;
      Result r = run_tf32_gemm(s, bias, true, entry.tf32);
      if (entry.tf32.split)
        EXPECT_LT(r.error_unrounded, kSplitTolerance) << entry.tf32.label() << " " << describe(s);
      else
        EXPECT_LT(r.error, kTolerance) << entry.tf32.label() << " " << describe(s);
      EXPECT_TRUE(r.outside_untouched) << entry.tf32.label() << " " << describe(s);
    }
    ++tested, split += entry.tf32.split;
  }
  EXPECT_GT(tested - split, 0) << "the tuning table has no tf32 entries";
  EXPECT_GT(split, 0) << "the tuning table has no 3xtf32 entries";
}

// Configurations of the tuning space, emulated: every transpose, odd shapes (scalar loads,
// edge tiles, K of 1, 2, 3 and 5 slabs — both halves of the two-slab loop body — and K = 0),
// multiples of 4 (VECTOR_IO), batches with odd and aligned offsets and strides, alpha, beta,
// bias, and C poisoned where beta = 0. The default; warps of 64 × 64 (4 per group, two
// slab units per work-item); K-slabs of 32 (warps of 64 × 32, one warp row); 256-row tiles
// (warps of 64 × 64, 8 per group); and 128 × 192 (3 warp columns, 6 per group, whose
// last round of A's staging units is partial: 256 units for 192 work-items). Each
// configuration in two layouts, one the other's complement (NN and TT, or TN and NT: A and B each plain and transposed),
// alternating: every layout of every configuration is a PoCL build of seconds.
TEST(Tf32Gemm, EmulatedTuningSpaceConfigurations) {
  const std::vector<Tf32GemmConfig> configs = {
      {}, {128, 128, 16, 2, 2}, {64, 128, 32, 1, 4}, {256, 128, 16, 4, 2}, {128, 192, 16, 2, 3}};
  const std::vector<std::vector<int>> shapes = {{129, 130, 17}, {70, 200, 45}, {200, 136, 72},
                                                {260, 132, 8}, {5, 7, 0}};
  for (size_t i = 0; i < configs.size(); ++i) {
    const Tf32GemmConfig& config = configs[i];
    ASSERT_TRUE(config.valid()) << config.label();
    for (int t : {int(i % 2), int(i % 2) ^ 3}) {
      for (const auto& shape : shapes) {
        Ops::GemmSpec s = spec_of(shape[0], shape[1], shape[2], t);
        const bool bias = (shape[0] + t) % 2 == 0;
        if (shape[1] == 130) s.alpha = 0.5f, s.beta = -1.5f;  // C read
        if (shape[1] == 136) s.alpha = -2.f;                  // beta = 0: C poisoned
        if (shape[2] == 0) s.beta = 0.25f;
        Result r = run_tf32_gemm(s, bias, true, config);
        EXPECT_LT(r.error, kTolerance) << config.label() << " " << describe(s) << " bias=" << bias;
        EXPECT_TRUE(r.outside_untouched) << config.label() << " " << describe(s);
      }
      Ops::GemmSpec s = odd_batched_spec(t);
      Result r = run_tf32_gemm(s, true, true, config);
      EXPECT_LT(r.error, kTolerance) << config.label() << " " << describe(s);
      EXPECT_TRUE(r.outside_untouched) << config.label() << " " << describe(s);
      s = spec_of(136, 132, 44, t);  // aligned: VECTOR_IO, per slice; beta = 0 on poison
      s.batch = 2, s.alpha = 1.f, s.beta = 0.f;
      s.offset_a = 4, s.offset_b = 8, s.offset_c = 12;
      s.stride_a = 136 * 44 + 4, s.stride_b = 132 * 44 + 12, s.stride_c = 136 * 132 + 8;
      ASSERT_TRUE(gemm_rows_aligned(s));
      r = run_tf32_gemm(s, false, true, config);
      EXPECT_LT(r.error, kTolerance) << config.label() << " " << describe(s);
      EXPECT_TRUE(r.outside_untouched) << config.label() << " " << describe(s);
    }
  }
}

// The tolerance tells rounded from unrounded operands: a kernel that skipped the rounding
// (the emulated tensor core truncates, as the real one reads only the TF32 bits) fails it.
TEST(Tf32Gemm, ToleranceSeparatesTf32FromFp32) {
  Result r = run_tf32_gemm(spec_of(70, 200, 45, 0), false, true);
  EXPECT_LT(r.error, kTolerance);
  EXPECT_GT(r.error_unrounded, 20 * kTolerance);
}

// 3xtf32, emulated: the default tiles split, every transpose, NN and TT on odd shapes (scalar
// loads, edge tiles, K not a multiple of 8), NT and TN aligned (VECTOR_IO), bias, alpha and
// beta; and warps of 64 × 64 (the H200's tf32 winner) split, batched with odd offsets. (One
// PoCL build of seconds per layout.) Against the
// fp32 operands' double product the error is fp32's; against TF32-rounded operands it is
// TF32's, so a kernel that skipped the split (or a term of it) fails.
TEST(Tf32Gemm, EmulatedSplitIsFp32Accurate) {
  Tf32GemmConfig config;
  config.split = true;
  for (int t = 0; t < 4; ++t) {
    const bool odd = t == 0 || t == 3;
    Ops::GemmSpec s = odd ? spec_of(129, 130, 17, t) : spec_of(200, 136, 72, t);
    if (odd) s.alpha = 0.5f, s.beta = -1.5f;
    Result r = run_tf32_gemm(s, t % 2 == 0, true, config);
    EXPECT_LT(r.error_unrounded, kSplitTolerance) << config.label() << " " << describe(s);
    EXPECT_GT(r.error, 20 * kSplitTolerance) << config.label() << " " << describe(s);
    EXPECT_TRUE(r.outside_untouched) << config.label() << " " << describe(s);
  }
  Tf32GemmConfig wide{128, 128, 16, 2, 2};
  wide.split = true;
  Ops::GemmSpec s = odd_batched_spec(1);
  Result r = run_tf32_gemm(s, true, true, wide);
  EXPECT_LT(r.error_unrounded, kSplitTolerance) << wide.label() << " " << describe(s);
  EXPECT_TRUE(r.outside_untouched) << wide.label() << " " << describe(s);
}

TEST(Tf32Gemm, LocalMemoryFitsNvidiaLimit) {
  const Tf32GemmConfig config;
  for (int t = 0; t < 4; ++t) EXPECT_LE(config.local_bytes(t & 1, t & 2), 48u * 1024u) << t;
  // Two buffers of 16 × (128 + 128) floats, unpadded (swizzled), in every transpose case;
  // ptxas reports the same.
  for (int t = 0; t < 4; ++t) EXPECT_EQ(config.local_bytes(t & 1, t & 2), 32768u) << t;
  EXPECT_EQ(config.work_group_size(), 256u);
  EXPECT_EQ((Tf32GemmConfig{128, 64, 32, 2, 2}.local_bytes()), 49152u);
}

TEST(Tf32GemmConfig, DefaultLabelValidityAndBuildOptions) {
  const Tf32GemmConfig config;
  EXPECT_EQ(config.label(), "128x128x16/2x4w");
  EXPECT_TRUE(config.valid());
  EXPECT_EQ(config.warp_tile_m(), 64);
  EXPECT_EQ(config.warp_tile_n(), 32);
  // 64 accumulators, within 128 registers: two work-groups of 256 per SM.
  EXPECT_LE(config.registers_needed(), 128);
  EXPECT_EQ(config.register_cap(), 128);
  EXPECT_EQ(config.build_options(false, true),
            "-DTILE_M=128 -DTILE_N=128 -DTILE_K=16 -DWARPS_M=2 -DWARPS_N=4 -DGROUP_M=8 "
            "-DTRANS_A=0 -DTRANS_B=1 -DVECTOR_IO=0 -DREGISTER_CAP=1 -cl-nv-maxrregcount=128");
  // Emulated (PoCL): no NVIDIA option.
  EXPECT_EQ(config.build_options(true, false, true, true),
            "-DTILE_M=128 -DTILE_N=128 -DTILE_K=16 -DWARPS_M=2 -DWARPS_N=4 -DGROUP_M=8 "
            "-DTRANS_A=1 -DTRANS_B=0 -DVECTOR_IO=1 -DEMULATE_MMA=1");
  EXPECT_EQ((Tf32GemmConfig{128, 128, 16, 2, 4, 1}.label()), "128x128x16/2x4w/g1");
  EXPECT_FALSE((Tf32GemmConfig{128, 128, 16, 2, 4, 1} == config));
  // Warps of 64 × 64 in groups of 4: two groups fit in any case, no limit passed.
  const Tf32GemmConfig wide{128, 128, 16, 2, 2};
  EXPECT_EQ(wide.label(), "128x128x16/2x2w");
  EXPECT_EQ(wide.register_cap(), 255);
  EXPECT_EQ(wide.build_options(false, false).find("maxrregcount"), std::string::npos);
  // 8 warps of 64 × 64 need more than 128: one group per SM, no limit.
  EXPECT_EQ((Tf32GemmConfig{256, 128, 16, 4, 2}.register_cap()), 255);
  // 16 warps of 64 × 32: one group of 512, 128 registers.
  EXPECT_EQ((Tf32GemmConfig{256, 128, 16, 4, 4}.register_cap()), 128);
  // Split (3xtf32): its own label and option, more registers, a different configuration.
  Tf32GemmConfig split = wide;
  split.split = true;
  EXPECT_EQ(split.label(), "128x128x16/2x2w/3x");
  EXPECT_FALSE(split == wide);
  EXPECT_GT(split.registers_needed(), wide.registers_needed());
  EXPECT_EQ(split.build_options(false, false, true, true),
            "-DTILE_M=128 -DTILE_N=128 -DTILE_K=16 -DWARPS_M=2 -DWARPS_N=2 -DGROUP_M=8 "
            "-DTRANS_A=0 -DTRANS_B=0 -DVECTOR_IO=1 -DSPLIT_TF32=1 -DEMULATE_MMA=1");
}

// REGISTER_CAP leaves gemm_tf32's work-group size undeclared (ptxas would otherwise take the
// declared size as launch bounds and ignore -cl-nv-maxrregcount); without it the size is
// declared. The emulated build (PoCL) reports both.
TEST(Tf32GemmConfig, RegisterCapLeavesTheWorkGroupSizeUndeclared) {
  Runtime& rt = shared_runtime();
  const Tf32GemmConfig config;
  const std::string options = config.build_options(false, true, true, true);
  auto declared = [&](const std::string& extra) {
    cl::Kernel kernel = rt.kernel("matmul_tf32.cl", "gemm_tf32", options + extra);
    return kernel.getWorkGroupInfo<CL_KERNEL_COMPILE_WORK_GROUP_SIZE>(rt.device().device)[0];
  };
  EXPECT_EQ(declared(""), config.work_group_size());
  EXPECT_EQ(declared(" -DREGISTER_CAP=1"), 0u);
}

TEST(Tf32GemmConfig, InvalidConfigurations) {
  EXPECT_FALSE((Tf32GemmConfig{128, 128, 12, 2, 4}.valid()));   // tile_k
  EXPECT_FALSE((Tf32GemmConfig{128, 128, 16, 8, 4}.valid()));   // warps of 16 rows
  EXPECT_FALSE((Tf32GemmConfig{128, 128, 16, 2, 16}.valid()));  // warps of 8 columns
  EXPECT_FALSE((Tf32GemmConfig{96, 128, 16, 2, 4}.valid()));    // warps of 48 rows
  EXPECT_FALSE((Tf32GemmConfig{256, 256, 16, 8, 8}.valid()));   // 2048 work-items
  EXPECT_FALSE((Tf32GemmConfig{128, 128, 16, 0, 4}.valid()));
  EXPECT_FALSE((Tf32GemmConfig{128, 128, 16, 2, 4, 0}.valid()));  // group_m
  Runtime& rt = shared_runtime();
  auto a = to_device(random_vector(64)), b = to_device(random_vector(64)), c = poisoned(64);
  testing::expect_error<Error>(
      [&] { launch_gemm_tf32(rt, {128, 128, 12, 2, 4}, spec_of(8, 8, 8, 0), a, b, c, nullptr, true); },
      {"gemm_tf32", "invalid configuration", "128x128x12/2x4w"});
}

// What a tuner sweeps, for NVIDIA's limits (48 KiB of static local memory, 1024 work-items):
// every configuration is valid and fits, none twice; it holds the default, warps of 64 × 64,
// K-slabs of 32, and every recommended configuration.
TEST(Tf32GemmConfig, TuningSpaceFitsA48KiBDevice) {
  DeviceInfo device;
  device.local_mem_bytes = 48 * 1024;
  device.max_work_group_size = 1024;
  const std::vector<Tf32GemmConfig> space = tf32_tuning_space(device);
  ASSERT_FALSE(space.empty());
  for (size_t i = 0; i < space.size(); ++i) {
    const Tf32GemmConfig& c = space[i];
    EXPECT_TRUE(c.valid()) << c.label();
    EXPECT_TRUE(tf32_fits_device(c, device)) << c.label();
    for (int t = 0; t < 4; ++t) EXPECT_LE(c.local_bytes(t & 1, t & 2), 48u * 1024u) << c.label();
    EXPECT_LE(c.work_group_size(), 1024u) << c.label();
    EXPECT_LE(c.registers_needed(), c.register_cap()) << c.label();
    EXPECT_TRUE(c.tile_k == 16 || c.tile_k == 32) << c.label();
    for (int w : {c.warp_tile_m(), c.warp_tile_n()}) EXPECT_TRUE(w == 32 || w == 64) << c.label();
    for (size_t j = 0; j < i; ++j) EXPECT_FALSE(space[j] == c) << c.label();
  }
  auto contains = [&](const Tf32GemmConfig& c) {
    return std::find(space.begin(), space.end(), c) != space.end();
  };
  EXPECT_TRUE(contains(Tf32GemmConfig{}));
  EXPECT_TRUE(contains(Tf32GemmConfig{128, 128, 16, 2, 2}));
  EXPECT_TRUE(contains(Tf32GemmConfig{128, 64, 32, 2, 2}));
  EXPECT_FALSE(contains(Tf32GemmConfig{128, 128, 32, 2, 4}));  // 64 KiB
  EXPECT_FALSE(contains(Tf32GemmConfig{256, 256, 16, 4, 4}));  // 64 KiB
  for (const Tf32GemmConfig& c : tf32_recommended_configs()) EXPECT_TRUE(contains(c)) << c.label();
  // The split space: every configuration split, the split recommendations in it, and the
  // H200's tf32 winner (warps of 64 × 64) still within the register limit.
  const std::vector<Tf32GemmConfig> split_space = tf32_tuning_space(device, true);
  ASSERT_FALSE(split_space.empty());
  for (const Tf32GemmConfig& c : split_space) EXPECT_TRUE(c.split) << c.label();
  for (const Tf32GemmConfig& c : tf32_recommended_configs(true))
    EXPECT_NE(std::find(split_space.begin(), split_space.end(), c), split_space.end()) << c.label();
  Tf32GemmConfig wide_split{128, 128, 16, 2, 2};
  wide_split.split = true;
  EXPECT_NE(std::find(split_space.begin(), split_space.end(), wide_split), split_space.end());
  // A device with less: only what fits.
  device.local_mem_bytes = 32 * 1024;
  device.max_work_group_size = 256;
  for (const Tf32GemmConfig& c : tf32_tuning_space(device)) {
    EXPECT_LE(c.local_bytes(), 32u * 1024u) << c.label();
    EXPECT_LE(c.work_group_size(), 256u) << c.label();
  }
}

TEST(Tf32GemmConfig, RowsAligned) {
  Ops::GemmSpec s = spec_of(8192, 2304, 768, 2);
  EXPECT_TRUE(gemm_rows_aligned(s));
  s.offset_b = 2;
  EXPECT_FALSE(gemm_rows_aligned(s));
  EXPECT_FALSE(gemm_rows_aligned(spec_of(8, 8, 6, 0)));   // lda = 6
  EXPECT_TRUE(gemm_rows_aligned(spec_of(8, 8, 6, 1)));    // Aᵀ: lda = 8, ldb = 8
  EXPECT_FALSE(gemm_rows_aligned(spec_of(8, 10, 8, 2)));  // N = 10
}

// The real tensor-core kernel, on devices that pass the probe (NVIDIA, sm_80+).
TEST(Tf32Gemm, TensorCoresMatchReferenceAndAreDeterministic) {
  Runtime& rt = shared_runtime();
  const Tf32Probe probe = probe_tf32(rt);
  if (!probe.available) GTEST_SKIP() << probe.reason;
  std::vector<std::vector<int>> shapes = kShapes;
  shapes.push_back({512, 768, 300});
  for (const auto& shape : shapes)
    for (int t = 0; t < 4; ++t) {
      Ops::GemmSpec s = spec_of(shape[0], shape[1], shape[2], t);
      Result r = run_tf32_gemm(s, false, false);
      EXPECT_LT(r.error, kTolerance) << describe(s);
      EXPECT_TRUE(r.outside_untouched) << describe(s);
    }
  for (int t = 0; t < 4; ++t) {
    Ops::GemmSpec s = odd_batched_spec(t);
    Result r = run_tf32_gemm(s, true, false);
    EXPECT_LT(r.error, kTolerance) << describe(s);
    EXPECT_TRUE(r.outside_untouched) << describe(s);
  }
  // The recommended configurations (tuner's first candidates), odd and aligned shapes.
  for (const Tf32GemmConfig& config : tf32_recommended_configs())
    for (const auto& shape : std::vector<std::vector<int>>{{129, 130, 17}, {520, 264, 136}})
      for (int t = 0; t < 4; ++t) {
        Ops::GemmSpec s = spec_of(shape[0], shape[1], shape[2], t);
        s.alpha = 0.5f, s.beta = shape[2] == 17 ? -1.5f : 0.f;
        Result r = run_tf32_gemm(s, true, false, config);
        EXPECT_LT(r.error, kTolerance) << config.label() << " " << describe(s);
        EXPECT_TRUE(r.outside_untouched) << config.label() << " " << describe(s);
      }
  // Same inputs twice: bitwise the same output.
  Ops::GemmSpec s = spec_of(300, 260, 200, 1);
  auto a = to_device(random_vector(300 * 200)), b = to_device(random_vector(200 * 260));
  auto c1 = poisoned(300 * 260), c2 = poisoned(300 * 260);
  launch_gemm_tf32(rt, {}, s, a, b, c1, nullptr);
  launch_gemm_tf32(rt, {}, s, a, b, c2, nullptr);
  const auto first = from_device(c1, 300 * 260), second = from_device(c2, 300 * 260);
  EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0);
}

// The real 3xtf32 kernel, on devices that pass its probe: fp32-accurate on every transpose,
// odd and aligned shapes, the default tiles and warps of 64 × 64; and over K = 8192, where
// sums accumulated in the tensor core (which truncates) drifted by 6e-5 on the H200.
TEST(Tf32Gemm, SplitTensorCoresAreFp32Accurate) {
  const Tf32Probe probe = probe_tf32(shared_runtime(), true);
  if (!probe.available) GTEST_SKIP() << probe.reason;
  for (Tf32GemmConfig config : {Tf32GemmConfig{}, Tf32GemmConfig{128, 128, 16, 2, 2}}) {
    config.split = true;
    for (const auto& shape : std::vector<std::vector<int>>{{129, 130, 17}, {512, 768, 300}})
      for (int t = 0; t < 4; ++t) {
        Ops::GemmSpec s = spec_of(shape[0], shape[1], shape[2], t);
        Result r = run_tf32_gemm(s, true, false, config);
        EXPECT_LT(r.error_unrounded, kSplitTolerance) << config.label() << " " << describe(s);
        EXPECT_TRUE(r.outside_untouched) << config.label() << " " << describe(s);
      }
    Ops::GemmSpec s = spec_of(128, 256, 8192, 1);
    Result r = run_tf32_gemm(s, false, false, config);
    EXPECT_LT(r.error_unrounded, 4 * kSplitTolerance) << config.label() << " " << describe(s);
  }
}

}  // namespace
}  // namespace attnscope
