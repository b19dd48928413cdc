// The CPU reference's backward functions against central finite differences of its forward
// functions, through the scalar loss L = Σ out · w with random weights w (so dout = w).
// Gradients that the reference accumulates start from random values (subtracted after);
// gradients it overwrites start as NaN. The optimizer's reference, which has no backward,
// is checked against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "model/reference/layers.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using namespace testing;

// The forwards run in fp32, so L carries rounding noise of ~1e-7·|L|; with steps of 1e-2
// the central difference has noise of ~1e-5 relative and truncation error ~h²/6·f'''
// ≈ 1e-5. A wrong backward (a missing term, a wrong sign, a wrong scale) is off by O(1e-1)
// or more: kGradTolerance sits well between (and FiniteDifference.DetectsWrongGradient
// shows a 1% error is caught).
constexpr float kStep = 1e-2f;
constexpr double kGradTolerance = 2e-3;

using Forward = std::function<std::vector<float>()>;  // output for the current inputs

double loss(const Forward& forward, const std::vector<float>& weights) {
  std::vector<float> out = forward();
  double sum = 0;
  for (size_t i = 0; i < out.size(); ++i) sum += double(out[i]) * weights[i];
  return sum;
}

// dL/dx by central differences; x is perturbed in place (and restored), forward reads it.
std::vector<float> numeric_gradient(std::vector<float>& x, const Forward& forward,
                                    const std::vector<float>& weights) {
  std::vector<float> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float saved = x[i];
    x[i] = saved + kStep;
    const double up = loss(forward, weights);
    const double step_up = double(x[i]) - saved;  // the step fp32 actually took
    x[i] = saved - kStep;
    const double down = loss(forward, weights);
    const double step_down = double(saved) - x[i];
    x[i] = saved;
    grad[i] = float((up - down) / (step_up + step_down));
  }
  return grad;
}

std::vector<float> minus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

std::vector<float> nans(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// Checks an accumulated gradient: (after − start) against the numeric gradient.
void expect_accumulated(const std::vector<float>& after, const std::vector<float>& start,
                        const std::vector<float>& numeric, const char* what) {
  EXPECT_LT(testing::relative_error(minus(after, start), numeric), kGradTolerance) << what;
}

void expect_overwritten(const std::vector<float>& grad, const std::vector<float>& numeric,
                        const char* what) {
  EXPECT_LT(testing::relative_error(grad, numeric), kGradTolerance) << what;
}

TEST(FiniteDifference, DetectsWrongGradient) {
  // y = x², dL/dx = 2·x·w; a backward 1% off must fail the check.
  std::vector<float> x = random_vector(20), w = random_vector(20);
  Forward square = [&] {
    std::vector<float> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * x[i];
    return y;
  };
  std::vector<float> numeric = numeric_gradient(x, square, w), right(20), wrong(20);
  for (size_t i = 0; i < x.size(); ++i) {
    right[i] = 2 * x[i] * w[i];
    wrong[i] = 1.01f * right[i];
  }
  EXPECT_LT(testing::relative_error(right, numeric), kGradTolerance);
  EXPECT_GT(testing::relative_error(wrong, numeric), kGradTolerance);
}

TEST(ReferenceGradients, Encoder) {
  const int B = 2, T = 3, C = 4, V = 3;
  std::vector<int> tokens = {0, 2, 0, 2, 2, 1};  // repeats within and across rows
  auto wte = random_vector(V * C), wpe = random_vector(T * C), w = random_vector(B * T * C);
  Forward forward = [&] {
    std::vector<float> out(B * T * C);
    reference::encoder_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
    return out;
  };
  auto dwte_start = random_vector(V * C), dwpe_start = random_vector(T * C);
  auto dwte = dwte_start, dwpe = dwpe_start;
  reference::encoder_backward(dwte.data(), dwpe.data(), w.data(), tokens.data(), B, T, C);
  expect_accumulated(dwte, dwte_start, numeric_gradient(wte, forward, w), "dwte");
  expect_accumulated(dwpe, dwpe_start, numeric_gradient(wpe, forward, w), "dwpe");
}

TEST(ReferenceGradients, Layernorm) {
  const int N = 3, C = 7;
  auto inp = random_vector(N * C), weight = random_vector(C), bias = random_vector(C);
  auto w = random_vector(N * C);
  std::vector<float> mean(N), rstd(N);
  Forward forward = [&] {
    std::vector<float> out(N * C);
    reference::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                                 bias.data(), N, C);
    return out;
  };
  forward();  // mean, rstd of the unperturbed input, for backward
  auto dinp_start = random_vector(N * C), dweight_start = random_vector(C);
  auto dbias_start = random_vector(C);
  auto dinp = dinp_start, dweight = dweight_start, dbias = dbias_start;
  reference::layernorm_backward(dinp.data(), dweight.data(), dbias.data(), w.data(), inp.data(),
                                weight.data(), mean.data(), rstd.data(), N, C);
  expect_accumulated(dinp, dinp_start, numeric_gradient(inp, forward, w), "dinp");
  expect_accumulated(dweight, dweight_start, numeric_gradient(weight, forward, w), "dweight");
  expect_accumulated(dbias, dbias_start, numeric_gradient(bias, forward, w), "dbias");
}

TEST(ReferenceGradients, Matmul) {
  const int N = 4, C = 5, OC = 3;
  auto inp = random_vector(N * C), weight = random_vector(OC * C), bias = random_vector(OC);
  auto w = random_vector(N * OC);
  Forward forward = [&] {
    std::vector<float> out(N * OC);
    reference::matmul_forward(out.data(), inp.data(), weight.data(), bias.data(), N, C, OC);
    return out;
  };
  auto dweight_start = random_vector(OC * C), dbias_start = random_vector(OC);
  auto dinp = nans(N * C), dweight = dweight_start, dbias = dbias_start;
  reference::matmul_backward(dinp.data(), dweight.data(), dbias.data(), w.data(), inp.data(),
                             weight.data(), N, C, OC);
  expect_overwritten(dinp, numeric_gradient(inp, forward, w), "dinp");
  expect_accumulated(dweight, dweight_start, numeric_gradient(weight, forward, w), "dweight");
  expect_accumulated(dbias, dbias_start, numeric_gradient(bias, forward, w), "dbias");
}

TEST(ReferenceGradients, Gelu) {
  const size_t n = 25;
  auto inp = random_vector(n, 2.f), w = random_vector(n);
  Forward forward = [&] {
    std::vector<float> out(n);
    reference::gelu_forward(out.data(), inp.data(), n);
    return out;
  };
  auto dinp = nans(n);
  reference::gelu_backward(dinp.data(), inp.data(), w.data(), n);
  expect_overwritten(dinp, numeric_gradient(inp, forward, w), "dinp");
}

TEST(ReferenceGradients, Residual) {
  const size_t n = 9;
  auto a = random_vector(n), b = random_vector(n), w = random_vector(n);
  Forward forward = [&] {
    std::vector<float> out(n);
    reference::residual_forward(out.data(), a.data(), b.data(), n);
    return out;
  };
  auto da_start = random_vector(n), db_start = random_vector(n);
  auto da = da_start, db = db_start;
  reference::residual_backward(da.data(), db.data(), w.data(), n);
  expect_accumulated(da, da_start, numeric_gradient(a, forward, w), "da");
  expect_accumulated(db, db_start, numeric_gradient(b, forward, w), "db");
}

TEST(ReferenceGradients, CrossEntropyOverPaddedVocabulary) {
  const int N = 3, V = 5, Vp = 8;  // the padding must get no gradient
  auto logits = random_vector(N * Vp, 2.f), w = random_vector(N);
  std::vector<int> targets = {4, 0, 2};
  Forward forward = [&] {
    std::vector<float> losses(N);
    reference::crossentropy_forward(losses.data(), logits.data(), targets.data(), N, V, Vp);
    return losses;
  };
  auto dlogits = nans(N * Vp);
  reference::crossentropy_backward(dlogits.data(), w.data(), logits.data(), targets.data(), N, V,
                                   Vp);
  expect_overwritten(dlogits, numeric_gradient(logits, forward, w), "dlogits");
}

TEST(ReferenceGradients, FusedClassifierIsForwardThenMeanBackward) {
  const int N = 3, V = 5, Vp = 8;
  auto logits = random_vector(N * Vp, 2.f);
  std::vector<int> targets = {1, 3, 0};
  std::vector<float> want_losses(N), mean_dloss(N, 1.f / N), want_dlogits(N * Vp);
  reference::crossentropy_forward(want_losses.data(), logits.data(), targets.data(), N, V, Vp);
  reference::crossentropy_backward(want_dlogits.data(), mean_dloss.data(), logits.data(),
                                   targets.data(), N, V, Vp);
  std::vector<float> losses(N);
  reference::fused_classifier(logits.data(), losses.data(), targets.data(), N, V, Vp);
  EXPECT_EQ(losses, want_losses);
  EXPECT_EQ(logits, want_dlogits);
}

TEST(ReferenceOptimizer, SquaredNormAndClipScale) {
  std::vector<float> g = {3.f, -4.f};
  EXPECT_DOUBLE_EQ(reference::squared_norm(g.data(), g.size()), 25.0);
  EXPECT_FLOAT_EQ(reference::clip_scale(25.0, 1.f), 0.2f);
  EXPECT_FLOAT_EQ(reference::clip_scale(25.0, 10.f), 1.f);
  EXPECT_FLOAT_EQ(reference::clip_scale(25.0, 0.f), 1.f);  // clipping off
}

TEST(ReferenceOptimizer, AdamWFirstStepByHand) {
  // Step 1 from m = v = 0: m̂ = g, v̂ = g², so param −= lr·(g/(|g| + eps) + wd·param).
  const float lr = 0.1f, wd = 0.5f, eps = 1e-8f, scale = 0.5f;
  std::vector<float> params = {1.f, -2.f}, grads = {4.f, -0.5f}, m = {0, 0}, v = {0, 0};
  reference::adamw_update(params.data(), grads.data(), m.data(), v.data(), 2, lr, 0.9f, 0.95f, eps,
                          wd, 1, scale);
  EXPECT_NEAR(params[0], 1.f - lr * (1.f + wd * 1.f), 1e-6);
  EXPECT_NEAR(params[1], -2.f - lr * (-1.f + wd * -2.f), 1e-6);
  EXPECT_NEAR(m[0], 0.1f * 2.f, 1e-7);       // (1 − β1)·g, g = grads·scale
  EXPECT_NEAR(v[1], 0.05f * 0.0625f, 1e-8);  // (1 − β2)·g²
}

TEST(ReferenceOptimizer, AdamWBiasCorrectionAtLaterSteps) {
  // With constant m, v from earlier steps, step t divides by 1 − β^t.
  const int t = 5;
  const float b1 = 0.9f, b2 = 0.95f;
  std::vector<float> params = {0.f}, grads = {0.f}, m = {0.3f}, v = {0.04f};
  reference::adamw_update(params.data(), grads.data(), m.data(), v.data(), 1, 1.f, b1, b2, 0.f, 0.f,
                          t, 1.f);
  double m_hat = 0.9 * 0.3 / (1 - std::pow(0.9, t));
  double v_hat = 0.95 * 0.04 / (1 - std::pow(0.95, t));
  EXPECT_NEAR(params[0], -m_hat / std::sqrt(v_hat), 1e-5);
}

}  // namespace
}  // namespace attnscope
