// CPU reference of LSH attention (VARIANTS.md §lsh) for given bucket ids, double
// accumulation, written round by round as the definition reads; the device's backward
// (lsh.cl) uses the equivalent single-softmax form instead, so the two derivations check
// each other.
//
// Backward, per query i, with w_r = exp(L_r − LSE) and O = Σ_r w_r O_r:
//   dO_r = w_r dO;  dL_r = w_r dO·(O_r − O)              (through the round weights)
//   per allowed key j of round r, with P the round's softmax:
//     dV_j += P_j dO_r;  dS_j = P_j (dO_r·V_j − dO_r·O_r) + P_j dL_r
//     dQ_i += dS_j K_j/√d;  dK_j += dS_j Q_i/√d          (not for j = i: a constant score)
//   then through K_j = Q_j ρ_j, ρ_j = (‖Q_j‖² + 1e-12)^−½: dQ_j += ρ_j dK_j − ρ_j³ (Q_j·dK_j) Q_j.
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/attention/lsh.hpp"
#include "model/reference/layers.hpp"

namespace attnscope::reference {

namespace {

constexpr double kSelfScore = -1e5, kNormEps = 1e-12;

// K = Q·ρ of every position of head (b, h), (T, d) row-major, and ρ (T).
void normalised_keys(std::vector<double>& keys, std::vector<double>& rho, const ConstHeads& q,
                     int b, int h, const LshShape& s) {
  const int d = s.head_size;
  keys.resize(size_t(s.T) * d);
  rho.resize(s.T);
  for (int j = 0; j < s.T; ++j) {
    const float* qj = q.at(b, j, h, s.T, d);
    double squares = 0;
    for (int c = 0; c < d; ++c) squares += double(qj[c]) * qj[c];
    rho[j] = 1.0 / std::sqrt(squares + kNormEps);
    for (int c = 0; c < d; ++c) keys[size_t(j) * d + c] = qj[c] * rho[j];
  }
}

// One round of one query: its allowed keys, their softmax P, O_r and L_r.
struct Round {
  std::vector<int> keys;
  std::vector<double> p, o;
  double lse = 0;
};

Round attend_round(const ConstHeads& q, const ConstHeads& v, const std::vector<double>& keys,
                   const int* bucket_row, int b, int h, int i, const LshShape& s) {
  const int d = s.head_size;
  const double scale = 1.0 / std::sqrt(double(d));
  const float* qi = q.at(b, i, h, s.T, d);
  Round round;
  round.keys = lsh::allowed_keys(bucket_row, i, s.chunk);
  double max_score = -INFINITY;
  for (int j : round.keys) {
    double score = kSelfScore;
    if (j != i) {
      score = 0;
      for (int c = 0; c < d; ++c) score += qi[c] * keys[size_t(j) * d + c];
      score *= scale;
    }
    round.p.push_back(score);
    max_score = std::max(max_score, score);
  }
  double sum = 0;
  for (double& x : round.p) sum += (x = std::exp(x - max_score));
  round.o.assign(d, 0.0);
  for (size_t n = 0; n < round.keys.size(); ++n) {
    round.p[n] /= sum;
    const float* vj = v.at(b, round.keys[n], h, s.T, d);
    for (int c = 0; c < d; ++c) round.o[c] += round.p[n] * vj[c];
  }
  round.lse = max_score + std::log(sum);
  return round;
}

// All rounds of query i and their weights w_r = exp(L_r − logsumexp_r L_r); o = Σ w_r O_r.
std::vector<Round> attend_rounds(std::vector<double>& w, std::vector<double>& o,
                                 const ConstHeads& q, const ConstHeads& v,
                                 const std::vector<double>& keys, const std::vector<int>& buckets,
                                 int b, int h, int i, const LshShape& s) {
  std::vector<Round> rounds;
  double max_lse = -INFINITY;
  for (int r = 0; r < s.rounds; ++r) {
    const int* row = buckets.data() + ((size_t(b) * s.H + h) * s.rounds + r) * s.T;
    rounds.push_back(attend_round(q, v, keys, row, b, h, i, s));
    max_lse = std::max(max_lse, rounds.back().lse);
  }
  double total = 0;
  w.resize(s.rounds);
  for (int r = 0; r < s.rounds; ++r) total += (w[r] = std::exp(rounds[r].lse - max_lse));
  o.assign(s.head_size, 0.0);
  for (int r = 0; r < s.rounds; ++r) {
    w[r] /= total;
    for (int c = 0; c < s.head_size; ++c) o[c] += w[r] * rounds[r].o[c];
  }
  return rounds;
}

double dot(const double* a, const float* b, int n) {
  double acc = 0;
  for (int i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

}  // namespace

void lsh_attention_forward(const Heads& out, const ConstHeads& q, const ConstHeads& v,
                           const std::vector<int>& buckets, const LshShape& s) {
  std::vector<double> keys, rho, w, o;
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      normalised_keys(keys, rho, q, b, h, s);
      for (int i = 0; i < s.T; ++i) {
        attend_rounds(w, o, q, v, keys, buckets, b, h, i, s);
        float* oi = out.at(b, i, h, s.T, s.head_size);
        for (int c = 0; c < s.head_size; ++c) oi[c] = float(o[c]);
      }
    }
}

void lsh_attention_backward(const Heads& dq, const Heads& dv, const ConstHeads& dout,
                            const ConstHeads& q, const ConstHeads& v,
                            const std::vector<int>& buckets, const LshShape& s) {
  const int d = s.head_size, T = s.T;
  const double scale = 1.0 / std::sqrt(double(d));
  std::vector<double> keys, rho, w, o, dout_r(d);
  std::vector<double> dq_acc(size_t(T) * d), dk_acc(size_t(T) * d), dv_acc(size_t(T) * d);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      normalised_keys(keys, rho, q, b, h, s);
      std::fill(dq_acc.begin(), dq_acc.end(), 0.0);
      std::fill(dk_acc.begin(), dk_acc.end(), 0.0);
      std::fill(dv_acc.begin(), dv_acc.end(), 0.0);
      for (int i = 0; i < T; ++i) {
        const std::vector<Round> rounds = attend_rounds(w, o, q, v, keys, buckets, b, h, i, s);
        const float* doi = dout.at(b, i, h, T, d);
        const float* qi = q.at(b, i, h, T, d);
        for (int r = 0; r < s.rounds; ++r) {
          const Round& round = rounds[r];
          double dlse = 0, dout_dot_or = 0;  // dL_r and dO_r·O_r
          for (int c = 0; c < d; ++c) {
            dout_r[c] = w[r] * doi[c];
            dlse += w[r] * doi[c] * (round.o[c] - o[c]);
            dout_dot_or += dout_r[c] * round.o[c];
          }
          for (size_t n = 0; n < round.keys.size(); ++n) {
            const int j = round.keys[n];
            const double p = round.p[n];
            const double ds =
                p * (dot(dout_r.data(), v.at(b, j, h, T, d), d) - dout_dot_or) + p * dlse;
            for (int c = 0; c < d; ++c) dv_acc[size_t(j) * d + c] += p * dout_r[c];
            if (j == i) continue;
            for (int c = 0; c < d; ++c) {
              dq_acc[size_t(i) * d + c] += ds * keys[size_t(j) * d + c] * scale;
              dk_acc[size_t(j) * d + c] += ds * qi[c] * scale;
            }
          }
        }
      }
      for (int j = 0; j < T; ++j) {
        const float* qj = q.at(b, j, h, T, d);
        const double q_dot_dk = dot(&dk_acc[size_t(j) * d], qj, d);
        const double r = rho[j];
        float* dqj = dq.at(b, j, h, T, d);
        float* dvj = dv.at(b, j, h, T, d);
        for (int c = 0; c < d; ++c) {
          const size_t n = size_t(j) * d + c;
          dqj[c] += float(dq_acc[n] + r * dk_acc[n] - r * r * r * q_dot_dk * qj[c]);
          dvj[c] += float(dv_acc[n]);
        }
      }
    }
}

namespace {

// qv (B,T,2C) and the attention output before projection, att (B,T,C).
void lsh_core_forward(std::vector<float>& qv, std::vector<float>& att, const LshShape& s,
                      const std::vector<int>& buckets, const std::vector<const float*>& params,
                      const float* x) {
  const int N = s.B * s.T, C = s.H * s.head_size;
  qv.resize(size_t(N) * 2 * C);
  att.resize(size_t(N) * C);
  matmul_forward(qv.data(), x, params[0], params[1], N, C, 2 * C);
  lsh_attention_forward({att.data(), C}, {qv.data(), 2 * C}, {qv.data() + C, 2 * C}, buckets, s);
}

}  // namespace

void lsh_block_forward(const LshShape& s, const std::vector<int>& buckets,
                       const std::vector<const float*>& params, const float* x, float* out) {
  std::vector<float> qv, att;
  lsh_core_forward(qv, att, s, buckets, params, x);
  const int C = s.H * s.head_size;
  matmul_forward(out, att.data(), params[2], params[3], s.B * s.T, C, C);
}

void lsh_block_backward(const LshShape& s, const std::vector<int>& buckets,
                        const std::vector<const float*>& params, const float* x, const float* dout,
                        float* dx, const std::vector<float*>& dparams) {
  const int N = s.B * s.T, C = s.H * s.head_size;
  std::vector<float> qv, att;  // recomputed: the reference keeps no state between calls
  lsh_core_forward(qv, att, s, buckets, params, x);
  std::vector<float> datt(size_t(N) * C), dqv(size_t(N) * 2 * C, 0.f);
  matmul_backward(datt.data(), dparams[2], dparams[3], dout, att.data(), params[2], N, C, C);
  lsh_attention_backward({dqv.data(), 2 * C}, {dqv.data() + C, 2 * C}, {datt.data(), C},
                         {qv.data(), 2 * C}, {qv.data() + C, 2 * C}, buckets, s);
  matmul_backward(dx, dparams[0], dparams[1], dqv.data(), x, params[0], N, C, 2 * C);
}

}  // namespace attnscope::reference
