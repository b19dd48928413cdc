// sdpa: the fused exact-attention variant. It must equal baseline (same parameters, same
// function) forward and in every gradient; its core (SdpaCore, cl_kernels/attention/
// sdpa.cl) is checked against the CPU reference on both of its paths — score rows wholly
// on chip, and the two-pass chunked path that long rows take (forced here on PoCL's large
// local memory by a small local-memory limit) — and its tile planning and cost by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "host/runtime/error.hpp"
#include "model/attention/common_reference.hpp"
#include "model/attention/sdpa_core.hpp"
#include "model/registry.hpp"
#include "model/variant_check.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using namespace testing;


// ------------------------------------------------------------------ sdpa equals baseline

class SdpaEqualsBaseline : public ::testing::TestWithParam<AttentionDims> {};

// Same inputs and weights through both variants on the device (and the reference): out,
// dx and every parameter gradient agree to fp32 rounding.
TEST_P(SdpaEqualsBaseline, ForwardAndEveryGradient) {
  const AttentionDims dims = GetParam();
  auto sdpa = make_variant("sdpa", {}), baseline = make_variant("baseline", {});
  sdpa->resolve(dims);
  baseline->resolve(dims);
  const VariantInputs in = random_variant_inputs(*baseline, dims, testing::test_rng()());
  const VariantOutputs ours = run_variant_on_device(shared_ops(), *sdpa, dims, {}, in);
  const VariantOutputs theirs = run_variant_on_device(shared_ops(), *baseline, dims, {}, in);
  const VariantOutputs ref = run_variant_reference(*sdpa, dims, {}, in);

  EXPECT_LT(relative_error(ours.out, theirs.out), kTolerance) << "out";
  EXPECT_LT(relative_error(ours.dx, theirs.dx), kTolerance) << "dx";
  EXPECT_LT(relative_error(ours.out, ref.out), kTolerance) << "out vs reference";
  EXPECT_LT(relative_error(ours.dx, ref.dx), kTolerance) << "dx vs reference";
  const auto specs = sdpa->parameters(dims);
  ASSERT_EQ(specs.size(), theirs.dparams.size());
  for (size_t p = 0; p < specs.size(); ++p) {
    EXPECT_LT(relative_error(ours.dparams[p], theirs.dparams[p]), kTolerance) << specs[p].name;
    EXPECT_LT(relative_error(ours.dparams[p], ref.dparams[p]), kTolerance)
        << specs[p].name << " vs reference";
  }
}

// T = 1; T a multiple of no tile; head sizes 16, 24 (not a multiple of the 16 work-items
// along a head vector), 64 and 128; batch 2. (Each head size is a program build, which is
// most of this test's time on PoCL.)
INSTANTIATE_TEST_SUITE_P(Shapes, SdpaEqualsBaseline,
                         ::testing::Values(AttentionDims{1, 1, 64, 4}, AttentionDims{2, 37, 64, 4},
                                           AttentionDims{1, 45, 72, 3}, AttentionDims{1, 70, 128, 2},
                                           AttentionDims{1, 33, 128, 1}));

TEST(SdpaVariant, ParametersAndModelCostAreBaselines) {
  const AttentionDims dims{2, 64, 96, 3};
  auto sdpa = make_variant("sdpa", {}), baseline = make_variant("baseline", {});
  const auto ours = sdpa->parameters(dims), theirs = baseline->parameters(dims);
  ASSERT_EQ(ours.size(), theirs.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_EQ(ours[i].name, theirs[i].name);
    EXPECT_EQ(ours[i].shape, theirs[i].shape);
    EXPECT_EQ(ours[i].init, theirs[i].init);
    EXPECT_EQ(ours[i].weight_decay, theirs[i].weight_decay);
  }
  const AttentionCost a = sdpa->cost(dims), b = baseline->cost(dims);
  EXPECT_DOUBLE_EQ(a.model_flops_forward, b.model_flops_forward);
  EXPECT_DOUBLE_EQ(a.model_flops_backward, b.model_flops_backward);
  EXPECT_GE(a.executed_flops_forward, a.model_flops_forward);
  EXPECT_GE(a.executed_flops_backward, a.model_flops_backward);
  // qkv, O and L: no (B,H,T,T) tensor
  EXPECT_DOUBLE_EQ(a.saved_bytes, 4.0 * (4.0 * 2 * 64 * 96 + 2 * 3 * 64));
}

// ------------------------------------------------------------------ the core, both paths

struct CoreCase {
  int B, T, H, head_size;
  size_t score_keys;  // keys of score rows the local-memory limit leaves room for; 0: no limit
};

// O, L and dQ, dK, dV of the core against the reference, reading Q, K, V out of one fused
// (B,T,3C) array and writing dQ, dK, dV into one, as the variant does.
void expect_core_matches_reference(SdpaCore& core, int B, int T, int H) {
  const int C = H * core.head_size();
  const AttentionDims dims{B, T, C, H};
  const size_t btc = size_t(B) * T * C, bht = size_t(B) * H * T;
  const std::vector<float> qkv = random_vector(3 * btc, 1.5f), dout = random_vector(btc);
  DeviceBuffer qkv_d = to_device(qkv), dout_d = to_device(dout);
  DeviceBuffer out_d = poisoned(btc), lse_d = poisoned(bht), dqkv_d = poisoned(3 * btc);
  DeviceBuffer delta_d = poisoned(bht);
  const DeviceHeads q{qkv_d, 0, 3 * C}, k{qkv_d, C, 3 * C}, v{qkv_d, 2 * C, 3 * C};
  core.forward(dims, {out_d, 0, C}, lse_d, q, k, v);
  core.backward(dims, {dqkv_d, 0, 3 * C}, {dqkv_d, C, 3 * C}, {dqkv_d, 2 * C, 3 * C}, delta_d,
                {dout_d, 0, C}, {out_d, 0, C}, lse_d, q, k, v);

  const reference::ExactAttentionShape shape{B, T, H, core.head_size()};
  const reference::QKVHeads in = reference::split_qkv(qkv.data(), C);
  std::vector<float> out(btc), lse(bht), dqkv(3 * btc, 0.f);
  reference::exact_attention_forward({out.data(), C}, nullptr, lse.data(), in.q, in.k, in.v, shape);
  const reference::QKVGradHeads grad = reference::split_qkv_grad(dqkv.data(), C);
  reference::exact_attention_backward(grad.q, grad.k, grad.v, {dout.data(), C}, in.q, in.k, in.v,
                                      shape);

  EXPECT_LT(relative_error(from_device(out_d, btc), out), kTolerance) << "O";
  EXPECT_LT(relative_error(from_device(lse_d, bht), lse), kTolerance) << "L";
  const std::vector<float> device_dqkv = from_device(dqkv_d, 3 * btc);
  const char* names[] = {"dQ", "dK", "dV"};
  for (int part = 0; part < 3; ++part) {  // each of dQ | dK | dV on its own
    std::vector<float> ours, theirs;
    for (size_t row = 0; row < size_t(B) * T; ++row) {
      const size_t at = row * 3 * C + size_t(part) * C;
      ours.insert(ours.end(), device_dqkv.begin() + at, device_dqkv.begin() + at + C);
      theirs.insert(theirs.end(), dqkv.begin() + at, dqkv.begin() + at + C);
    }
    EXPECT_LT(relative_error(ours, theirs), kTolerance) << names[part];
  }
}

class SdpaCorePaths : public ::testing::TestWithParam<CoreCase> {};

TEST_P(SdpaCorePaths, MatchReference) {
  const CoreCase c = GetParam();
  SdpaTuning tuning;
  // Drivers may take a little __local memory of their own (NVIDIA: 4 bytes); the slack
  // covers that without making room for another 32-key tile of scores.
  if (c.score_keys > 0)
    tuning.local_mem_limit = tuning.tiles.forward_local_bytes(c.head_size) +
                             tuning.tiles.score_bytes(int(c.score_keys)) + 1024;
  SdpaCore core(shared_runtime(), "attention/sdpa.cl", c.head_size, tuning);
  const int chunk = core.plan().chunk_keys;
  if (c.score_keys > 0) {
    ASSERT_LT(chunk, c.T) << "the chunked path is not taken";
    ASSERT_GE(chunk, core.plan().forward.block_cols());
    ASSERT_LE(chunk, int(c.score_keys));
  } else {
    ASSERT_GE(chunk, c.T) << "the full-row path is not taken";
  }
  expect_core_matches_reference(core, c.B, c.T, c.H);
}

// Full rows on chip (no limit: PoCL's local memory holds them), then score chunks of one
// or two tiles (32 keys each) at T that is a multiple of neither. The small limits also
// shrink the backward's tiles, so other tile shapes run too.
INSTANTIATE_TEST_SUITE_P(Shapes, SdpaCorePaths,
                         ::testing::Values(CoreCase{2, 77, 2, 16, 0}, CoreCase{1, 45, 1, 128, 0},
                                           CoreCase{2, 77, 2, 24, 32}, CoreCase{1, 100, 2, 64, 64},
                                           CoreCase{1, 70, 1, 128, 32}));

// A typical GPU's 48 KiB of local memory at T = 600 and d = 64: the early query blocks hold
// their rows on chip, the late ones (rows beyond the chunk) take the chunked path.
TEST(SdpaCoreOn48KiB, BothPathsInOneLaunch) {
  SdpaTuning tuning;
  tuning.local_mem_limit = 48 * 1024;
  SdpaCore core(shared_runtime(), "attention/sdpa.cl", 64, tuning);
  const int T = 600;
  ASSERT_LT(core.plan().chunk_keys, T);
  ASSERT_GT(core.plan().chunk_keys, core.plan().forward.block_rows());
  expect_core_matches_reference(core, 1, T, 1);
}

// ------------------------------------------------------------------ planning and cost

TEST(SdpaPlan, ShrinksTilesToFitAndSizesTheChunk) {
  const size_t local = 48 * 1024;
  for (int d : {16, 64, 128}) {
    const SdpaPlan plan = plan_sdpa(local, 1024, d, SdpaTuning{});
    EXPECT_LE(plan.backward.backward_local_bytes(d), local) << d;
    EXPECT_LE(plan.forward.forward_local_bytes(d) + plan.forward.score_bytes(plan.chunk_keys), local);
    EXPECT_GT(plan.forward.forward_local_bytes(d) +
                  plan.forward.score_bytes(plan.chunk_keys + plan.forward.block_cols()),
              local)
        << "a longer chunk would have fitted";
    EXPECT_EQ(plan.chunk_keys % plan.forward.block_cols(), 0);
  }
  // d = 128 backward does not fit 48 KiB with the default 32×32 tiles: columns shrink
  // first, then rows.
  const SdpaPlan wide = plan_sdpa(local, 1024, 128, SdpaTuning{});
  EXPECT_EQ(wide.backward.block_cols(), 16);
  EXPECT_EQ(wide.backward.block_rows(), 16);
  EXPECT_EQ(plan_sdpa(local, 64, 64, SdpaTuning{}).forward.work_group_size(), 64);
  EXPECT_THROW(plan_sdpa(1024, 1024, 64, SdpaTuning{}), Error);
}

TEST(SdpaCost, ChunkedPathRecomputesScores) {
  const AttentionDims dims{1, 256, 64, 1};
  SdpaPlan plan = plan_sdpa(1 << 20, 1024, 64, SdpaTuning{});
  const int rows = plan.forward.block_rows(), cols = plan.forward.block_cols();
  // Full rows: per query block QKᵀ and PV once over its causal tiles.
  double tiles = 0;
  for (int q0 = 0; q0 < 256; q0 += rows) tiles += (std::min(256, q0 + rows) + cols - 1) / cols;
  const double tile_flops = 2.0 * rows * cols * 64;
  EXPECT_DOUBLE_EQ(sdpa_forward_flops(plan, dims), 2 * tiles * tile_flops);
  ASSERT_EQ(rows, 32);
  ASSERT_EQ(cols, 32);
  // One-tile chunks: the block at q0 = 0 (a row of at most 32 keys, one tile) still fits;
  // every later block computes QKᵀ twice.
  plan.chunk_keys = cols;
  EXPECT_DOUBLE_EQ(sdpa_forward_flops(plan, dims), (3 * tiles - 1) * tile_flops);
  EXPECT_GT(exact_attention_model_flops_forward(dims), 0);
  EXPECT_LT(exact_attention_model_flops_forward(dims), sdpa_forward_flops(plan, dims));
}

}  // namespace
}  // namespace attnscope
