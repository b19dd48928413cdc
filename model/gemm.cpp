#include "model/gemm.hpp"

#include <algorithm>
#include <climits>

#include "host/runtime/error.hpp"

namespace attnscope {

std::string GemmConfig::build_options(bool trans_a, bool trans_b) const {
  return "-DTILE_M=" + std::to_string(tile_m) + " -DTILE_N=" + std::to_string(tile_n) +
         " -DTILE_K=" + std::to_string(tile_k) + " -DWPT_M=" + std::to_string(wpt_m) +
         " -DWPT_N=" + std::to_string(wpt_n) + " -DTRANS_A=" + (trans_a ? "1" : "0") +
         " -DTRANS_B=" + (trans_b ? "1" : "0");
}

std::string GemmConfig::label() const {
  return std::to_string(tile_m) + "x" + std::to_string(tile_n) + "x" + std::to_string(tile_k) +
         "/" + std::to_string(wpt_m) + "x" + std::to_string(wpt_n);
}

const std::vector<GemmConfig>& gemm_configs() {
  // 128×128 with 8×8 per work-item: 256 work-items, 64 accumulators each, 4 multiply-adds
  // per local load; K-slabs of 32 (33 KiB of local memory) where the device has room,
  // else 16 (16.5 KiB). 64×64/4×4 has 4× the tiles for thin products (attention's P·V);
  // 32×32/4×4 (64 work-items) suits CPUs, whose work-items are loop iterations; 8×8/2×2
  // needs 16 work-items and 0.5 KiB, for devices that allow nothing bigger.
  // Measured on an H100 (NVIDIA OpenCL, GPT-2 124M shapes, B·T = 8192): 128×128×32 reaches
  // 24–29 TFLOP/s, 128×128×16 0.5–1.5 less, 64×64 21–23.
  static const std::vector<GemmConfig> configs = {
      {128, 128, 32, 8, 8}, {128, 128, 16, 8, 8}, {64, 64, 16, 4, 4},
      {32, 32, 16, 4, 4},   {8, 8, 8, 2, 2},
  };
  return configs;
}

namespace {

bool fits_device(const GemmConfig& c, const DeviceInfo& device) {
  return c.work_group_size() <= device.max_work_group_size &&
         c.local_bytes() <= device.local_mem_bytes;
}

size_t tiles_of(const GemmConfig& c, int M, int N, int batch) {
  return size_t((M + c.tile_m - 1) / c.tile_m) * ((N + c.tile_n - 1) / c.tile_n) * batch;
}

// Padded tile area over useful area: 1 when M and N are multiples of the tile.
double waste_of(const GemmConfig& c, int M, int N) {
  double padded = double(round_up(M, c.tile_m)) * double(round_up(N, c.tile_n));
  return padded / (double(M) * double(N));
}

const char* const kFile = "matmul.cl";

// Element count a slice-strided operand needs: offset + (batch-1)·stride + rows·cols.
void check_operand(const char* name, const cl::Buffer& buffer, size_t offset, size_t stride,
                   int batch, size_t elements) {
  if (elements > size_t(INT_MAX))
    throw Error(std::string("gemm: operand ") + name + " has " + std::to_string(elements) +
                " elements, more than the kernel's 32-bit indexing allows");
  size_t needed = offset + size_t(batch - 1) * stride + elements;
  size_t have = buffer.getInfo<CL_MEM_SIZE>() / sizeof(float);
  if (needed > have)
    throw Error(std::string("gemm: operand ") + name + " needs " + std::to_string(needed) +
                " floats but its buffer holds " + std::to_string(have));
}

void check_spec(const Ops::GemmSpec& s, const cl::Buffer& A, const cl::Buffer& B,
                const cl::Buffer& C) {
  if (s.M < 0 || s.N < 0 || s.K < 0 || s.batch < 1)
    throw Error("gemm: bad shape M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) +
                " K=" + std::to_string(s.K) + " batch=" + std::to_string(s.batch));
  check_operand("A", A, s.offset_a, s.stride_a, s.batch, size_t(s.M) * s.K);
  check_operand("B", B, s.offset_b, s.stride_b, s.batch, size_t(s.K) * s.N);
  check_operand("C", C, s.offset_c, s.stride_c, s.batch, size_t(s.M) * s.N);
}

}  // namespace

bool gemm_splittable(const Ops::GemmSpec& spec, bool has_bias) {
  return spec.trans_a && !spec.trans_b && spec.batch == 1 && !has_bias;
}

GemmPlan plan_gemm(const DeviceInfo& device, const Ops::GemmSpec& spec, bool has_bias) {
  const auto& configs = gemm_configs();
  const auto fitting = [&](int tile) -> const GemmConfig* {
    for (const auto& c : configs)
      if (c.tile_m == tile && fits_device(c, device)) return &c;
    return nullptr;
  };
  if (!device.is_gpu) {
    if (const GemmConfig* c = fitting(32)) return {*c, 1};
    return {configs.back(), 1};
  }
  // Two work-groups per compute unit hide each other's barriers and loads.
  const size_t wanted_tiles = 2 * size_t(device.compute_units);
  if (const GemmConfig* big = fitting(128); big && waste_of(*big, spec.M, spec.N) <= 1.25) {
    const size_t tiles = tiles_of(*big, spec.M, spec.N, spec.batch);
    if (tiles >= wanted_tiles) return {*big, 1};
    // Split K into enough slices for ~8 work-groups per compute unit (many short waves
    // lose less to the last one: on an H100, 8–16 slices beat 2–4 by 20–60%), at most 16
    // slices, each at least 512 deep so the partial sums' traffic stays small.
    const size_t splits =
        std::min<size_t>({16, (4 * wanted_tiles + tiles - 1) / tiles, size_t(spec.K) / 512});
    if (gemm_splittable(spec, has_bias) && splits > 1) return {*big, int(splits)};
  }
  for (int tile : {64, 32})
    if (const GemmConfig* c = fitting(tile)) return {*c, 1};
  return {configs.back(), 1};
}

namespace {

void launch_tiles(Runtime& rt, const GemmConfig& config, const Ops::GemmSpec& spec,
                  const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& C,
                  const cl::Buffer* bias) {
  check_spec(spec, A, B, C);
  if (spec.M == 0 || spec.N == 0) return;
  if (!fits_device(config, rt.device()))
    throw Error("gemm configuration " + config.label() + " does not fit " +
                rt.device().short_label());
  cl::Kernel kernel = rt.kernel(kFile, "gemm", config.build_options(spec.trans_a, spec.trans_b));
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
            KernelCost{2 * mnk, elements * sizeof(float)});
}

// C = alpha · Σ_s op(A_s)·B_s + beta · C over K-slices s of `slice_k` (the last one
// shorter): full slices as one batched launch, the last one alone, then the ordered sum.
void launch_split(Runtime& rt, const GemmPlan& plan, const Ops::GemmSpec& spec, const cl::Buffer& A,
                  const cl::Buffer& B, const cl::Buffer& C, const GemmScratch& scratch) {
  check_spec(spec, A, B, C);
  if (spec.M == 0 || spec.N == 0) return;
  const int tile_k = plan.config.tile_k;
  const int slice_k = int(round_up((spec.K + plan.k_splits - 1) / plan.k_splits, tile_k));
  const int splits = (spec.K + slice_k - 1) / slice_k;
  const size_t mn = size_t(spec.M) * spec.N;
  const cl::Buffer& partials = scratch(size_t(splits) * mn * sizeof(float));

  Ops::GemmSpec part = spec;  // slice s: rows [s·slice_k, ...) of A (K×M) and B (K×N)
  part.alpha = 1.f, part.beta = 0.f, part.K = slice_k, part.batch = splits - 1;
  part.stride_a = size_t(slice_k) * spec.M, part.stride_b = size_t(slice_k) * spec.N;
  part.offset_c = 0, part.stride_c = mn;
  if (part.batch > 0) launch_tiles(rt, plan.config, part, A, B, partials, nullptr);
  const int full = splits - 1;
  part.batch = 1, part.K = spec.K - full * slice_k;
  part.offset_a = spec.offset_a + full * part.stride_a;
  part.offset_b = spec.offset_b + full * part.stride_b;
  part.offset_c = full * mn;
  launch_tiles(rt, plan.config, part, A, B, partials, nullptr);

  cl::Kernel reduce = rt.kernel(kFile, "gemm_split_reduce");
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
  if (plan.k_splits <= 1) return launch_tiles(rt, plan.config, spec, A, B, C, bias);
  if (!gemm_splittable(spec, bias != nullptr))
    throw Error("gemm: split-K needs trans_a, no trans_b, one slice and no bias");
  launch_split(rt, plan, spec, A, B, C, scratch);
}

void run_gemm(Runtime& rt, const Ops::GemmSpec& spec, const cl::Buffer& A, const cl::Buffer& B,
              const cl::Buffer& C, const cl::Buffer* bias, const GemmScratch& scratch) {
  GemmPlan plan = plan_gemm(rt.device(), spec, bias != nullptr);
  // A compiler may allow fewer work-items than the device maximum (register pressure):
  // step down to the next configuration that the compiled kernel accepts.
  for (const auto& c : gemm_configs()) {
    if (c.tile_m > plan.config.tile_m || !fits_device(c, rt.device())) continue;
    cl::Kernel kernel = rt.kernel(kFile, "gemm", c.build_options(spec.trans_a, spec.trans_b));
    size_t allowed = kernel.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(rt.device().device);
    if (c.work_group_size() > allowed) continue;
    plan.config = c;
    return launch_gemm(rt, plan, spec, A, B, C, bias, scratch);
  }
  throw Error("gemm: no tile configuration fits " + rt.device().short_label());
}

}  // namespace attnscope
