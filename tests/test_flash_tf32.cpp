// The tiled exact attention with --precision tf32 (cl_kernels/attention/flash_tf32.cl and
// its gqa / sliding_window / mla wrappers; model/attention/flash_core.*): the tensor-core
// forward <family>_forward_tf32, its mma, lane id and quad shuffles emulated (EMULATE_MMA)
// so that PoCL runs the GPU's kernel — its tiles (64 queries, 4 warps, 64 or 32 keys), its
// stages, fragment mapping, online softmax and masks — against the CPU reference, with
// fresh random inputs and NaN-poisoned outputs, at check_tolerance(tf32) (5e-3 relative,
// the tolerance `attnscope check --precision tf32` applies; measured here: O and L about
// 3e-4, the gradients up to 6e-4). The backward likewise: the tensor-core dQ and dK/dV
// kernels (d a multiple of 16, at most 64; flash.cl's fp32 ones, from the same program,
// for d = 40 and 128), fed the tf32 forward's O and L; and the fused backward (FUSED_DQ: the
// dK/dV kernel adds dQ with atomics). Also: the tf32 forward differs from the fp32 one by
// TF32-sized errors only (and does differ: operands are rounded), the split backward's runs
// are bitwise deterministic, and the accounting of the kernels' FLOPs. With SPLIT_TF32
// (--precision 3xtf32) the same kernels hold fp32's tolerance.
// Each (family, head size, group, options) is one program, built once per process (PoCL
// compiles slowly) and shared through the runtime's cache: 69 s with PoCL's kernel cache
// empty (2 cores, 2026-12-03), 1 s with it filled.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "model/attention/common_reference.hpp"
#include "model/attention/flash_core.hpp"
#include "model/variant_check.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using namespace testing;

const double kTf32Tolerance = check_tolerance(Precision::tf32);

struct Case {
  std::string family;
  int B, T, H, head_size;
  int group_size = 1, window = 0;
  bool fused = false;  // Q|K|V in one (B,T,3C) buffer (flash, sliding_window), else
                       // Q (B,T,C) and K|V (B,T,2·G·d) (gqa, mla)
};

std::string describe(const Case& c) {
  return c.family + " B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) +
         " H=" + std::to_string(c.H) + " d=" + std::to_string(c.head_size) +
         " group=" + std::to_string(c.group_size) + " window=" + std::to_string(c.window) +
         (c.fused ? " fused" : "");
}

TiledShape shape_of(const Case& c) {
  TiledShape s;
  s.B = c.B, s.T = c.T, s.H = c.H, s.head_size = c.head_size;
  s.group_size = c.group_size, s.window = c.window;
  return s;
}

// The kernels for a case (their program comes from the runtime's cache after the first).
std::unique_ptr<TiledAttentionKernels> kernels_for(const Case& c, TiledPrecision precision,
                                                   TiledBackward backward = {}) {
  return TiledAttentionKernels::for_device(shared_runtime(), c.family, shape_of(c), precision,
                                           backward);
}

// Inputs, their layout, and what the reference computes from them.
struct Problem {
  Case c;
  QkvLayout layout;
  std::vector<float> q, kv, dout;  // fused: q holds Q|K|V and kv is empty
  std::vector<float> out, lse, dq, dkv;  // the reference's (dkv empty when fused)
};

Problem make_problem(const Case& c) {
  Problem p;
  p.c = c;
  const int C = c.H * c.head_size, KV = 2 * (c.H / c.group_size) * c.head_size;
  const size_t rows = size_t(c.B) * c.T, stats = rows * c.H;
  reference::ExactAttentionShape ref;
  ref.B = c.B, ref.T = c.T, ref.H = c.H, ref.head_size = c.head_size;
  ref.kv_heads = c.H / c.group_size, ref.window = c.window;
  p.dout = random_vector(rows * C);
  p.out.resize(rows * C);
  p.lse.resize(stats);
  if (c.fused) {
    p.layout = {3 * C, 0, 3 * C, C, 2 * C};
    p.q = random_vector(rows * 3 * C);
    p.dq.assign(rows * 3 * C, 0.f);
    const reference::ConstHeads qv{p.q.data(), 3 * C}, kv{p.q.data() + C, 3 * C},
        vv{p.q.data() + 2 * C, 3 * C};
    reference::exact_attention_forward({p.out.data(), C}, nullptr, p.lse.data(), qv, kv, vv, ref);
    reference::exact_attention_backward({p.dq.data(), 3 * C}, {p.dq.data() + C, 3 * C},
                                        {p.dq.data() + 2 * C, 3 * C}, {p.dout.data(), C}, qv, kv,
                                        vv, ref);
  } else {
    p.layout = {C, 0, KV, 0, KV / 2};
    p.q = random_vector(rows * C);
    p.kv = random_vector(rows * KV);
    p.dq.assign(rows * C, 0.f);
    p.dkv.assign(rows * KV, 0.f);
    const reference::ConstHeads qv{p.q.data(), C}, kv{p.kv.data(), KV},
        vv{p.kv.data() + KV / 2, KV};
    reference::exact_attention_forward({p.out.data(), C}, nullptr, p.lse.data(), qv, kv, vv, ref);
    reference::exact_attention_backward({p.dq.data(), C}, {p.dkv.data(), KV},
                                        {p.dkv.data() + KV / 2, KV}, {p.dout.data(), C}, qv, kv,
                                        vv, ref);
  }
  return p;
}

struct Result {
  std::vector<float> out, lse, dq, dkv;
};

// Forward (and backward) on the device, every output poisoned first.
Result run(TiledAttentionKernels& kernels, const Problem& p, bool backward) {
  const Case& c = p.c;
  const TiledShape s = shape_of(c);
  const size_t rows = size_t(c.B) * c.T, stats = rows * c.H, C = size_t(c.H) * c.head_size;
  DeviceBuffer q = to_device(p.q), kv = p.c.fused ? DeviceBuffer() : to_device(p.kv);
  const cl::Buffer& keys = p.c.fused ? q.buffer() : kv.buffer();
  DeviceBuffer out = poisoned(rows * C), lse = poisoned(stats);
  kernels.forward(out, lse, q, keys, p.layout, s);
  Result r;
  r.out = from_device(out, rows * C);
  r.lse = from_device(lse, stats);
  if (!backward) return r;
  DeviceBuffer dout = to_device(p.dout), delta = poisoned(stats);
  DeviceBuffer dq = poisoned(p.q.size());
  DeviceBuffer dkv = poisoned(std::max<size_t>(1, p.kv.size()));
  DeviceBuffer shares = poisoned(std::max<size_t>(1, TiledAttentionKernels::dkv_share_floats(s)));
  kernels.backward(dq, p.c.fused ? dq.buffer() : dkv.buffer(), delta, shares, dout, out, lse, q,
                   keys, p.layout, s);
  r.dq = from_device(dq, p.q.size());
  if (!p.c.fused) r.dkv = from_device(dkv, p.kv.size());
  return r;
}

// The kernels for a case against the reference: what they say they run, then O, L and the
// gradients at the precision's tolerance.
void expect_matches_reference(const Case& c,
                              TiledPrecision precision = TiledPrecision::tf32_emulated,
                              TiledBackward backward = {}) {
  SCOPED_TRACE(describe(c) + (backward.fused ? " fused backward" : ""));
  const bool split = precision == TiledPrecision::tf32x3_emulated;
  const auto kernels = kernels_for(c, precision, backward);
  ASSERT_TRUE(kernels->forward_tf32());
  ASSERT_EQ(kernels->backward_tf32(), tf32_backward_supports(c.head_size));
  ASSERT_EQ(kernels->fused_dq(), backward.fused);
  const std::string arithmetic =
      std::string(split ? "3xtf32" : "tf32") +
      (tf32_backward_supports(c.head_size) ? " tensor cores: forward, dQ, dK/dV"
                                           : " tensor cores: forward (dQ, dK/dV fp32)") +
      (backward.fused ? "; dQ added by the dK/dV kernel with float atomics (" : "");
  EXPECT_EQ(kernels->arithmetic().rfind(arithmetic, 0), 0u) << kernels->arithmetic();
  if (!backward.fused) EXPECT_EQ(kernels->arithmetic(), arithmetic);
  const double tolerance = split ? check_tolerance(Precision::tf32x3) : kTf32Tolerance;
  const Problem p = make_problem(c);
  const Result r = run(*kernels, p, true);
  EXPECT_LT(relative_error(r.out, p.out), tolerance) << "O";
  EXPECT_LT(relative_error(r.lse, p.lse), tolerance) << "L";
  EXPECT_LT(relative_error(r.dq, p.dq), tolerance) << (c.fused ? "dQ|dK|dV" : "dQ");
  if (!c.fused) {
    EXPECT_LT(relative_error(r.dkv, p.dkv), tolerance) << "dK|dV";
  }
  // TF32 rounding alone puts O about 3e-4 off (tf32's cases); the split, about 1e-6.
  if (split) {
    EXPECT_LT(relative_error(r.out, p.out), 1e-5) << "O: TF32-sized error, split not applied";
  }
}

// T = 1, 7 (one partial tile), 65 and 130 (several query blocks and key tiles, partial last
// ones, the diagonal), B > 1, several heads; GPT-2's head size.
TEST(FlashTf32, FlashMatchesReference) {
  for (int T : {1, 7, 65, 130}) expect_matches_reference({"flash", 2, T, 2, 64, 1, 0, true});
}

// One (batch, head) pair with T = 130 (two full 64-row blocks and a partial one, each kernel
// crossing several tiles and the diagonal): small enough for oclgrind, which runs this test
// alone to look for races between the warps of a work-group (CTest oclgrind_flash_tf32).
TEST(FlashTf32, OneHeadMatchesReference) {
  expect_matches_reference({"flash", 1, 130, 1, 64, 1, 0, true});
}

// d = 40 (d/8 odd: K stage rows unpadded; tiles not a multiple of the work-group's float4s;
// fp32 backward), d = 128 (tiles of 32 keys; fp32 backward) and d = 16 (the gqa cases
// take d = 32).
TEST(FlashTf32, OtherHeadSizesMatchReference) {
  expect_matches_reference({"flash", 1, 70, 2, 40, 1, 0, true});
  expect_matches_reference({"flash", 1, 75, 1, 128, 1, 0, true});
  expect_matches_reference({"flash", 2, 50, 2, 16, 1, 0, true});  // the smallest backward tiles
}

TEST(FlashTf32, GqaGroupsMatchReference) {
  expect_matches_reference({"gqa", 2, 67, 4, 32, 2, 0});
  expect_matches_reference({"gqa", 1, 130, 8, 32, 4, 0});
}

// Bands narrower than a tile, across tiles, and first keys not aligned to the tiles.
TEST(FlashTf32, SlidingWindowMatchesReference) {
  for (int window : {1, 5, 40, 100})
    expect_matches_reference({"sliding_window", 2, 150, 2, 64, 1, window, true});
}

// mla's layout: Q (B,T,C), K|V read in place in (B,T,2C).
TEST(FlashTf32, MlaLayoutMatchesReference) {
  expect_matches_reference({"mla", 2, 97, 2, 64, 1, 0});
}

// The tf32 forward against the fp32 one on the same inputs: TF32-sized differences (and
// some: the operands are rounded); forward and backward bitwise the same on a second run.
TEST(FlashTf32, DiffersFromFp32ByTf32ErrorsAndIsDeterministic) {
  const Case c{"flash", 2, 130, 2, 64, 1, 0, true};
  const Problem p = make_problem(c);
  const auto tf32_kernels = kernels_for(c, TiledPrecision::tf32_emulated);
  const Result tf32 = run(*tf32_kernels, p, true);
  const Result again = run(*tf32_kernels, p, true);
  const auto fp32_kernels = kernels_for(c, TiledPrecision::fp32);
  ASSERT_FALSE(fp32_kernels->forward_tf32());
  EXPECT_EQ(fp32_kernels->arithmetic(), "fp32");
  const Result fp32 = run(*fp32_kernels, p, false);
  const double error = relative_error(tf32.out, fp32.out);
  EXPECT_LT(error, kTf32Tolerance);
  EXPECT_GT(error, 1e-5) << "no TF32 rounding visible";
  EXPECT_LT(relative_error(fp32.out, p.out), 1e-4);
  EXPECT_EQ(tf32.out, again.out);
  EXPECT_EQ(tf32.lse, again.lse);
  EXPECT_EQ(tf32.dq, again.dq);
  EXPECT_EQ(tf32.dkv, again.dkv);
}

// 3xtf32 (SPLIT_TF32, emulated): the same kernels with split operands hold fp32's tolerance
// against the reference, and sit far closer to the fp32 kernels than tf32 does: flash with
// every kernel on tensor cores (d = 64), gqa's groups (d = 32), a band across tiles, and
// d = 40 (tensor-core forward, fp32 backward).
TEST(FlashTf32, SplitOperandsAreFp32Accurate) {
  ASSERT_EQ(check_tolerance(Precision::tf32x3), check_tolerance(Precision::fp32));
  for (const Case& c : {Case{"flash", 2, 130, 2, 64, 1, 0, true}, Case{"gqa", 2, 67, 4, 32, 2, 0},
                        Case{"sliding_window", 1, 150, 2, 64, 1, 40, true},
                        Case{"flash", 1, 70, 2, 40, 1, 0, true}})
    expect_matches_reference(c, TiledPrecision::tf32x3_emulated);
  EXPECT_EQ(tiled_precision(Precision::tf32x3), TiledPrecision::tf32x3);
}

// The fused backward on tensor cores (FUSED_DQ: the dK/dV kernel stages dS and its keys and
// adds each tile's dS·K/√d to dQ with float atomics, here the portable compare-and-swap
// loop), in both precisions: d = 64 (4 n-tiles of dQ a warp), gqa's groups at d = 32 (2),
// d = 16 (1), a band across tiles; d = 40 keeps flash.cl's fused fp32 backward.
TEST(FlashTf32, FusedBackwardMatchesReference) {
  const TiledBackward fused{true, AtomicAdd::compare_and_swap};
  for (TiledPrecision precision : {TiledPrecision::tf32_emulated, TiledPrecision::tf32x3_emulated}) {
    expect_matches_reference({"flash", 2, 130, 2, 64, 1, 0, true}, precision, fused);
    expect_matches_reference({"gqa", 2, 67, 4, 32, 2, 0}, precision, fused);
  }
  expect_matches_reference({"flash", 2, 50, 2, 16, 1, 0, true}, TiledPrecision::tf32_emulated, fused);
  expect_matches_reference({"sliding_window", 1, 150, 2, 64, 1, 40, true},
                           TiledPrecision::tf32_emulated, fused);
  expect_matches_reference({"flash", 1, 70, 2, 40, 1, 0, true}, TiledPrecision::tf32x3_emulated,
                           fused);
}

// The fused tensor-core backward on one (batch, head) pair with T = 130, for oclgrind
// (CTest oclgrind_flash_tf32 runs the OneHead tests): the dS and key stages, the barrier
// between them and the dQ product, the quad exchange before the atomics.
TEST(FlashTf32, OneHeadFusedMatchesReference) {
  expect_matches_reference({"flash", 1, 130, 1, 64, 1, 0, true}, TiledPrecision::tf32_emulated,
                           {true, AtomicAdd::compare_and_swap});
}

TEST(FlashTf32, HeadSizesOutsideTheTensorCoreKernelsKeepTheFp32Ones) {
  for (int d : {8, 16, 64, 72, 128}) EXPECT_TRUE(tf32_forward_supports(d)) << d;
  for (int d : {1, 4, 12, 20, 130}) EXPECT_FALSE(tf32_forward_supports(d)) << d;
  for (int d : {16, 32, 48, 64}) EXPECT_TRUE(tf32_backward_supports(d)) << d;
  for (int d : {8, 40, 72, 128}) EXPECT_FALSE(tf32_backward_supports(d)) << d;
  EXPECT_EQ(tf32_forward_key_tile(64), 64);
  EXPECT_EQ(tf32_forward_key_tile(128), 32);
  EXPECT_EQ(tiled_precision(Precision::tf32), TiledPrecision::tf32);
  EXPECT_EQ(tiled_precision(Precision::fp32), TiledPrecision::fp32);
}

// Executed FLOPs: 4·d (forward), 6·d (dQ) and 8·d (dK/dV; fused 10·d) per pair of the
// visited tiles.
// T = 130, causal. Forward, 64 × 64: query blocks 0, 64, 128 visit 1, 2 and 3 key tiles.
// dQ, 64 × 32: 2, 4, 5 key tiles. dK/dV, 64 keys × 32 queries: key blocks 0, 64, 128 visit
// 5, 3 and 1 query tiles (from k0 to T).
TEST(FlashTf32, FlopsCountTheTensorCoreTiles) {
  TiledShape s;
  s.B = 2, s.T = 130, s.H = 3, s.head_size = 64;
  const FlashTiles tiles = typical_gpu_flash_tiles(64);
  EXPECT_DOUBLE_EQ(tiled_attention_flops(s, tiles, true).forward, 2.0 * 3 * 6 * 64 * 64 * 4 * 64);
  EXPECT_EQ(tiled_attention_flops(s, tiles, true).backward,
            tiled_attention_flops(s, tiles, false).backward);
  EXPECT_DOUBLE_EQ(tiled_attention_flops(s, tiles, true, true).backward,
                   2.0 * 3 * 64 * 32 * 64 * (6 * 11 + 8 * 9));
  // Fused: no dQ kernel, and dK/dV's 10·d (dQ's product too) over its 9 tiles.
  EXPECT_DOUBLE_EQ(tiled_attention_flops(s, tiles, true, true, true).backward,
                   2.0 * 3 * 64 * 32 * 64 * 10 * 9);
  s.head_size = 128;  // 32-key tiles: 2, 4 and 5 (keys 128, 129) tiles
  EXPECT_DOUBLE_EQ(tiled_attention_flops(s, typical_gpu_flash_tiles(128), true).forward,
                   2.0 * 3 * 11 * 64 * 32 * 4 * 128);
}

}  // namespace
}  // namespace attnscope
