// Host side of LSH hashing: the step's rotations (drawn here, uploaded by the variant),
// bucket ids computed exactly as the device computes them, the default bucket count, and
// the brute-force allowed-key enumeration that the reference and the tests use.
#include <cmath>
#include <limits>

#include "model/attention/lsh.hpp"

namespace attnscope::lsh {

namespace {

uint64_t mix64(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_ += 0x9E3779B97F4A7C15ull); }
  // Uniform in (0, 1]: 53 random bits, never 0 (Box-Muller takes its log).
  double uniform_open0() { return double((next() >> 11) + 1) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace

std::vector<float> rotations(uint64_t seed, int64_t step, int rounds, int head_size, int buckets) {
  SplitMix64 rng(mix64(seed) ^ mix64(uint64_t(step) + 0x632BE59BD9B4E019ull));
  const size_t n = size_t(rounds) * head_size * (buckets / 2);
  std::vector<float> values(n);
  const double two_pi = 6.283185307179586476925286766559;
  for (size_t i = 0; i < n; i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(rng.uniform_open0()));
    const double angle = two_pi * rng.uniform_open0();
    values[i] = float(radius * std::cos(angle));
    if (i + 1 < n) values[i + 1] = float(radius * std::sin(angle));
  }
  return values;
}

int bucket_of(const float* q, const float* rotation, int head_size, int buckets) {
  const int half = buckets / 2;
  float max_p = -std::numeric_limits<float>::infinity(), min_p = -max_p;
  int arg_max = 0, arg_min = 0;
  for (int m = 0; m < half; ++m) {
    float p = 0.f;
    for (int k = 0; k < head_size; ++k) {
      // volatile: the product is rounded to float on its own, as under lsh.cl's
      // FP_CONTRACT OFF, whatever contraction the host compiler would allow.
      volatile float product = q[k] * rotation[size_t(k) * half + m];
      p += product;
    }
    if (p > max_p) max_p = p, arg_max = m;
    if (p < min_p) min_p = p, arg_min = m;
  }
  return max_p >= -min_p ? arg_max : half + arg_min;
}

std::vector<int> hash_positions(const float* qv, const LshShape& s,
                                const std::vector<float>& rotations) {
  const int C = s.H * s.head_size, d = s.head_size, half = s.buckets / 2;
  std::vector<int> ids(size_t(s.B) * s.H * s.rounds * s.T);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h)
      for (int r = 0; r < s.rounds; ++r)
        for (int t = 0; t < s.T; ++t) {
          const float* q = qv + (size_t(b) * s.T + t) * 2 * C + size_t(h) * d;
          const float* rotation = rotations.data() + size_t(r) * d * half;
          ids[((size_t(b) * s.H + h) * s.rounds + r) * s.T + t] =
              bucket_of(q, rotation, d, s.buckets);
        }
  return ids;
}

std::vector<int> allowed_keys(const int* bucket_row, int i, int chunk) {
  std::vector<int> keys;
  for (int j = i - 1; j >= 0 && int(keys.size()) < 2 * chunk; --j)
    if (bucket_row[j] == bucket_row[i]) keys.insert(keys.begin(), j);
  keys.push_back(i);
  return keys;
}

int default_buckets(int T) {
  const int n = T / 64;
  return n <= 2 ? 2 : n + n % 2;
}

}  // namespace attnscope::lsh
