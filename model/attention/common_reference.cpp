#include "model/attention/common_reference.hpp"

#include <algorithm>
#include <cmath>

#include "model/reference/layers.hpp"
#include "model/reference/parallel.hpp"

namespace attnscope::reference {

namespace {

double dot(const float* a, const float* b, int n) {
  double acc = 0;
  for (int i = 0; i < n; ++i) acc += double(a[i]) * b[i];
  return acc;
}

// Row i of P for head h of batch b over keys [first_key(i), i], in double; returns the
// row's log-sum-exp. p[j - first_key(i)] = P_ij.
double softmax_row(std::vector<double>& p, const ConstHeads& q, const ConstHeads& k, int b, int h,
                   int i, const ExactAttentionShape& s) {
  const int d = s.head_size, g = s.kv_head_of(h), j0 = s.first_key(i);
  const double scale = 1.0 / std::sqrt(double(d));
  const float* qi = q.at(b, i, h, s.T, d);
  p.assign(size_t(i - j0 + 1), 0.0);
  double max_score = -INFINITY;
  for (int j = j0; j <= i; ++j) {
    p[j - j0] = dot(qi, k.at(b, j, g, s.T, d), d) * scale;
    max_score = std::max(max_score, p[j - j0]);
  }
  double sum = 0;
  for (double& x : p) sum += (x = std::exp(x - max_score));  // shifted: no overflow
  for (double& x : p) x /= sum;
  return max_score + std::log(sum);
}

}  // namespace

void exact_attention_forward(const Heads& out, float* probs, float* lse, const ConstHeads& q,
                             const ConstHeads& k, const ConstHeads& v,
                             const ExactAttentionShape& s) {
  const int d = s.head_size, T = s.T;
  parallel_for(s.B * s.H, [&](int bh) {  // one (batch, head) a task: its rows only
    const int b = bh / s.H, h = bh % s.H;
    std::vector<double> p, o(d);
    for (int i = 0; i < T; ++i) {
      const double row_lse = softmax_row(p, q, k, b, h, i, s);
      const int g = s.kv_head_of(h), j0 = s.first_key(i);
      std::fill(o.begin(), o.end(), 0.0);
      for (int j = j0; j <= i; ++j) {
        const float* vj = v.at(b, j, g, T, d);
        for (int c = 0; c < d; ++c) o[c] += p[j - j0] * vj[c];
      }
      float* oi = out.at(b, i, h, T, d);
      for (int c = 0; c < d; ++c) oi[c] = float(o[c]);
      const size_t row = (size_t(b) * s.H + h) * T + i;
      if (probs) {
        float* prow = probs + row * T;
        std::fill(prow, prow + T, 0.f);
        for (int j = j0; j <= i; ++j) prow[j] = float(p[j - j0]);
      }
      if (lse) lse[row] = float(row_lse);
    }
  });
}

void exact_attention_backward(const Heads& dq, const Heads& dk, const Heads& dv,
                              const ConstHeads& dout, const ConstHeads& q, const ConstHeads& k,
                              const ConstHeads& v, const ExactAttentionShape& s) {
  const int d = s.head_size, T = s.T;
  const int G = s.kv_heads > 0 ? s.kv_heads : s.H;
  const double scale = 1.0 / std::sqrt(double(d));
  // One (batch, K/V head) a task: dK, dV of the head and dQ of its group's query heads.
  parallel_for(s.B * G, [&](int bg) {
    const int b = bg / G, g = bg % G;
    std::vector<double> p, dp, dq_row(d);
    // dK, dV of the head summed in double over its group's query heads and all queries,
    // then added once: the reference's own rounding stays far below fp32's.
    std::vector<double> dk_acc(size_t(T) * d, 0.0), dv_acc(size_t(T) * d, 0.0);
    for (int h = 0; h < s.H; ++h) {
      if (s.kv_head_of(h) != g) continue;
      for (int i = 0; i < T; ++i) {
        softmax_row(p, q, k, b, h, i, s);
        const int j0 = s.first_key(i);
        const float* doi = dout.at(b, i, h, T, d);
        const float* qi = q.at(b, i, h, T, d);
        dp.assign(p.size(), 0.0);
        double D = 0;  // D_i = Σ_j P_ij dP_ij
        for (int j = j0; j <= i; ++j) {
          dp[j - j0] = dot(doi, v.at(b, j, g, T, d), d);
          D += p[j - j0] * dp[j - j0];
        }
        std::fill(dq_row.begin(), dq_row.end(), 0.0);
        for (int j = j0; j <= i; ++j) {
          const double pj = p[j - j0], ds = pj * (dp[j - j0] - D) * scale;
          const float* kj = k.at(b, j, g, T, d);
          for (int c = 0; c < d; ++c) {
            dq_row[c] += ds * kj[c];
            dk_acc[size_t(j) * d + c] += ds * qi[c];
            dv_acc[size_t(j) * d + c] += pj * doi[c];
          }
        }
        float* dqi = dq.at(b, i, h, T, d);
        for (int c = 0; c < d; ++c) dqi[c] += float(dq_row[c]);
      }
    }
    for (int j = 0; j < T; ++j) {
      float* dkj = dk.at(b, j, g, T, d);
      float* dvj = dv.at(b, j, g, T, d);
      for (int c = 0; c < d; ++c) {
        dkj[c] += float(dk_acc[size_t(j) * d + c]);
        dvj[c] += float(dv_acc[size_t(j) * d + c]);
      }
    }
  });
}

QKVHeads split_qkv(const float* qkv, int C) {
  return {{qkv, 3 * C}, {qkv + C, 3 * C}, {qkv + 2 * C, 3 * C}};
}

QKVGradHeads split_qkv_grad(float* dqkv, int C) {
  return {{dqkv, 3 * C}, {dqkv + C, 3 * C}, {dqkv + 2 * C, 3 * C}};
}

namespace {

ExactAttentionShape shape_of(const AttentionDims& dims, int window) {
  ExactAttentionShape s;
  s.B = dims.B;
  s.T = dims.T;
  s.H = dims.H;
  s.head_size = dims.head_size();
  s.window = window;
  return s;
}

// qkv (B,T,3C) and the attention output before projection, att (B,T,C).
void mha_core_forward(std::vector<float>& qkv, std::vector<float>& att, const AttentionDims& dims,
                      int window, const std::vector<const float*>& params, const float* x) {
  const int N = dims.B * dims.T, C = dims.C;
  qkv.resize(size_t(N) * 3 * C);
  att.resize(size_t(N) * C);
  matmul_forward(qkv.data(), x, params[0], params[1], N, C, 3 * C);
  QKVHeads in = split_qkv(qkv.data(), C);
  exact_attention_forward({att.data(), C}, nullptr, nullptr, in.q, in.k, in.v,
                          shape_of(dims, window));
}

}  // namespace

void mha_block_forward(const AttentionDims& dims, int window,
                       const std::vector<const float*>& params, const float* x, float* out) {
  std::vector<float> qkv, att;
  mha_core_forward(qkv, att, dims, window, params, x);
  matmul_forward(out, att.data(), params[2], params[3], dims.B * dims.T, dims.C, dims.C);
}

void mha_block_backward(const AttentionDims& dims, int window,
                        const std::vector<const float*>& params, const float* x,
                        const float* dout, float* dx, const std::vector<float*>& dparams) {
  const int N = dims.B * dims.T, C = dims.C;
  std::vector<float> qkv, att;  // recomputed: the reference keeps no state between calls
  mha_core_forward(qkv, att, dims, window, params, x);
  std::vector<float> datt(size_t(N) * C), dqkv(size_t(N) * 3 * C, 0.f);
  matmul_backward(datt.data(), dparams[2], dparams[3], dout, att.data(), params[2], N, C, C);
  QKVHeads in = split_qkv(qkv.data(), C);
  QKVGradHeads grad = split_qkv_grad(dqkv.data(), C);
  exact_attention_backward(grad.q, grad.k, grad.v, {datt.data(), C}, in.q, in.k, in.v,
                           shape_of(dims, window));
  matmul_backward(dx, dparams[0], dparams[1], dqkv.data(), x, params[0], N, C, 3 * C);
}

}  // namespace attnscope::reference
