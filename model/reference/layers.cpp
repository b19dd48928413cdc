#include "model/reference/layers.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "model/reference/parallel.hpp"

namespace attnscope::reference {

void encoder_forward(float* out, const int* tokens, const float* wte, const float* wpe, int B,
                     int T, int C) {
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const float* token_row = wte + size_t(tokens[b * T + t]) * C;
      const float* position_row = wpe + size_t(t) * C;
      float* out_row = out + (size_t(b) * T + t) * C;
      for (int c = 0; c < C; ++c) out_row[c] = token_row[c] + position_row[c];
    }
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* tokens, int B, int T,
                      int C) {
  // Sums per token and per position in double, then one += into the float gradients.
  std::map<int, std::vector<double>> token_sums;
  std::vector<double> position_sums(size_t(T) * C, 0.0);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const float* g = dout + (size_t(b) * T + t) * C;
      auto& token_sum = token_sums[tokens[b * T + t]];
      token_sum.resize(C, 0.0);
      for (int c = 0; c < C; ++c) {
        token_sum[c] += g[c];
        position_sums[size_t(t) * C + c] += g[c];
      }
    }
  for (const auto& [token, sum] : token_sums)
    for (int c = 0; c < C; ++c) dwte[size_t(token) * C + c] += float(sum[c]);
  for (size_t i = 0; i < position_sums.size(); ++i) dwpe[i] += float(position_sums[i]);
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C) {
  const double eps = 1e-5;
  for (int n = 0; n < N; ++n) {
    const float* x = inp + size_t(n) * C;
    double sum = 0;
    for (int c = 0; c < C; ++c) sum += x[c];
    const double m = sum / C;
    double var = 0;
    for (int c = 0; c < C; ++c) var += (x[c] - m) * (x[c] - m);
    const double s = 1.0 / std::sqrt(var / C + eps);
    for (int c = 0; c < C; ++c)
      out[size_t(n) * C + c] = float((x[c] - m) * s * weight[c] + bias[c]);
    mean[n] = float(m);
    rstd[n] = float(s);
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int N, int C) {
  std::vector<double> dweight_sum(C, 0.0), dbias_sum(C, 0.0);
  for (int n = 0; n < N; ++n) {
    const float* x = inp + size_t(n) * C;
    const float* g = dout + size_t(n) * C;
    // dinp = rstd · (dnorm − mean(dnorm) − norm · mean(dnorm · norm)), dnorm = weight · dout
    double dnorm_mean = 0, dnorm_norm_mean = 0;
    for (int c = 0; c < C; ++c) {
      double norm = (x[c] - double(mean[n])) * rstd[n];
      dnorm_mean += double(weight[c]) * g[c];
      dnorm_norm_mean += double(weight[c]) * g[c] * norm;
    }
    dnorm_mean /= C;
    dnorm_norm_mean /= C;
    for (int c = 0; c < C; ++c) {
      double norm = (x[c] - double(mean[n])) * rstd[n];
      double dnorm = double(weight[c]) * g[c];
      dbias_sum[c] += g[c];
      dweight_sum[c] += norm * g[c];
      dinp[size_t(n) * C + c] += float((dnorm - dnorm_mean - norm * dnorm_norm_mean) * rstd[n]);
    }
  }
  for (int c = 0; c < C; ++c) {
    dweight[c] += float(dweight_sum[c]);
    dbias[c] += float(dbias_sum[c]);
  }
}

void gemm(float* c, const float* a, const float* b, int M, int N, int K, bool trans_a, bool trans_b,
          float alpha, float beta) {
  // One row of C a task. Every element sums op(a)[m,k]·op(b)[k,n] over k = 0, 1, ... in
  // order, in double; the loops run along b's stored rows, so that a T = 4096 product does
  // not miss the cache on every term.
  parallel_for(M, [&](int m) {
    auto a_at = [&](int k) { return double(trans_a ? a[size_t(k) * M + m] : a[size_t(m) * K + k]); };
    std::vector<double> row(size_t(N), 0.0);
    if (trans_b) {  // b stored [N,K]: a dot product along each of its rows
      for (int n = 0; n < N; ++n) {
        const float* bn = b + size_t(n) * K;
        for (int k = 0; k < K; ++k) row[n] += a_at(k) * bn[k];
      }
    } else {  // b stored [K,N]: the whole row of sums advances one k at a time
      for (int k = 0; k < K; ++k) {
        const double av = a_at(k);
        const float* bk = b + size_t(k) * N;
        for (int n = 0; n < N; ++n) row[n] += av * bk[n];
      }
    }
    float* out = c + size_t(m) * N;
    for (int n = 0; n < N; ++n)
      out[n] = float(alpha * row[n] + (beta != 0.f ? double(beta) * out[n] : 0.0));
  });
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int C, int OC) {
  gemm(out, inp, weight, N, OC, C, false, true, 1.f, 0.f);
  if (!bias) return;
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) out[size_t(n) * OC + o] += bias[o];
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC) {
  gemm(dinp, dout, weight, N, C, OC, false, false, 1.f, 0.f);
  gemm(dweight, dout, inp, OC, C, N, true, false, 1.f, 1.f);
  if (!dbias) return;
  for (int o = 0; o < OC; ++o) {
    double sum = 0;
    for (int n = 0; n < N; ++n) sum += dout[size_t(n) * OC + o];
    dbias[o] += float(sum);
  }
}

namespace {
const double kGeluScaling = std::sqrt(2.0 / M_PI);
}

void gelu_forward(float* out, const float* inp, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    double x = inp[i];
    out[i] = float(0.5 * x * (1.0 + std::tanh(kGeluScaling * (x + 0.044715 * x * x * x))));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    double x = inp[i];
    double u = kGeluScaling * (x + 0.044715 * x * x * x);
    double th = std::tanh(u);
    double du = kGeluScaling * (1.0 + 3.0 * 0.044715 * x * x);
    double local_grad = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
    dinp[i] = float(local_grad * dout[i]);
  }
}

void residual_forward(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void residual_backward(float* da, float* db, const float* dout, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

void accumulate(float* dst, const float* src, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}

namespace {

// log Σ_{v<V} exp(row[v]) with the maximum subtracted first.
double log_sum_exp(const float* row, int V) {
  double max_value = row[0];
  for (int v = 1; v < V; ++v) max_value = std::max(max_value, double(row[v]));
  double sum = 0;
  for (int v = 0; v < V; ++v) sum += std::exp(row[v] - max_value);
  return max_value + std::log(sum);
}

}  // namespace

void crossentropy_forward(float* losses, const float* logits, const int* targets, int N, int V,
                          int Vp) {
  for (int n = 0; n < N; ++n) {
    const float* row = logits + size_t(n) * Vp;
    losses[n] = float(log_sum_exp(row, V) - row[targets[n]]);
  }
}

void crossentropy_backward(float* dlogits, const float* dlosses, const float* logits,
                           const int* targets, int N, int V, int Vp) {
  for (int n = 0; n < N; ++n) {
    const float* row = logits + size_t(n) * Vp;
    const double lse = log_sum_exp(row, V);
    float* drow = dlogits + size_t(n) * Vp;
    for (int v = 0; v < V; ++v) {
      double p = std::exp(row[v] - lse);
      drow[v] = float((p - (v == targets[n] ? 1.0 : 0.0)) * dlosses[n]);
    }
    for (int v = V; v < Vp; ++v) drow[v] = 0.f;
  }
}

void fused_classifier(float* logits, float* losses, const int* targets, int N, int V, int Vp) {
  crossentropy_forward(losses, logits, targets, N, V, Vp);
  std::vector<float> dlosses(N, 1.f / N);
  std::vector<float> dlogits(size_t(N) * Vp);
  crossentropy_backward(dlogits.data(), dlosses.data(), logits, targets, N, V, Vp);
  std::copy(dlogits.begin(), dlogits.end(), logits);
}

double squared_norm(const float* x, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += double(x[i]) * x[i];
  return sum;
}

float clip_scale(double norm_sq, float clip) {
  if (clip <= 0.f) return 1.f;
  double norm = std::sqrt(norm_sq);
  return norm > clip ? float(clip / norm) : 1.f;
}

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int step,
                  float grad_scale) {
  const double m_correction = 1.0 - std::pow(double(beta1), step);
  const double v_correction = 1.0 - std::pow(double(beta2), step);
  for (size_t i = 0; i < n; ++i) {
    double g = double(grads[i]) * grad_scale;
    double mi = beta1 * double(m[i]) + (1.0 - beta1) * g;
    double vi = beta2 * double(v[i]) + (1.0 - beta2) * g * g;
    double m_hat = mi / m_correction, v_hat = vi / v_correction;
    double p = params[i];
    params[i] = float(p - lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * p));
    m[i] = float(mi);
    v[i] = float(vi);
  }
}

}  // namespace attnscope::reference
