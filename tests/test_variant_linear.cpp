// linear attention: the device against the CPU reference (outputs poisoned first,
// gradients accumulated onto random starting values) at T = 1, T not a multiple of the
// chunk, head sizes 16..128; chunk sizes 1, 7 and 64 giving the same function; the
// reference's gradients against finite differences; the cost model; option checks.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "host/runtime/error.hpp"
#include "model/attention/linear.hpp"
#include "model/variant_check.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using namespace testing;


LinearAttention make(const AttentionDims& dims, int chunk) {
  AttentionOptions options;
  options.values["chunk"] = chunk;
  LinearAttention v(options);
  v.resolve(dims);
  return v;
}

uint64_t fresh_seed() { return testing::test_rng()(); }

// Worst relative error of out, dx and every parameter gradient.
double worst_error(const VariantOutputs& got, const VariantOutputs& want) {
  double worst = std::max(relative_error(got.out, want.out), relative_error(got.dx, want.dx));
  for (size_t i = 0; i < got.dparams.size(); ++i)
    worst = std::max(worst, relative_error(got.dparams[i], want.dparams[i]));
  return worst;
}

struct Case {
  AttentionDims dims;
  int chunk;
};

TEST(LinearAttention, DeviceMatchesReference) {
  const Case cases[] = {
      {{1, 1, 32, 2}, 64},    // T = 1, d = 16
      {{2, 37, 64, 2}, 8},    // T not a multiple of the chunk, d = 32
      {{1, 70, 64, 1}, 16},   // d = 64, partial last chunk
      {{2, 100, 64, 1}, 64},  // chunk longer than a tile: sub-tiles inside the chunk
      {{1, 33, 128, 1}, 7},   // d = 128
      {{2, 29, 72, 3}, 8},    // d = 24: the backward's per-head sums over a non-power of two
  };
  for (const Case& c : cases) {
    LinearAttention variant = make(c.dims, c.chunk);
    const VariantInputs in = random_variant_inputs(variant, c.dims, fresh_seed());
    const StepContext step{};
    const VariantOutputs dev = run_variant_on_device(shared_ops(), variant, c.dims, step, in);
    const VariantOutputs ref = run_variant_reference(variant, c.dims, step, in);
    EXPECT_LT(relative_error(dev.out, ref.out), kTolerance) << "T=" << c.dims.T;
    EXPECT_LT(relative_error(dev.dx, ref.dx), kTolerance) << "T=" << c.dims.T;
    for (size_t i = 0; i < dev.dparams.size(); ++i)
      EXPECT_LT(relative_error(dev.dparams[i], ref.dparams[i]), kTolerance)
          << "param " << i << " T=" << c.dims.T << " chunk=" << c.chunk;
  }
}

// Chunking is an implementation detail: every chunk size computes the same function.
TEST(LinearAttention, ChunkSizesAgree) {
  const AttentionDims dims{1, 150, 32, 2};  // 150 = 2·64 + 22 = 21·7 + 3
  LinearAttention first = make(dims, 1);
  const VariantInputs in = random_variant_inputs(first, dims, fresh_seed());
  const VariantOutputs ref = run_variant_reference(first, dims, StepContext{}, in);
  VariantOutputs previous;
  for (int chunk : {1, 7, 64}) {
    LinearAttention variant = make(dims, chunk);
    const VariantOutputs dev = run_variant_on_device(shared_ops(), variant, dims, {}, in);
    EXPECT_LT(worst_error(dev, ref), kTolerance) << "chunk=" << chunk;
    if (!previous.out.empty()) {
      EXPECT_LT(worst_error(dev, previous), kTolerance) << "chunk=" << chunk;
    }
    previous = dev;
  }
}

// Σ out·dout of the reference, for finite differences.
double weighted_reference_sum(const LinearAttention& v, const AttentionDims& dims,
                              const VariantInputs& in) {
  std::vector<float> out(in.x.size());
  std::vector<const float*> params;
  for (const auto& p : in.params) params.push_back(p.data());
  v.reference_forward({dims, {}, params, in.x.data()}, out.data());
  return weighted_sum(out, in.dout);
}

TEST(LinearAttention, ReferenceGradientsMatchFiniteDifferences) {
  const AttentionDims dims{2, 9, 12, 3};
  LinearAttention variant = make(dims, 4);
  VariantInputs in = random_variant_inputs(variant, dims, fresh_seed());
  const VariantOutputs ref = run_variant_reference(variant, dims, {}, in);
  auto objective = [&] { return weighted_reference_sum(variant, dims, in); };
  expect_directional_derivative(objective, in.x, ref.dx, "x");
  for (size_t i = 0; i < in.params.size(); ++i)
    expect_directional_derivative(objective, in.params[i], ref.dparams[i], "param");
}

TEST(LinearAttention, CostIsLinearInT) {
  const AttentionDims short_dims{4, 1024, 768, 12}, long_dims{4, 2048, 768, 12};
  LinearAttention variant = make(short_dims, 64);
  const AttentionCost a = variant.cost(short_dims), b = variant.cost(long_dims);
  EXPECT_DOUBLE_EQ(b.model_flops_forward, 2 * a.model_flops_forward);
  EXPECT_DOUBLE_EQ(b.executed_flops_backward, 2 * a.executed_flops_backward);
  EXPECT_DOUBLE_EQ(b.saved_bytes, 2 * a.saved_bytes);
  EXPECT_GE(a.executed_flops_forward, a.model_flops_forward);
  EXPECT_EQ(a.model_flops_backward, 2 * a.model_flops_forward);
}

TEST(LinearAttention, RejectsBadChunk) {
  AttentionOptions options;
  options.values["chunk"] = 0;
  LinearAttention variant(options);
  EXPECT_THROW(variant.resolve({1, 8, 32, 2}), UsageError);
}

}  // namespace
}  // namespace attnscope
