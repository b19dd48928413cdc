#include "model/gemm.hpp"

#include <algorithm>
#include <cmath>

#include "host/runtime/error.hpp"
#include "model/gemm_spec.hpp"
#include "model/gemm_tuning.hpp"
#include "model/tf32.hpp"

namespace attnscope {

size_t GemmConfig::local_bytes() const {
  constexpr int kPad = 4;  // matmul.cl's PAD
  return 2 * sizeof(float) * tile_k * (tile_m + tile_n + 2 * kPad);
}

bool GemmConfig::valid() const {
  if (tile_m <= 0 || tile_n <= 0 || tile_k <= 0 || wpt_m <= 0 || wpt_n <= 0) return false;
  if (wpt_m % 4 || wpt_n % 4 || tile_k % 4 || tile_m % wpt_m || tile_n % wpt_n) return false;
  // Rows of a micro-tile block are 4 consecutive rows of the tile: the tile must be a whole
  // number of blocks per work-item row.
  const int rts_m = tile_m / wpt_m, rts_n = tile_n / wpt_n;
  return tile_m == (wpt_m / 4) * 4 * rts_m && tile_n == (wpt_n / 4) * 4 * rts_n;
}

std::string GemmConfig::build_options(bool trans_a, bool trans_b, bool vector_io) const {
  return "-DTILE_M=" + std::to_string(tile_m) + " -DTILE_N=" + std::to_string(tile_n) +
         " -DTILE_K=" + std::to_string(tile_k) + " -DWPT_M=" + std::to_string(wpt_m) +
         " -DWPT_N=" + std::to_string(wpt_n) + " -DTRANS_A=" + (trans_a ? "1" : "0") +
         " -DTRANS_B=" + (trans_b ? "1" : "0") + " -DVECTOR_IO=" + (vector_io ? "1" : "0");
}

std::string GemmConfig::label() const {
  return std::to_string(tile_m) + "x" + std::to_string(tile_n) + "x" + std::to_string(tile_k) +
         "/" + std::to_string(wpt_m) + "x" + std::to_string(wpt_n);
}

const std::vector<GemmConfig>& gemm_configs() {
  // 128×128 with 8×8 per work-item (256 work-items, 64 accumulators, 4 float4 local loads
  // per 64 multiply-adds) for large products, K-slabs of 16 (34 KiB of local memory: on
  // the H200, 16 beat 8 by 5–10% at every GPT-2 shape); 128×64 and 64×64 (256 work-items) where
  // 128×128 tiles would leave compute units idle in the last wave; 32×32/4×4 (64
  // work-items) suits CPUs, whose work-items are loop iterations; 16×16/4×4 needs 16
  // work-items and 2.5 KiB, for devices that allow nothing bigger.
  static const std::vector<GemmConfig> configs = {
      {128, 128, 16, 8, 8}, {128, 64, 16, 8, 4}, {64, 64, 16, 4, 4},
      {32, 32, 8, 4, 4},   {16, 16, 8, 4, 4},
  };
  return configs;
}

bool gemm_fits_device(const GemmConfig& c, const DeviceInfo& device) {
  return c.work_group_size() <= device.max_work_group_size &&
         c.local_bytes() <= device.local_mem_bytes;
}

std::vector<GemmConfig> gemm_tuning_space(const DeviceInfo& device) {
  std::vector<GemmConfig> space;
  for (int tile_m : {32, 64, 128, 256})
    for (int tile_n : {32, 64, 128, 256})
      for (int tile_k : {4, 8, 16, 32})
        for (int wpt_m : {4, 8, 16})
          for (int wpt_n : {4, 8, 16}) {
            GemmConfig c{tile_m, tile_n, tile_k, wpt_m, wpt_n};
            // Beyond 128 accumulators a work-item spills on every GPU we know; fewer than
            // 64 work-items leave a GPU's SIMD lanes idle.
            if (!c.valid() || wpt_m * wpt_n > 128 || c.work_group_size() < 64 ||
                !gemm_fits_device(c, device))
              continue;
            space.push_back(c);
          }
  return space;
}

namespace {

size_t tiles_of(const GemmConfig& c, int M, int N, int batch) {
  return size_t((M + c.tile_m - 1) / c.tile_m) * ((N + c.tile_n - 1) / c.tile_n) * batch;
}


char size_class(int n) { return n < 1024 ? 's' : n < 4096 ? 'm' : 'l'; }

// The share of a device's work-group slots that the last wave keeps busy, over all waves:
// 1 when the tiles fill whole waves. Two work-groups of 256 per compute unit.
double wave_efficiency(size_t tiles, const DeviceInfo& device) {
  const size_t slots = 2 * size_t(std::max(1u, device.compute_units));
  const size_t waves = (tiles + slots - 1) / slots;
  return double(tiles) / double(waves * slots);
}

// K-slices for a dweight-shaped product whose `tiles` give less than one wave: enough
// slices for ~4 waves, at most 16, each at least 512 deep so the partial sums' traffic
// stays small. 1: no split.
int default_k_splits(const DeviceInfo& device, const Ops::GemmSpec& spec, bool has_bias,
                     size_t tiles) {
  const size_t wanted = 2 * size_t(device.compute_units);
  if (!device.is_gpu || !gemm_splittable(spec, has_bias) || tiles >= wanted) return 1;
  return int(std::max<size_t>(1, std::min<size_t>({16, (4 * wanted + tiles - 1) / tiles, size_t(spec.K) / 512})));
}

// Without a tuned entry: on GPUs, the built-in 256-work-item configuration with the best
// expected time, counting each tile's relative speed (bigger tiles reuse each load more:
// measured on an H100, 128×64 runs at ~0.85 and 64×64 at ~0.7 of 128×128) and the padded
// area and last-wave idling it costs; split-K for dweights whose tiles are too few.
GemmPlan default_gpu_plan(const DeviceInfo& device, const Ops::GemmSpec& spec, bool has_bias) {
  struct Candidate {
    GemmConfig config;
    double speed;
  };
  const Candidate candidates[] = {{gemm_configs()[0], 1.0}, {gemm_configs()[1], 0.85},
                                  {gemm_configs()[2], 0.7}};
  const Candidate* best = nullptr;
  double best_time = 0;
  for (const auto& c : candidates) {
    if (!gemm_fits_device(c.config, device)) continue;
    const size_t tiles = tiles_of(c.config, spec.M, spec.N, spec.batch);
    const double area = double(tiles) * c.config.tile_m * c.config.tile_n;
    const double time = area / (c.speed * wave_efficiency(tiles, device));
    if (!best || time < best_time) best = &c, best_time = time;
  }
  if (!best) {  // a device too small for 256 work-items: the largest built-in that fits
    for (const auto& c : gemm_configs())
      if (gemm_fits_device(c, device)) return {c, 1};
    return {gemm_configs().back(), 1};
  }
  GemmPlan plan{best->config, 1};
  plan.k_splits = default_k_splits(device, spec, has_bias, tiles_of(plan.config, spec.M, spec.N, spec.batch));
  return plan;
}

}  // namespace

const char* const kGemmKernelFile = "matmul.cl";
const char* const kTf32KernelFile = "matmul_tf32.cl";

std::string gemm_build_options(const GemmConfig& config, const Ops::GemmSpec& spec) {
  return config.build_options(spec.trans_a, spec.trans_b, gemm_rows_aligned(spec));
}

bool gemm_splittable(const Ops::GemmSpec& spec, bool has_bias) {
  return spec.trans_a && !spec.trans_b && spec.batch == 1 && !has_bias;
}

std::string gemm_layout(const Ops::GemmSpec& spec) {
  return std::string(1, spec.trans_a ? 't' : 'n') + (spec.trans_b ? 't' : 'n');
}

std::string gemm_shape_class(const Ops::GemmSpec& spec) {
  return gemm_layout(spec) + (spec.batch > 1 ? ":b:" : ":") + size_class(spec.M) + "-" +
         size_class(spec.N) + "-" + size_class(spec.K);
}

std::string gemm_profile_name(const Ops::GemmSpec& spec) {
  std::string name = "gemm_" + gemm_layout(spec) + "_" + std::to_string(spec.M) + "x" +
                     std::to_string(spec.N) + "x" + std::to_string(spec.K);
  if (spec.batch > 1) name += "_b" + std::to_string(spec.batch);
  return name;
}

GemmPlan plan_gemm(const DeviceInfo& device, const Ops::GemmSpec& spec, bool has_bias,
                   const GemmTuningTable& table) {
  const GemmTuningEntry* tuned = table.find(device.tuning_key(), "fp32", gemm_shape_class(spec));
  if (tuned && gemm_fits_device(tuned->config, device)) {
    const int splits = gemm_splittable(spec, has_bias) ? tuned->k_splits : 1;
    return {tuned->config, splits, "tuned"};
  }
  if (device.is_gpu) return default_gpu_plan(device, spec, has_bias);
  for (const auto& c : gemm_configs())
    if (c.tile_m == 32 && gemm_fits_device(c, device)) return {c, 1};
  return {gemm_configs().back(), 1};
}

namespace {

void launch_tiles(Runtime& rt, const GemmConfig& config, const Ops::GemmSpec& spec,
                  const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& C,
                  const cl::Buffer* bias, const std::string& profile_name) {
  check_gemm_operands("gemm", spec, A, B, C);
  if (spec.M == 0 || spec.N == 0) return;
  if (!config.valid() || !gemm_fits_device(config, rt.device()))
    throw Error("gemm configuration " + config.label() + " does not fit " +
                rt.device().short_label());
  cl::Kernel kernel = rt.shared_kernel(kGemmKernelFile, "gemm", gemm_build_options(config, spec));
  set_args(kernel, spec.M, spec.N, spec.K, spec.alpha, spec.beta, A, cl_ulong(spec.offset_a),
           cl_ulong(spec.stride_a), B, cl_ulong(spec.offset_b), cl_ulong(spec.stride_b), C,
           cl_ulong(spec.offset_c), cl_ulong(spec.stride_c), bias ? *bias : C,
           cl_int(bias ? 1 : 0));
  const size_t rts_m = config.tile_m / config.wpt_m, rts_n = config.tile_n / config.wpt_n;
  cl::NDRange global(size_t((spec.N + config.tile_n - 1) / config.tile_n) * rts_n,
                     size_t((spec.M + config.tile_m - 1) / config.tile_m) * rts_m,
                     size_t(spec.batch));
  double mnk = double(spec.M) * spec.N * spec.K * spec.batch;
  double elements = (double(spec.M) * spec.K + double(spec.K) * spec.N +
                     double(spec.M) * spec.N * (spec.beta != 0.f ? 2 : 1)) *
                    spec.batch;
  rt.launch(kernel, global, cl::NDRange(rts_n, rts_m, 1),
            KernelCost{2 * mnk, elements * sizeof(float)}, profile_name);
}

// Launches the tiles of one product (no split) into C.
using TileLauncher = std::function<void(const Ops::GemmSpec& spec, const cl::Buffer& C)>;

// C = alpha · Σ_s op(A_s)·B_s + beta · C over `k_splits` K-slices of whole slabs of tile_k
// (the last one shorter): full slices as one batched launch, the last one alone, then the
// ordered sum. `tiles` launches a slice product (fp32 or tf32 kernel).
void launch_split(Runtime& rt, int k_splits, int tile_k, const Ops::GemmSpec& spec,
                  const cl::Buffer& C, const GemmScratch& scratch, const TileLauncher& tiles) {
  if (spec.M == 0 || spec.N == 0) return;
  const int slice_k = int(round_up((spec.K + k_splits - 1) / k_splits, tile_k));
  const int splits = (spec.K + slice_k - 1) / slice_k;
  const size_t mn = size_t(spec.M) * spec.N;
  const cl::Buffer& partials = scratch(size_t(splits) * mn * sizeof(float));

  Ops::GemmSpec part = spec;  // slice s: rows [s·slice_k, ...) of A (K×M) and B (K×N)
  part.alpha = 1.f, part.beta = 0.f, part.K = slice_k, part.batch = splits - 1;
  part.stride_a = size_t(slice_k) * spec.M, part.stride_b = size_t(slice_k) * spec.N;
  part.offset_c = 0, part.stride_c = mn;
  if (part.batch > 0) tiles(part, partials);
  const int full = splits - 1;
  part.batch = 1, part.K = spec.K - full * slice_k;
  part.offset_a = spec.offset_a + full * part.stride_a;
  part.offset_b = spec.offset_b + full * part.stride_b;
  part.offset_c = full * mn;
  tiles(part, partials);

  cl::Kernel reduce = rt.shared_kernel(kGemmKernelFile, "gemm_split_reduce");
  set_args(reduce, C, cl_ulong(spec.offset_c), partials, splits, cl_ulong(mn), spec.alpha,
           spec.beta);
  const size_t local = std::min<size_t>(256, rt.device().max_work_group_size);
  rt.launch(reduce, cl::NDRange(round_up(mn, local)), cl::NDRange(local),
            KernelCost{0, double(mn) * (splits + (spec.beta != 0.f ? 2 : 1)) * sizeof(float)});
}

}  // namespace

void launch_gemm(Runtime& rt, const GemmPlan& plan, const Ops::GemmSpec& spec, const cl::Buffer& A,
                 const cl::Buffer& B, const cl::Buffer& C, const cl::Buffer* bias,
                 const GemmScratch& scratch) {
  if (plan.k_splits <= 1)
    return launch_tiles(rt, plan.config, spec, A, B, C, bias, gemm_profile_name(spec));
  if (!gemm_splittable(spec, bias != nullptr))
    throw Error("gemm: split-K needs trans_a, no trans_b, one slice and no bias");
  check_gemm_operands("gemm", spec, A, B, C);
  const std::string name = gemm_profile_name(spec) + "_split" + std::to_string(plan.k_splits);
  launch_split(rt, plan.k_splits, plan.config.tile_k, spec, C, scratch,
               [&](const Ops::GemmSpec& part, const cl::Buffer& out) {
                 launch_tiles(rt, plan.config, part, A, B, out, nullptr, name);
               });
}

Tf32Plan plan_gemm_tf32(const DeviceInfo& device, const Ops::GemmSpec& spec, bool has_bias,
                        Precision precision, const GemmTuningTable& table) {
  const GemmTuningEntry* tuned =
      table.find(device.tuning_key(), precision_name(precision), gemm_shape_class(spec));
  if (tuned && tuned->tf32.work_group_size() <= device.max_work_group_size &&
      tuned->tf32.local_bytes(spec.trans_a, spec.trans_b) <= device.local_mem_bytes)
    return {tuned->tf32, gemm_splittable(spec, has_bias) ? tuned->k_splits : 1, "tuned"};
  Tf32Plan plan;
  plan.config.split = precision == Precision::tf32x3;
  const size_t tiles = size_t((spec.M + plan.config.tile_m - 1) / plan.config.tile_m) *
                       ((spec.N + plan.config.tile_n - 1) / plan.config.tile_n) * spec.batch;
  plan.k_splits = default_k_splits(device, spec, has_bias, tiles);
  return plan;
}

void launch_gemm_tf32_plan(Runtime& rt, const Tf32Plan& plan, const Ops::GemmSpec& spec,
                           const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& C,
                           const cl::Buffer* bias, const GemmScratch& scratch) {
  const std::string name = "gemm_tf32" + gemm_profile_name(spec).substr(4);  // gemm_tf32_nt_...
  if (plan.k_splits <= 1) return launch_gemm_tf32(rt, plan.config, spec, A, B, C, bias, false, name);
  if (!gemm_splittable(spec, bias != nullptr))
    throw Error("gemm: split-K needs trans_a, no trans_b, one slice and no bias");
  check_gemm_operands("gemm", spec, A, B, C);
  launch_split(rt, plan.k_splits, plan.config.tile_k, spec, C, scratch,
               [&](const Ops::GemmSpec& part, const cl::Buffer& out) {
                 launch_gemm_tf32(rt, plan.config, part, A, B, out, nullptr, false,
                                  name + "_split" + std::to_string(plan.k_splits));
               });
}

void run_gemm(Runtime& rt, const Ops::GemmSpec& spec, const cl::Buffer& A, const cl::Buffer& B,
              const cl::Buffer& C, const cl::Buffer* bias, const GemmScratch& scratch,
              Precision precision) {
  if (on_tensor_cores(precision))
    return launch_gemm_tf32_plan(rt, plan_gemm_tf32(rt.device(), spec, bias != nullptr, precision),
                                 spec, A, B, C, bias, scratch);
  GemmPlan plan = plan_gemm(rt.device(), spec, bias != nullptr);
  // A compiler may allow fewer work-items than the device maximum (register pressure):
  // fall back to the largest built-in configuration that the compiled kernel accepts.
  const auto accepts = [&](const GemmConfig& c) {
    if (!gemm_fits_device(c, rt.device())) return false;
    cl::Kernel kernel = rt.shared_kernel(kGemmKernelFile, "gemm", gemm_build_options(c, spec));
    return c.work_group_size() <= kernel.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(rt.device().device);
  };
  if (accepts(plan.config)) return launch_gemm(rt, plan, spec, A, B, C, bias, scratch);
  for (const auto& c : gemm_configs())
    if (c.work_group_size() < plan.config.work_group_size() && accepts(c)) {
      plan.config = c;
      return launch_gemm(rt, plan, spec, A, B, C, bias, scratch);
    }
  throw Error("gemm: no tile configuration fits " + rt.device().short_label());
}

}  // namespace attnscope
