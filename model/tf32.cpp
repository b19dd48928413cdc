#include "model/tf32.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>

#include "host/runtime/error.hpp"
#include "host/runtime/kernel_sources.hpp"
#include "model/gemm_spec.hpp"

namespace attnscope {

float round_to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // inf, NaN: as they are
  // Sign and magnitude: adding half a unit of the last kept bit (bit 13) to the pattern
  // rounds the magnitude half-up, i.e. the value to nearest with ties away from zero; a
  // carry out of the mantissa increments the exponent (to inf past the largest binade).
  u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

void reference_tf32_gemm(float* c, const float* a, const float* b, const float* bias, int M, int N,
                         int K, bool trans_a, bool trans_b, float alpha, float beta) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double sum = 0;
      for (int k = 0; k < K; ++k) {
        const float av = trans_a ? a[size_t(k) * M + m] : a[size_t(m) * K + k];
        const float bv = trans_b ? b[size_t(n) * K + k] : b[size_t(k) * N + n];
        sum += double(round_to_tf32(av)) * double(round_to_tf32(bv));
      }
      double value = double(alpha) * sum;
      if (bias) value += bias[n];
      float& out = c[size_t(m) * N + n];
      if (beta != 0.f) value += double(beta) * out;
      out = float(value);
    }
}

// ---------------------------------------------------------------- launch

namespace {

const char* const kFile = "matmul_tf32.cl";

// gemm_tf32 built with `options`; ATTNSCOPE_TF32_VERBOSE=1 adds -cl-nv-verbose. A compiler
// that rejects -cl-nv-maxrregcount (it is NVIDIA's documented option, but only a hint for
// speed) gets the kernel without the cap (and so with its work-group size declared again),
// once noted on stderr.
cl::Kernel tf32_kernel(Runtime& rt, std::string options) {
  static std::atomic<bool> cap_rejected{false};
  const size_t cap = options.find(kRegisterCapOptions);
  const bool emulated = options.find("-DEMULATE_MMA=1") != std::string::npos;
  if (cap != std::string::npos && cap_rejected) options.erase(cap);
  const char* verbose = std::getenv("ATTNSCOPE_TF32_VERBOSE");
  const std::string suffix =
      !emulated && verbose && std::string(verbose) == "1" ? " -cl-nv-verbose" : "";
  try {
    return rt.shared_kernel(kFile, "gemm_tf32", options + suffix);
  } catch (const Error& e) {
    if (cap == std::string::npos || cap_rejected) throw;
    const std::string message = e.what();
    const std::string without = options.substr(0, cap);
    cl::Kernel kernel = rt.shared_kernel(kFile, "gemm_tf32", without + suffix);  // throws too
    cap_rejected = true;
    std::fprintf(stderr, "gemm_tf32: building with '%s' failed, built without it: %s\n",
                 options.substr(cap + 1).c_str(), message.substr(0, message.find('\n')).c_str());
    return kernel;
  }
}

}  // namespace

bool Tf32GemmConfig::valid() const {
  if (tile_k != 8 && tile_k != 16 && tile_k != 32 && tile_k != 64) return false;
  if (warps_m < 1 || warps_n < 1 || tile_m < 1 || tile_n < 1 || group_m < 1) return false;
  if (tile_m % warps_m || tile_n % warps_n) return false;
  // Warp tiles: pairs of 16-row mma tiles (the A stages interleave rows m, m + 8 and
  // address tiles in pairs), whole 16-column pairs of 8-column mma tiles.
  if (warp_tile_m() % 32 || warp_tile_n() % 16) return false;
  return work_group_size() <= 1024;
}

size_t Tf32GemmConfig::local_bytes(bool, bool) const {
  // Unpadded, swizzled stages (matmul_tf32.cl), two buffers each.
  return 2 * sizeof(float) * size_t(tile_k) * (size_t(tile_m) + size_t(tile_n));
}

int Tf32GemmConfig::registers_needed() const {
  const int wg = int(work_group_size());
  const int accumulators = warp_tile_m() * warp_tile_n() / 32;
  // One k-step's fragments; split adds their remainders, about half of them live at once.
  const int fragments =
      (split ? 3 : 2) * (4 * (warp_tile_m() / 16) + 2 * (warp_tile_n() / 8)) / 2;
  const int prefetch = (tile_k * (tile_m + tile_n) + wg - 1) / wg;           // floats in flight
  return accumulators + fragments + prefetch * 3 / 2 + 16;
}

int Tf32GemmConfig::register_cap() const {
  constexpr int kRegistersPerSm = 65536, kMaxPerThread = 255;
  const int wg = int(work_group_size());
  const int two_groups = kRegistersPerSm / (2 * wg) / 8 * 8;
  if (two_groups >= registers_needed()) return std::min(kMaxPerThread, two_groups);
  return std::min(kMaxPerThread, kRegistersPerSm / wg / 8 * 8);
}

std::string Tf32GemmConfig::build_options(bool trans_a, bool trans_b, bool emulate_mma,
                                          bool vector_io) const {
  std::string options =
      "-DTILE_M=" + std::to_string(tile_m) + " -DTILE_N=" + std::to_string(tile_n) +
      " -DTILE_K=" + std::to_string(tile_k) + " -DWARPS_M=" + std::to_string(warps_m) +
      " -DWARPS_N=" + std::to_string(warps_n) + " -DGROUP_M=" + std::to_string(group_m) +
      " -DTRANS_A=" + (trans_a ? "1" : "0") +
      " -DTRANS_B=" + (trans_b ? "1" : "0") + " -DVECTOR_IO=" + (vector_io ? "1" : "0");
  if (split) options += " -DSPLIT_TF32=1";
  if (emulate_mma) return options + " -DEMULATE_MMA=1";
  if (register_cap() < 255)
    options += register_cap_options(register_cap());
  return options;
}

std::string Tf32GemmConfig::label() const {
  return std::to_string(tile_m) + "x" + std::to_string(tile_n) + "x" + std::to_string(tile_k) +
         "/" + std::to_string(warps_m) + "x" + std::to_string(warps_n) + "w" +
         (group_m != 8 ? "/g" + std::to_string(group_m) : "") + (split ? "/3x" : "");
}

bool tf32_fits_device(const Tf32GemmConfig& c, const DeviceInfo& device) {
  return c.work_group_size() <= device.max_work_group_size &&
         c.local_bytes() <= device.local_mem_bytes;
}

std::vector<Tf32GemmConfig> tf32_tuning_space(const DeviceInfo& device, bool split) {
  std::vector<Tf32GemmConfig> space;
  for (int tile_m : {64, 128, 192, 256})
    for (int tile_n : {64, 128, 192, 256})
      for (int tile_k : {16, 32})
        for (int warp_m : {32, 64})
          for (int warp_n : {32, 64}) {
            Tf32GemmConfig c{tile_m, tile_n, tile_k, tile_m / warp_m, tile_n / warp_n};
            c.split = split;
            if (!c.valid() || !tf32_fits_device(c, device) ||
                c.registers_needed() > std::min<int>(255, 65536 / int(c.work_group_size())))
              continue;
            space.push_back(c);
          }
  return space;
}

std::vector<Tf32GemmConfig> tf32_recommended_configs(bool split) {
  // The staging loads come from L2: a tile of TILE_M × TILE_N reads (TILE_M + TILE_N)·4
  // bytes per k for 2·TILE_M·TILE_N flops, and the H200's tuning sweeps (2026-12-02) ran
  // the 64-row and 128 × 64 tiles at 4.5–5.6 TB/s of such reads, about L2's bandwidth: the
  // larger tiles come first. 128 × 192 and 192 × 128 give GPT-2's N = 768 products 256
  // tiles, two full waves of 132 SMs at one work-group each.
  std::vector<Tf32GemmConfig> configs = {
      {128, 192, 16, 2, 3},  // warps of 64 × 64, 6 per group
      {192, 128, 16, 3, 2},  // the same transposed
      {128, 128, 16, 2, 2},  // warps of 64 × 64: the classifier's forward on the H200
      {128, 128, 16, 2, 4},  // the default: warps of 64 × 32, two work-groups per SM
      {64, 256, 16, 1, 4},   // warps of 64 × 64 in one row
      {64, 128, 32, 1, 4},   // warps of 64 × 32, K-slabs of 32: products with N ≤ 768
      {128, 64, 32, 2, 2},   // the same transposed
      {64, 128, 16, 2, 2},   // warps of 32 × 64: better-filled last waves
      {64, 64, 32, 2, 1},    // split-K weight gradients
  };
  for (auto& c : configs) c.split = split;
  return configs;
}

void launch_gemm_tf32(Runtime& rt, const Tf32GemmConfig& config, const Ops::GemmSpec& spec,
                      const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& C,
                      const cl::Buffer* bias, bool emulate_mma, const std::string& profile_name) {
  const Ops::GemmSpec& s = spec;
  check_gemm_operands("gemm_tf32", s, A, B, C);
  if (s.M == 0 || s.N == 0) return;
  if (!config.valid())
    throw Error("gemm_tf32: invalid configuration " + config.label());
  cl::Kernel kernel = tf32_kernel(rt, config.build_options(s.trans_a, s.trans_b, emulate_mma,
                                                           gemm_rows_aligned(s)));
  set_args(kernel, s.M, s.N, s.K, s.alpha, s.beta, A, cl_ulong(s.offset_a), cl_ulong(s.stride_a),
           B, cl_ulong(s.offset_b), cl_ulong(s.stride_b), C, cl_ulong(s.offset_c),
           cl_ulong(s.stride_c), bias ? *bias : C, cl_int(bias ? 1 : 0));
  const size_t wg = config.work_group_size();
  const cl::NDRange global(size_t((s.N + config.tile_n - 1) / config.tile_n) * wg,
                           size_t((s.M + config.tile_m - 1) / config.tile_m), size_t(s.batch));
  const double mnk = double(s.M) * s.N * s.K * s.batch;
  const double elements =
      (double(s.M) * s.K + double(s.K) * s.N + double(s.M) * s.N * (s.beta != 0.f ? 2 : 1)) *
      s.batch;
  rt.launch(kernel, global, cl::NDRange(wg, 1, 1), KernelCost{2 * mnk, elements * sizeof(float)},
            profile_name);
}

// ---------------------------------------------------------------- probe

namespace {

constexpr int kProbeM = 16, kProbeN = 8, kProbeK = 8, kWarp = 32;

// cl_nv_device_attribute_query (values from cl_ext.h).
constexpr cl_device_info kComputeCapabilityMajorNv = 0x4000;
constexpr cl_device_info kComputeCapabilityMinorNv = 0x4001;

std::string describe_float(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g (0x%08x)", double(x), unsigned(u));
  return buf;
}

float identity(float x) { return x; }

float truncate_to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u &= 0xffffe000u;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

Tf32Probe unavailable(const std::string& reason) { return {false, reason}; }

}  // namespace

namespace {

// The probes' signs: a[m][k] has sign sign_m(m)·sign_k(k) and b[k][n] sign_k(k)·sign_n(n),
// so every product in c[m][n] has the sign sign_m(m)·sign_n(n) and the effects under test
// add up instead of cancelling.
double sign_k(int k) { return k % 2 ? -1.0 : 1.0; }
double sign_m(int m) { return m % 3 == 1 ? -1.0 : 1.0; }
double sign_n(int n) { return n % 4 == 2 ? -1.0 : 1.0; }

}  // namespace

Tf32ProbeData tf32_probe_data() {
  // Units in the last place of TF32 (10 mantissa bits) at the magnitude of v.
  auto ulp = [](double v) { return std::ldexp(1.0, std::ilogb(v) - 10); };
  Tf32ProbeData d;
  d.a.resize(kProbeM * kProbeK);
  d.b.resize(kProbeK * kProbeN);
  for (int m = 0; m < kProbeM; ++m)
    for (int k = 0; k < kProbeK; ++k) {
      // Rounded: α ∈ {1.125, …, 1.875} (3 significant bits after the point), or α + ulp.
      const double alpha = 1.0 + (1 + (m + 2 * k) % 7) / 8.0;
      // One tie per row (ties away from zero: α + ulp; ties to even would give α; truncation
      // α), the others 3/4 of an ulp above α − ulp (rounded: α; truncated: α − ulp).
      const double magnitude = k == m % 8 ? alpha + ulp(alpha) / 2 : alpha - ulp(alpha) / 4;
      d.a[m * kProbeK + k] = float(sign_m(m) * sign_k(k) * magnitude);
    }
  for (int k = 0; k < kProbeK; ++k)
    for (int n = 0; n < kProbeN; ++n) {
      // Rounded: β ∈ {1.125, …, 1.875}, halved in odd columns; stored 1/4 ulp below.
      const double beta = (1.0 + (1 + (3 * k + n) % 7) / 8.0) * (n % 2 ? 0.5 : 1.0);
      d.b[k * kProbeN + n] = float(sign_k(k) * sign_n(n) * (beta - ulp(beta) / 4));
    }
  return d;
}

std::vector<float> tf32_probe_product(const Tf32ProbeData& data, float (*operand)(float)) {
  std::vector<float> c(kProbeM * kProbeN);
  for (int m = 0; m < kProbeM; ++m)
    for (int n = 0; n < kProbeN; ++n) {
      double sum = 0;
      for (int k = 0; k < kProbeK; ++k)
        sum += double(operand(data.a[m * kProbeK + k])) * double(operand(data.b[k * kProbeN + n]));
      c[m * kProbeN + n] = float(sum);
    }
  return c;
}

void split_tf32(float x, float* hi, float* lo) {
  *hi = round_to_tf32(x);
  *lo = round_to_tf32(x - *hi);
}

Tf32ProbeData tf32x3_probe_data() {
  Tf32ProbeData d;
  d.a.resize(kProbeM * kProbeK);
  d.b.resize(kProbeK * kProbeN);
  for (int m = 0; m < kProbeM; ++m)
    for (int k = 0; k < kProbeK; ++k)
      d.a[m * kProbeK + k] =
          float(sign_m(m) * sign_k(k) * (1 + (m + 2 * k) % 4) * (1 + std::ldexp(1.0, -14)));
  for (int k = 0; k < kProbeK; ++k)
    for (int n = 0; n < kProbeN; ++n)
      d.b[k * kProbeN + n] =
          float(sign_k(k) * sign_n(n) * (1 + (3 * k + n) % 4) * (1 + std::ldexp(1.0, -13)));
  return d;
}

std::vector<float> tf32x3_probe_product(const Tf32ProbeData& data) {
  std::vector<float> c(kProbeM * kProbeN);
  for (int m = 0; m < kProbeM; ++m)
    for (int n = 0; n < kProbeN; ++n) {
      double sum = 0;
      for (int k = 0; k < kProbeK; ++k) {
        float a_hi, a_lo, b_hi, b_lo;
        split_tf32(data.a[m * kProbeK + k], &a_hi, &a_lo);
        split_tf32(data.b[k * kProbeN + n], &b_hi, &b_lo);
        sum += double(a_hi) * b_hi + double(a_hi) * b_lo + double(a_lo) * b_hi;
      }
      c[m * kProbeN + n] = float(sum);
    }
  return c;
}

std::vector<float> tf32_probe_exchange(const std::vector<float>& c) {
  std::vector<float> exchanged(2 * kWarp);
  for (int i = 0; i < 2; ++i)
    for (int lane = 0; lane < kWarp; ++lane) {
      const int from = lane ^ (i + 1), g = from >> 2, t = from & 3;  // its c0: C[g][2t]
      exchanged[i * kWarp + lane] = c[g * kProbeN + 2 * t];
    }
  return exchanged;
}

Tf32Probe probe_tf32(Runtime& rt, bool split) {
  const DeviceInfo& d = rt.device();
  const std::string path = split ? "3xtf32" : "tf32";
  const std::string need = path + " needs an NVIDIA GPU with compute capability ≥ 8.0; ";
  const std::string options = split ? "-DSPLIT_TF32=1" : "";
  std::string extensions;
  try {
    extensions = d.device.getInfo<CL_DEVICE_EXTENSIONS>();
  } catch (const std::exception&) {
  }
  // The vendor check comes before anything touches matmul_tf32.cl: its inline PTX is
  // NVIDIA's, and other compilers (PoCL's) must never see it.
  if (!d.is_gpu) {
    return unavailable(need + d.name + " is " + (d.is_cpu ? "a CPU" : "not a GPU") + " (" +
                       d.platform_name + ")");
  }
  if (!d.is_nvidia())
    return unavailable(need + d.name + " is a " + d.vendor + " GPU (" + d.platform_name + ")");
  if (extensions.find("cl_nv_device_attribute_query") == std::string::npos)
    return unavailable(need + d.name +
                       " does not report its compute capability (no cl_nv_device_attribute_query)");
  cl_uint major = 0, minor = 0;
  if (clGetDeviceInfo(d.device(), kComputeCapabilityMajorNv, sizeof major, &major, nullptr) !=
          CL_SUCCESS ||
      clGetDeviceInfo(d.device(), kComputeCapabilityMinorNv, sizeof minor, &minor, nullptr) !=
          CL_SUCCESS)
    return unavailable(need + "reading the compute capability of " + d.name + " failed");
  if (major < 8)
    return unavailable(need + d.name + " has compute capability " + std::to_string(major) + "." +
                       std::to_string(minor));

  try {
    rt.program(kFile, options);
  } catch (const std::exception& e) {
    return unavailable("building matmul_tf32.cl failed on " + d.name + ": " +
                       first_log_line(e.what()));
  }

  const Tf32ProbeData data = split ? tf32x3_probe_data() : tf32_probe_data();
  const std::vector<float> want =
      split ? tf32x3_probe_product(data) : tf32_probe_product(data, round_to_tf32);
  std::vector<float> got, got_exchanged;
  try {
    DeviceBuffer a = rt.alloc_floats(data.a.size(), "tf32 probe A");
    DeviceBuffer b = rt.alloc_floats(data.b.size(), "tf32 probe B");
    DeviceBuffer c = rt.alloc_floats(want.size(), "tf32 probe C");
    DeviceBuffer exchanged = rt.alloc_floats(2 * kWarp, "tf32 probe exchange");
    rt.upload(a, data.a.data(), data.a.size() * sizeof(float));
    rt.upload(b, data.b.data(), data.b.size() * sizeof(float));
    rt.fill(c, std::numeric_limits<float>::quiet_NaN(), want.size());
    rt.fill(exchanged, std::numeric_limits<float>::quiet_NaN(), 2 * kWarp);
    cl::Kernel kernel = rt.kernel(kFile, "tf32_probe", options);
    set_args(kernel, a.buffer(), b.buffer(), c.buffer(), exchanged.buffer());
    // Enqueued directly: the probe is no part of a run's kernel profile.
    rt.queue().enqueueNDRangeKernel(kernel, cl::NullRange, cl::NDRange(kWarp), cl::NDRange(kWarp));
    got = rt.download_vector<float>(c, want.size());
    got_exchanged = rt.download_vector<float>(exchanged, 2 * kWarp);
  } catch (const cl::Error& e) {
    return unavailable("running tf32_probe on " + d.name + " failed: " + e.what() + " (" +
                       cl_status_name(e.err()) + ")");
  } catch (const std::exception& e) {
    return unavailable("running tf32_probe on " + d.name + " failed: " + e.what());
  }
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) == 0) continue;
    std::string hint;
    if (split && bitwise_equal(got, tf32_probe_product(data, round_to_tf32)))
      hint = "; that is one mma on rounded operands: the split was not applied";
    else if (!split && bitwise_equal(got, tf32_probe_product(data, identity)))
      hint = "; the device multiplied the fp32 operands unrounded";
    else if (!split && bitwise_equal(got, tf32_probe_product(data, truncate_to_tf32)))
      hint = "; the device truncated the operands to TF32 instead of rounding them";
    return unavailable("tf32_probe on " + d.name + ": C[" + std::to_string(i / kProbeN) + "][" +
                       std::to_string(i % kProbeN) + "] = " + describe_float(got[i]) +
                       " but the host emulation gives " + describe_float(want[i]) + hint);
  }
  const std::vector<float> want_exchanged = tf32_probe_exchange(want);
  for (size_t i = 0; i < want_exchanged.size(); ++i)
    if (std::memcmp(&got_exchanged[i], &want_exchanged[i], sizeof(float)) != 0)
      return unavailable("tf32_probe on " + d.name + ": shfl.sync.bfly with mask " +
                         std::to_string(i / kWarp + 1) + " gave lane " +
                         std::to_string(i % kWarp) + " " + describe_float(got_exchanged[i]) +
                         " instead of " + describe_float(want_exchanged[i]));
  return {true, ""};
}

}  // namespace attnscope
