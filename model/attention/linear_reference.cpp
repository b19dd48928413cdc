// CPU reference of causal linear attention (VARIANTS.md §linear), double accumulation:
// the definition's recurrence position by position, no chunks.
//
// Backward. With num_i = φ(Q_i) S_i, den_i = φ(Q_i)·z_i + ε, O_i = num_i / den_i, the
// gradients of num and den are g_i = dO_i / den_i and h_i = −(dO_i·O_i) / den_i; then
//   dφ(Q_i) = S_i g_i + z_i h_i                                   (forward sweep over i)
//   dφ(K_j) = U_j V_j + u_j,  dV_j = φ(K_j) U_j                    (reverse sweep over j)
// with U_j = Σ_{i≥j} φ(Q_i)ᵀ g_i (d×d) and u_j = Σ_{i≥j} φ(Q_i) h_i, and finally
// dQ = dφ(Q)·φ'(Q), dK = dφ(K)·φ'(K), φ'(u) = 1 for u > 0, else eᵘ.
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/attention/linear.hpp"

namespace attnscope::reference {

namespace {

constexpr double kEps = 1e-6;

double phi(float u) { return u > 0 ? double(u) + 1.0 : std::exp(double(u)); }
double phi_grad(float u) { return u > 0 ? 1.0 : std::exp(double(u)); }

std::vector<double> phi_row(const float* u, int d) {
  std::vector<double> out(d);
  for (int a = 0; a < d; ++a) out[a] = phi(u[a]);
  return out;
}

// S += φkᵀ v, z += φk.
void add_to_state(std::vector<double>& S, std::vector<double>& z, const std::vector<double>& phik,
                  const float* v, int d) {
  for (int a = 0; a < d; ++a) {
    z[a] += phik[a];
    for (int c = 0; c < d; ++c) S[size_t(a) * d + c] += phik[a] * v[c];
  }
}

// o = φq S / (φq·z + ε); returns the denominator.
double read_state(std::vector<double>& o, const std::vector<double>& S,
                  const std::vector<double>& z, const std::vector<double>& phiq, int d) {
  double den = kEps;
  std::fill(o.begin(), o.end(), 0.0);
  for (int a = 0; a < d; ++a) {
    den += phiq[a] * z[a];
    for (int c = 0; c < d; ++c) o[c] += phiq[a] * S[size_t(a) * d + c];
  }
  for (double& x : o) x /= den;
  return den;
}

}  // namespace

void linear_attention_forward(const Heads& out, const ConstHeads& q, const ConstHeads& k,
                              const ConstHeads& v, const LinearShape& s) {
  const int d = s.head_size, T = s.T;
  std::vector<double> S(size_t(d) * d), z(d), o(d);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      std::fill(S.begin(), S.end(), 0.0);
      std::fill(z.begin(), z.end(), 0.0);
      for (int i = 0; i < T; ++i) {
        add_to_state(S, z, phi_row(k.at(b, i, h, T, d), d), v.at(b, i, h, T, d), d);
        read_state(o, S, z, phi_row(q.at(b, i, h, T, d), d), d);
        float* oi = out.at(b, i, h, T, d);
        for (int c = 0; c < d; ++c) oi[c] = float(o[c]);
      }
    }
}

void linear_attention_backward(const Heads& dq, const Heads& dk, const Heads& dv,
                               const ConstHeads& dout, const ConstHeads& q, const ConstHeads& k,
                               const ConstHeads& v, const LinearShape& s) {
  const int d = s.head_size, T = s.T;
  std::vector<double> S(size_t(d) * d), z(d), o(d);
  std::vector<double> g(size_t(T) * d), hgrad(T);  // gradients of num_i and den_i
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      // Forward sweep: O_i, g_i, h_i and dQ_i = (S_i g_i + z_i h_i)·φ'(Q_i).
      std::fill(S.begin(), S.end(), 0.0);
      std::fill(z.begin(), z.end(), 0.0);
      for (int i = 0; i < T; ++i) {
        add_to_state(S, z, phi_row(k.at(b, i, h, T, d), d), v.at(b, i, h, T, d), d);
        const float* qi = q.at(b, i, h, T, d);
        const double den = read_state(o, S, z, phi_row(qi, d), d);
        const float* doi = dout.at(b, i, h, T, d);
        double do_dot_o = 0;
        for (int c = 0; c < d; ++c) {
          g[size_t(i) * d + c] = doi[c] / den;
          do_dot_o += doi[c] * o[c];
        }
        hgrad[i] = -do_dot_o / den;
        float* dqi = dq.at(b, i, h, T, d);
        for (int a = 0; a < d; ++a) {
          double acc = z[a] * hgrad[i];
          for (int c = 0; c < d; ++c) acc += S[size_t(a) * d + c] * g[size_t(i) * d + c];
          dqi[a] += float(acc * phi_grad(qi[a]));
        }
      }
      // Reverse sweep: U, u accumulate the queries at or after j.
      std::vector<double>& U = S;
      std::vector<double>& u = z;
      std::fill(U.begin(), U.end(), 0.0);
      std::fill(u.begin(), u.end(), 0.0);
      for (int j = T - 1; j >= 0; --j) {
        const std::vector<double> phiq = phi_row(q.at(b, j, h, T, d), d);
        for (int a = 0; a < d; ++a) {
          u[a] += phiq[a] * hgrad[j];
          for (int c = 0; c < d; ++c) U[size_t(a) * d + c] += phiq[a] * g[size_t(j) * d + c];
        }
        const float* kj = k.at(b, j, h, T, d);
        const float* vj = v.at(b, j, h, T, d);
        const std::vector<double> phik = phi_row(kj, d);
        float* dkj = dk.at(b, j, h, T, d);
        float* dvj = dv.at(b, j, h, T, d);
        for (int a = 0; a < d; ++a) {
          double acc = u[a];
          for (int c = 0; c < d; ++c) acc += U[size_t(a) * d + c] * vj[c];
          dkj[a] += float(acc * phi_grad(kj[a]));
        }
        for (int c = 0; c < d; ++c) {
          double acc = 0;
          for (int a = 0; a < d; ++a) acc += phik[a] * U[size_t(a) * d + c];
          dvj[c] += float(acc);
        }
      }
    }
}

}  // namespace attnscope::reference
