// The shared CPU reference of exact causal attention (model/attention/common_reference.hpp),
// which baseline, sdpa, flash, gqa, mla and sliding_window build their references on:
// against VARIANTS.md written out literally, its window and group mappings against
// equivalent plain cases, and its backward (with window and groups) by finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "model/attention/common_reference.hpp"
#include "model/reference/layers.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using reference::ConstHeads;
using reference::ExactAttentionShape;
using reference::Heads;
using namespace testing;

// VARIANTS.md literally, one (b, h) at a time: S = QKᵀ/√d with −∞ above the diagonal,
// P = softmax_row(S), O = PV; q, k, v, o are (B, T, H·d).
std::vector<float> literal_attention(const std::vector<float>& q, const std::vector<float>& k,
                                     const std::vector<float>& v, int B, int T, int H, int d) {
  const int C = H * d;
  std::vector<float> o(q.size());
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      std::vector<double> S(size_t(T) * T);
      for (int i = 0; i < T; ++i)
        for (int j = 0; j < T; ++j) {
          double dot = 0;
          for (int c = 0; c < d; ++c)
            dot += double(q[(size_t(b) * T + i) * C + h * d + c]) * k[(size_t(b) * T + j) * C + h * d + c];
          S[size_t(i) * T + j] = j <= i ? dot / std::sqrt(double(d)) : -INFINITY;
        }
      for (int i = 0; i < T; ++i) {
        double denominator = 0;
        for (int j = 0; j < T; ++j) denominator += std::exp(S[size_t(i) * T + j]);
        for (int c = 0; c < d; ++c) {
          double acc = 0;
          for (int j = 0; j < T; ++j)
            acc += std::exp(S[size_t(i) * T + j]) / denominator * v[(size_t(b) * T + j) * C + h * d + c];
          o[(size_t(b) * T + i) * C + h * d + c] = float(acc);
        }
      }
    }
  return o;
}

struct Qkv {
  std::vector<float> q, k, v;
};

Qkv random_qkv(int B, int T, int C, int kv_C) {
  return {random_vector(size_t(B) * T * C), random_vector(size_t(B) * T * kv_C),
          random_vector(size_t(B) * T * kv_C)};
}

std::vector<float> attention(const Qkv& in, const ExactAttentionShape& s, float* lse = nullptr) {
  const int C = s.H * s.head_size, kv_C = int(in.k.size() / (size_t(s.B) * s.T));
  std::vector<float> out(in.q.size());
  reference::exact_attention_forward({out.data(), C}, nullptr, lse, {in.q.data(), C},
                                     {in.k.data(), kv_C}, {in.v.data(), kv_C}, s);
  return out;
}

TEST(ExactAttentionReference, MatchesTheLiteralDefinition) {
  const int B = 2, T = 9, H = 3, d = 5;
  const Qkv in = random_qkv(B, T, H * d, H * d);
  const std::vector<float> want = literal_attention(in.q, in.k, in.v, B, T, H, d);
  EXPECT_LT(relative_error(attention(in, {B, T, H, d}), want), 1e-6);
}

TEST(ExactAttentionReference, LogSumExpAndProbabilitiesAgree) {
  const int B = 1, T = 6, H = 2, d = 4, C = H * d;
  const Qkv in = random_qkv(B, T, C, C);
  std::vector<float> lse(size_t(B) * H * T), probs(size_t(B) * H * T * T), out(in.q.size());
  reference::exact_attention_forward({out.data(), C}, probs.data(), lse.data(), {in.q.data(), C},
                                     {in.k.data(), C}, {in.v.data(), C}, {B, T, H, d});
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < T; ++i)
      for (int j = 0; j < T; ++j) {
        double s = 0;
        for (int c = 0; c < d; ++c) s += double(in.q[i * C + h * d + c]) * in.k[j * C + h * d + c];
        const double p = j <= i ? std::exp(s / std::sqrt(double(d)) - lse[h * T + i]) : 0.0;
        EXPECT_NEAR(probs[(size_t(h) * T + i) * T + j], p, 1e-6);
      }
}

TEST(ExactAttentionReference, WindowOfTIsFullAndWindowOfOneIsTheValue) {
  const int B = 2, T = 7, H = 2, d = 3;
  const Qkv in = random_qkv(B, T, H * d, H * d);
  EXPECT_EQ(attention(in, {B, T, H, d, 0, T}), attention(in, {B, T, H, d}));
  EXPECT_LT(relative_error(attention(in, {B, T, H, d, 0, 1}), in.v), 1e-7);
  EXPECT_GT(relative_error(attention(in, {B, T, H, d, 0, 3}), attention(in, {B, T, H, d})), 1e-3);
}

// K/V head g repeated for each query head of its group: G = H on the repeated tensors.
std::vector<float> repeat_kv_heads(const std::vector<float>& kv, int N, int H, int G, int d) {
  std::vector<float> out(size_t(N) * H * d);
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < H; ++h)
      for (int c = 0; c < d; ++c) out[(size_t(n) * H + h) * d + c] = kv[(size_t(n) * G + h * G / H) * d + c];
  return out;
}

TEST(ExactAttentionReference, GroupsEqualRepeatedKeyValueHeads) {
  const int B = 2, T = 5, H = 4, G = 2, d = 3, N = B * T, C = H * d;
  const Qkv grouped = random_qkv(B, T, C, G * d);
  const Qkv repeated{grouped.q, repeat_kv_heads(grouped.k, N, H, G, d),
                     repeat_kv_heads(grouped.v, N, H, G, d)};
  EXPECT_EQ(attention(grouped, {B, T, H, d, G}), attention(repeated, {B, T, H, d}));

  // Backward: the group's dK, dV are the sums over its repeated copies.
  const std::vector<float> dout = random_vector(size_t(N) * C);
  std::vector<float> dq_g(size_t(N) * C, 0.f), dk_g(size_t(N) * G * d, 0.f), dv_g(dk_g.size(), 0.f);
  std::vector<float> dq_r(dq_g.size(), 0.f), dk_r(dq_g.size(), 0.f), dv_r(dq_g.size(), 0.f);
  reference::exact_attention_backward({dq_g.data(), C}, {dk_g.data(), G * d}, {dv_g.data(), G * d},
                                      {dout.data(), C}, {grouped.q.data(), C},
                                      {grouped.k.data(), G * d}, {grouped.v.data(), G * d},
                                      {B, T, H, d, G});
  reference::exact_attention_backward({dq_r.data(), C}, {dk_r.data(), C}, {dv_r.data(), C},
                                      {dout.data(), C}, {repeated.q.data(), C},
                                      {repeated.k.data(), C}, {repeated.v.data(), C}, {B, T, H, d});
  std::vector<float> dk_sum(dk_g.size(), 0.f), dv_sum(dv_g.size(), 0.f);
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < H; ++h)
      for (int c = 0; c < d; ++c) {
        dk_sum[(size_t(n) * G + h * G / H) * d + c] += dk_r[(size_t(n) * H + h) * d + c];
        dv_sum[(size_t(n) * G + h * G / H) * d + c] += dv_r[(size_t(n) * H + h) * d + c];
      }
  EXPECT_LT(relative_error(dq_g, dq_r), 1e-6);
  EXPECT_LT(relative_error(dk_g, dk_sum), 1e-6);
  EXPECT_LT(relative_error(dv_g, dv_sum), 1e-6);
}

// Finite differences of Σ out·r with a window and groups, every coordinate of q, k, v.
TEST(ExactAttentionReference, BackwardMatchesFiniteDifferences) {
  const int B = 1, T = 6, H = 2, G = 1, d = 3, C = H * d, kv_C = G * d;
  const ExactAttentionShape shape{B, T, H, d, G, 3};
  Qkv in = random_qkv(B, T, C, kv_C);
  const std::vector<float> r = random_vector(in.q.size());
  std::vector<float> dq(in.q.size(), 0.f), dk(in.k.size(), 0.f), dv(in.v.size(), 0.f);
  reference::exact_attention_backward({dq.data(), C}, {dk.data(), kv_C}, {dv.data(), kv_C},
                                      {r.data(), C}, {in.q.data(), C}, {in.k.data(), kv_C},
                                      {in.v.data(), kv_C}, shape);
  auto loss = [&] {
    const std::vector<float> out = attention(in, shape);
    double l = 0;
    for (size_t i = 0; i < out.size(); ++i) l += double(out[i]) * r[i];
    return l;
  };
  for (auto [tensor, analytic] : {std::pair{&in.q, &dq}, std::pair{&in.k, &dk}, std::pair{&in.v, &dv}}) {
    std::vector<float> numeric(tensor->size());
    for (size_t i = 0; i < tensor->size(); ++i) {
      const float original = (*tensor)[i];
      (*tensor)[i] = original + 1e-2f;
      const double up = loss(), h_up = double((*tensor)[i]) - original;
      (*tensor)[i] = original - 1e-2f;
      const double down = loss(), h_down = original - double((*tensor)[i]);
      (*tensor)[i] = original;
      numeric[i] = float((up - down) / (h_up + h_down));
    }
    EXPECT_LT(relative_error(numeric, *analytic), 1e-3);
  }
}

}  // namespace
}  // namespace attnscope
