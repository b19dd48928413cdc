#include "model/attention/flash_core.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>

#include "host/runtime/error.hpp"
#include "host/runtime/kernel_sources.hpp"
#include "model/attention/common_reference.hpp"

namespace attnscope {

namespace {

constexpr int kMaxHeadSize = 128;  // register accumulators: TM rows of d/column-groups

bool fits(const FlashTiles& t, const DeviceInfo& device, int head_size, bool fused_dq) {
  const size_t items = size_t(std::max(t.forward_items(), t.backward_items()));
  return items <= device.max_work_group_size &&
         t.local_bytes(head_size, fused_dq) <= device.local_mem_bytes;
}

struct TiledActivations : AttentionActivations {
  DeviceBuffer q;    // the projection holding Q (fused: Q|K|V, (B,T,3C))
  DeviceBuffer kv;   // K|V when separate (gqa), else empty
  DeviceBuffer att;  // O (B,T,C): input of the output projection
  DeviceBuffer lse;  // L (B,H,T)
  const cl::Buffer& keys() const { return kv.empty() ? q.buffer() : kv.buffer(); }
};

std::string build_options(const TiledShape& s, const FlashTiles& t) {
  std::string options = "-DHEAD_SIZE=" + std::to_string(s.head_size);
  const std::pair<const char*, int> values[] = {
      {"TM", t.tm},   {"BR", t.br},   {"BC", t.bc},   {"TN", t.tn},
      {"BB", t.bb},   {"TNB", t.tnb}, {"TMB", t.tmb}, {"GROUP_SIZE", s.group_size}};
  for (const auto& [name, value] : values)
    options += std::string(" -D") + name + "=" + std::to_string(value);
  return options;
}

size_t kernel_work_group_limit(const Runtime& rt, const cl::Kernel& kernel) {
  return kernel.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(rt.device().device);
}

// The band the kernels receive: w (at most T, which is plain causal attention) or T.
int kernel_window(const TiledShape& s) { return s.window > 0 ? std::min(s.window, s.T) : s.T; }

size_t blocks(int n, int block) { return size_t((n + block - 1) / block); }

// flash.cl reads head rows as float4s when the head size is a multiple of 4 (head_float4):
// row strides and column offsets must then keep every row 16-byte aligned.
void check_float4_rows(const QkvLayout& l, const TiledShape& s) {
  if (s.head_size % 4 != 0) return;
  for (const int floats : {l.q_stride, l.q_offset, l.kv_stride, l.k_offset, l.v_offset})
    if (floats % 4 != 0)
      throw Error("the tiled attention kernels read head rows as float4s at head size " +
                  std::to_string(s.head_size) +
                  ": row strides and column offsets must be multiples of 4 floats");
}

}  // namespace

// ---- tiles and cost ----

int FlashTiles::padded_head(int head_size) const {
  const int groups = std::max(bc / tn, bb / tnb);
  return 4 * int(round_up(size_t((head_size + 3) / 4), size_t(groups)));
}

size_t FlashTiles::local_bytes(int head_size, bool fused_dq) const {
  const size_t row = sizeof(float) * (padded_head(head_size) + 4);  // staged row + padding
  // A slot-tile row of n floats: float4s, an odd number of them (flash.cl's SLOTS4).
  auto slot_row = [](int n) { return 4 * sizeof(float) * size_t(((n + 3) / 4) | 1); };
  // Forward: Q, V, K shared with P, the maxima / sums.
  const size_t forward =
      row * (br + bc) + std::max(row, slot_row(br)) * bc + slot_row(br) * (bc / tn);
  const size_t dq = row * 4 * bb + slot_row(bb) * bb;
  const size_t dkdv =
      row * 4 * bb + slot_row(bb) * (fused_dq ? 3 : 2) * bb + sizeof(float) * 2 * bb;
  return std::max({forward, dq, dkdv});
}

std::string FlashTiles::spec() const {
  std::string text;
  for (int value : {tm, br, bc, tn, bb, tnb, tmb})
    text += (text.empty() ? "" : ",") + std::to_string(value);
  return max_registers ? text + "," + std::to_string(max_registers) : text;
}

// The six to eight numbers of ATTNSCOPE_FLASH_TILES ("TM,BR,BC,TN,BB,TNB[,TMB[,REGS]]", TMB
// = TM when left out), checked as flash.cl needs them: BR a multiple of TM, BB of TMB,
// power-of-two column groups, REGS 32–255, and within the device's limits.
FlashTiles parse_flash_tiles(const std::string& spec, const DeviceInfo& device, int head_size,
                             bool fused_dq) {
  FlashTiles t;
  char tail = 0;
  const int n = std::sscanf(spec.c_str(), "%d,%d,%d,%d,%d,%d,%d,%d%c", &t.tm, &t.br, &t.bc,
                            &t.tn, &t.bb, &t.tnb, &t.tmb, &t.max_registers, &tail);
  if (n == 6) t.tmb = t.tm;
  auto power_of_two = [](int x) { return x > 0 && (x & (x - 1)) == 0; };
  const bool registers_ok = n < 8 || (t.max_registers >= 32 && t.max_registers <= 255);
  const bool shaped = n >= 6 && n <= 8 && registers_ok && t.tm > 0 && t.br > 0 && t.bc > 0 &&
                      t.tn > 0 && t.bb > 0 && t.tnb > 0 && t.tmb > 0 && t.br % t.tm == 0 &&
                      t.bb % t.tmb == 0 && t.bc % t.tn == 0 && t.bb % t.tnb == 0 &&
                      power_of_two(t.bc / t.tn) && power_of_two(t.bb / t.tnb);
  if (!shaped)
    throw UsageError("ATTNSCOPE_FLASH_TILES: '" + spec +
                     "' is not TM,BR,BC,TN,BB,TNB[,TMB[,REGS]] (BR a multiple of TM, BB of TMB, "
                     "BC/TN and BB/TNB powers of two, REGS 32-255)");
  if (!fits(t, device, head_size, fused_dq))
    throw UsageError("ATTNSCOPE_FLASH_TILES: " + spec + " needs " +
                     std::to_string(t.local_bytes(head_size, fused_dq)) +
                     " bytes of local memory and " +
                     std::to_string(std::max(t.forward_items(), t.backward_items())) +
                     " work-items; " + device.short_label() + " has " +
                     std::to_string(device.local_mem_bytes) + " and " +
                     std::to_string(device.max_work_group_size));
  return t;
}

std::vector<FlashTiles> flash_tile_candidates(const DeviceInfo& device, int head_size,
                                              bool fused_dq) {
  if (head_size < 1 || head_size > kMaxHeadSize)
    throw UsageError("the tiled attention kernels support head sizes 1.." +
                     std::to_string(kMaxHeadSize) + " (n_embd/n_head), got " +
                     std::to_string(head_size));
  if (const char* spec = std::getenv("ATTNSCOPE_FLASH_TILES"); spec && *spec)
    return {parse_flash_tiles(spec, device, head_size, fused_dq)};
  struct Forward { int tm, br, bc, tn; };
  struct Backward { int tmb, bb, tnb; };
  const bool cpu = device.is_cpu;
  // GPU order: a sweep on the H200 at d=64 and T=8192 (README, "Attention tiles";
  // results/20261202-speed_NVIDIA-H200/7-flash-tiles/) found forward 4×4 blocks and
  // backward 4×2 best, also after rows were interleaved over the work-items; 8×4 forward
  // and 4×4 backward blocks, with half the local loads per multiply-add, were 4% slower in
  // all (the forward 10%).
  const std::vector<Forward> forward =
      cpu ? std::vector<Forward>{{2, 16, 8, 4}, {2, 8, 4, 2}, {2, 4, 2, 1}}
          : std::vector<Forward>{{4, 64, 32, 4}, {8, 64, 32, 4}, {4, 64, 32, 8},
                                 {4, 64, 16, 4}, {4, 32, 16, 4}, {4, 32, 8, 2},
                                 {4, 16, 8, 2},  {4, 8, 4, 1}};
  const std::vector<Backward> backward =
      cpu ? std::vector<Backward>{{2, 8, 2}, {2, 4, 1}}
          : std::vector<Backward>{{4, 32, 2}, {4, 32, 4}, {4, 16, 4},
                                  {4, 16, 2}, {4, 8, 2},  {4, 4, 1}};
  std::vector<FlashTiles> candidates;
  for (const Forward& f : forward)
    for (const Backward& b : backward) {
      const FlashTiles t{f.tm, f.br, f.bc, f.tn, b.bb, b.tnb, b.tmb};
      if (fits(t, device, head_size, fused_dq)) candidates.push_back(t);
    }
  return candidates;
}

FlashTiles choose_flash_tiles(const DeviceInfo& device, int head_size, bool fused_dq) {
  const std::vector<FlashTiles> candidates = flash_tile_candidates(device, head_size, fused_dq);
  if (candidates.empty())
    throw Error("no attention tiles fit the local memory (" +
                std::to_string(device.local_mem_bytes) + " bytes) of " + device.short_label());
  return candidates.front();
}

namespace {

// count_tiled_pairs with the forward's tiles fwd_rows × fwd_width, the dQ kernel's
// dq_rows × dq_width and the dK/dV kernel's kv_rows × kv_width.
TiledPairs count_pairs(int T, int window, int fwd_rows, int fwd_width, int dq_rows, int dq_width,
                       int kv_rows, int kv_width) {
  // Key tiles of `width` visited by a block of `rows` queries from q0, and query tiles of
  // `width` visited by a block of keys from k0 (flash.cl's first_key / query_end).
  auto key_tiles = [&](int q0, int rows, int width) {
    const int first = window > 0 ? std::max(0, q0 - window + 1) : 0;
    return double(blocks(std::min(T, q0 + rows) - first, width));
  };
  auto query_tiles = [&](int k0, int rows, int width) {
    const int end = window > 0 ? std::min(T, k0 + rows - 1 + window) : T;
    return double(blocks(end - k0, width));
  };
  TiledPairs p;
  for (int i = 0; i < T; ++i) p.needed += window > 0 ? std::min(i + 1, window) : i + 1;
  for (int q0 = 0; q0 < T; q0 += fwd_rows)
    p.forward_tiles += key_tiles(q0, fwd_rows, fwd_width) * fwd_rows * fwd_width;
  for (int q0 = 0; q0 < T; q0 += dq_rows)
    p.dq_tiles += key_tiles(q0, dq_rows, dq_width) * dq_rows * dq_width;
  for (int k0 = 0; k0 < T; k0 += kv_rows)
    p.dkdv_tiles += query_tiles(k0, kv_rows, kv_width) * kv_rows * kv_width;
  return p;
}

}  // namespace

TiledPairs count_tiled_pairs(int T, int window, const FlashTiles& t) {
  return count_pairs(T, window, t.br, t.bc, t.bb, t.bb, t.bb, t.bb);
}

void check_tiled_rows_fit(const std::string& variant, const QkvLayout& l, int T) {
  if (size_t(T) * std::max(l.q_stride, l.kv_stride) >= size_t(INT_MAX))
    throw UsageError(variant + ": T·(row of the projections) must stay below 2^31 floats");
}

TiledPrecision tiled_precision(Precision precision) {
  switch (precision) {
    case Precision::tf32: return TiledPrecision::tf32;
    case Precision::tf32x3: return TiledPrecision::tf32x3;
    default: return TiledPrecision::fp32;
  }
}

TiledBackward tiled_backward(const Ops& ops) {
  const bool fused = ops.attention_backward() == AttentionBackward::fused;
  return {fused, fused ? ops.atomic_add().kind : AtomicAdd::compare_and_swap};
}

bool tf32_forward_supports(int head_size) {
  return head_size > 0 && head_size % 8 == 0 && head_size <= kMaxHeadSize;
}

// flash_tf32.cl's backward keeps two operands and two accumulators of d columns a row in
// registers (about 250 of them at d = 64), and its stages swizzle 8-float halves of 16.
bool tf32_backward_supports(int head_size) {
  return head_size > 0 && head_size % 16 == 0 && head_size <= 64;
}

// flash_tf32.cl's BKT: its K and V stages, BKT·(d + 8) + BKT/2·(2d + 8) floats, within
// 48 KiB (35 KiB at d = 64 with 64 keys; 34 KiB at d = 128 with 32).
int tf32_forward_key_tile(int head_size) { return head_size <= 64 ? 64 : 32; }

FlashTiles typical_gpu_flash_tiles(int head_size) {
  DeviceInfo typical_gpu;
  typical_gpu.local_mem_bytes = 48 * 1024;
  typical_gpu.max_work_group_size = 1024;
  return choose_flash_tiles(typical_gpu, head_size);
}

namespace {

// The tensor-core kernels' tiles: 64 rows × BKT (forward) or 32 (backward); every head
// size they support is a multiple of 8, so there is no padding.
TiledPairs tf32_pairs(const TiledShape& s) {
  return count_pairs(s.T, s.window, kTf32RowBlock, tf32_forward_key_tile(s.head_size),
                     kTf32RowBlock, kTf32BackwardTile, kTf32RowBlock, kTf32BackwardTile);
}

// Per kernel: forward QKᵀ and PV; dQ S, dP, dQ; dK/dV S, dP, dV, dK, and dQ when fused
// (2 FLOPs a multiply-add, per pair of the visited tiles and head column).
TiledFlops kernel_flops(const TiledShape& s, const FlashTiles& tiles, bool tf32_forward,
                        bool tf32_backward, bool fused_dq, double* dq = nullptr,
                        double* dkdv = nullptr) {
  const double bh = double(s.B) * s.H;
  const TiledPairs fp32 = count_tiled_pairs(s.T, s.window, tiles), tf32 = tf32_pairs(s);
  const double dp = tiles.padded_head(s.head_size), d = s.head_size;
  const double forward = tf32_forward ? 4 * tf32.forward_tiles * d : 4 * fp32.forward_tiles * dp;
  const double dq_flops = fused_dq        ? 0
                          : tf32_backward ? 6 * tf32.dq_tiles * d
                                          : 6 * fp32.dq_tiles * dp;
  const double dkdv_flops =
      (fused_dq ? 10 : 8) * (tf32_backward ? tf32.dkdv_tiles * d : fp32.dkdv_tiles * dp);
  if (dq) *dq = bh * dq_flops;
  if (dkdv) *dkdv = bh * dkdv_flops;
  return {bh * forward, bh * (dq_flops + dkdv_flops)};
}

}  // namespace

TiledFlops tiled_attention_flops(const TiledShape& s, const FlashTiles& tiles, bool tf32_forward,
                                 bool tf32_backward, bool fused_dq) {
  return kernel_flops(s, tiles, tf32_forward, tf32_backward, fused_dq);
}

// ---- kernels ----

namespace {

bool split_operands(TiledPrecision p) {
  return p == TiledPrecision::tf32x3 || p == TiledPrecision::tf32x3_emulated;
}
bool emulated(TiledPrecision p) {
  return p == TiledPrecision::tf32_emulated || p == TiledPrecision::tf32x3_emulated;
}

// Whether the dQ and dK/dV kernels are flash_tf32.cl's (else flash.cl's fp32 ones).
bool backward_on_tensor_cores(TiledPrecision precision, int head_size) {
  return precision != TiledPrecision::fp32 && tf32_forward_supports(head_size) &&
         tf32_backward_supports(head_size);
}

}  // namespace

TiledAttentionKernels::TiledAttentionKernels(Runtime& rt, const std::string& family,
                                             const TiledShape& shape, const FlashTiles& tiles,
                                             TiledPrecision precision, TiledBackward backward)
    : rt_(rt),
      tiles_(tiles),
      head_size_(shape.head_size),
      group_size_(shape.group_size),
      precision_(precision),
      backward_(backward),
      forward_tf32_(precision != TiledPrecision::fp32 && tf32_forward_supports(shape.head_size)),
      backward_tf32_(backward_on_tensor_cores(precision, shape.head_size)),
      fused_dq_(backward.fused) {
  // The tf32 file includes the fp32 one: one program holds the tensor-core kernels and the
  // fp32 ones the tf32 path still uses.
  std::string file = "attention/" + family + ".cl", options = build_options(shape, tiles);
  if (tiles.max_registers && rt.device().is_nvidia())
    options += register_cap_options(tiles.max_registers);
  if (fused_dq_) options += " -DFUSED_DQ=1 " + atomic_add_options(backward.atomics);
  if (forward_tf32_) {
    file = "attention/" + family + "_tf32.cl";
    options += " -DBKT=" + std::to_string(tf32_forward_key_tile(shape.head_size));
    if (split_operands(precision)) options += " -DSPLIT_TF32=1";
    if (emulated(precision)) options += " -DEMULATE_MMA=1";
  }
  forward_ = rt.kernel(file, family + (forward_tf32_ ? "_forward_tf32" : "_forward"), options);
  const std::string tf32_suffix = backward_tf32_ ? "_tf32" : "";
  delta_ = rt.kernel(file, family + "_backward_delta", options);
  dkdv_ = rt.kernel(file, family + "_backward_dkdv" + tf32_suffix, options);
  if (group_size_ > 1) dkdv_sum_ = rt.kernel(file, family + "_backward_dkdv_sum", options);
  if (!fused_dq_) dq_ = rt.kernel(file, family + "_backward_dq" + tf32_suffix, options);
}

size_t TiledAttentionKernels::dkv_share_floats(const TiledShape& s) {
  return s.group_size > 1 ? size_t(s.B) * s.T * s.H * 2 * s.head_size : 0;
}

bool TiledAttentionKernels::fits_compiled_limits() const {
  const size_t forward = forward_tf32_ ? size_t(kTf32Items) : size_t(tiles_.forward_items());
  const size_t backward = backward_tf32_ ? size_t(kTf32Items) : size_t(tiles_.backward_items());
  // The tf32 kernels' stages are fixed (flash_tile_candidates checked only flash.cl's):
  // their compiled __local use must fit too.
  auto local_fits = [&](bool tf32, const cl::Kernel& kernel) {
    return !tf32 || kernel.getWorkGroupInfo<CL_KERNEL_LOCAL_MEM_SIZE>(rt_.device().device) <=
                        rt_.device().local_mem_bytes;
  };
  return kernel_work_group_limit(rt_, forward_) >= forward &&
         (fused_dq_ || kernel_work_group_limit(rt_, dq_) >= backward) &&
         kernel_work_group_limit(rt_, dkdv_) >= backward && local_fits(forward_tf32_, forward_) &&
         (fused_dq_ || local_fits(backward_tf32_, dq_)) && local_fits(backward_tf32_, dkdv_);
}

std::unique_ptr<TiledAttentionKernels> TiledAttentionKernels::for_device(
    Runtime& rt, const std::string& family, const TiledShape& shape, TiledPrecision precision,
    TiledBackward backward) {
  for (const FlashTiles& tiles :
       flash_tile_candidates(rt.device(), shape.head_size, backward.fused)) {
    auto kernels =
        std::make_unique<TiledAttentionKernels>(rt, family, shape, tiles, precision, backward);
    if (kernels->fits_compiled_limits()) return kernels;
  }
  throw Error("cl_kernels/attention/" + family + ".cl: no tiles fit the local memory and the " +
              "compiled kernels' work-group sizes on " + rt.device().short_label());
}

void TiledAttentionKernels::forward(const cl::Buffer& out, const cl::Buffer& lse,
                                    const cl::Buffer& q, const cl::Buffer& kv,
                                    const QkvLayout& l, const TiledShape& s) {
  check_float4_rows(l, s);
  const double bh = double(s.B) * s.H;
  const double rows = double(s.B) * s.T, q_floats = rows * s.H * s.head_size;
  const double kv_floats = 2 * rows * (s.H / s.group_size) * s.head_size;
  const size_t items = forward_tf32_ ? size_t(kTf32Items) : size_t(tiles_.forward_items());
  const int query_block = forward_tf32_ ? kTf32RowBlock : tiles_.br;
  // The same arguments for both forward kernels.
  set_args(forward_, out, lse, q, l.q_stride, l.q_offset, kv, kv, l.kv_stride, l.k_offset,
           l.v_offset, s.T, s.H, kernel_window(s));
  // QKᵀ and PV per tile; reads Q, K, V once, writes O and L.
  rt_.launch(forward_, cl::NDRange(blocks(s.T, query_block) * items, size_t(s.B) * s.H),
             cl::NDRange(items, 1),
             {kernel_flops(s, tiles_, forward_tf32_, backward_tf32_, fused_dq_).forward,
              sizeof(float) * (2 * q_floats + kv_floats + bh * s.T)});
}

void TiledAttentionKernels::backward(const cl::Buffer& dq, const cl::Buffer& dkv,
                                     const cl::Buffer& delta, const cl::Buffer& dkv_shares,
                                     const cl::Buffer& dout,
                                     const cl::Buffer& out, const cl::Buffer& lse,
                                     const cl::Buffer& q, const cl::Buffer& kv,
                                     const QkvLayout& l, const TiledShape& s) {
  check_float4_rows(l, s);
  double dq_flops = 0, dkdv_flops = 0;
  kernel_flops(s, tiles_, forward_tf32_, backward_tf32_, fused_dq_, &dq_flops, &dkdv_flops);
  const double bh = double(s.B) * s.H;
  const double rows = double(s.B) * s.T, q_floats = rows * s.H * s.head_size;
  const double kv_floats = 2 * rows * (s.H / s.group_size) * s.head_size;
  // The dQ and dK/dV kernels' work-groups (the same shape for both).
  const size_t items = backward_tf32_ ? size_t(kTf32Items) : size_t(tiles_.backward_items());
  const size_t row_blocks = blocks(s.T, backward_tf32_ ? kTf32RowBlock : tiles_.bb);
  const int window = kernel_window(s);

  // delta; with the fused backward also dQ := 0, which the dK/dV kernel then adds to.
  set_args(delta_, delta, dq, l.q_stride, l.q_offset, dout, out, s.B, s.T, s.H);
  rt_.launch(delta_, cl::NDRange(size_t(s.B) * s.T * s.H), cl::NullRange,
             {0, sizeof(float) * (2 * q_floats + bh * s.T + (fused_dq_ ? q_floats : 0))});

  // dK, dV: S, dP, dV, dK per tile (4 products; fused: and dQ, added with atomics); reads
  // Q, K, V, dO, L, delta. A work-group per key block and query head; groups of heads write
  // shares, summed after.
  const double inputs = sizeof(float) * (2 * q_floats + kv_floats + 2 * bh * s.T);
  const double shares = double(dkv_share_floats(s));
  const cl::Buffer& dkv_out = s.group_size > 1 ? dkv_shares : dkv;
  set_args(dkdv_, dkv_out, dq, q, l.q_stride, l.q_offset, kv, kv, l.kv_stride, l.k_offset,
           l.v_offset, dout, lse, delta, s.T, s.H, window);
  // Fused, dQ's traffic: a read and a write of dQ's rows per visited tile pair, at the L2.
  const double dq_adds =
      !fused_dq_       ? 0
      : backward_tf32_ ? 2 * sizeof(float) * bh * tf32_pairs(s).dkdv_tiles / kTf32RowBlock *
                             s.head_size
                       : 2 * sizeof(float) * bh *
                             count_tiled_pairs(s.T, s.window, tiles_).dkdv_tiles / tiles_.bb *
                             tiles_.padded_head(s.head_size);
  rt_.launch(dkdv_, cl::NDRange(row_blocks * items, size_t(s.B) * s.H), cl::NDRange(items, 1),
             {dkdv_flops,
              inputs + dq_adds + sizeof(float) * (s.group_size > 1 ? shares : kv_floats)});
  if (s.group_size > 1) {
    set_args(dkdv_sum_, dkv, dkv_shares, s.B, s.T, s.H, l.kv_stride, l.k_offset, l.v_offset);
    rt_.launch(dkdv_sum_, cl::NDRange(size_t(kv_floats)), cl::NullRange,
               {shares - kv_floats, sizeof(float) * (shares + kv_floats)});
  }

  if (fused_dq_) return;
  // dQ: S, dP, dQ per tile (3 products).
  set_args(dq_, dq, q, l.q_stride, l.q_offset, kv, kv, l.kv_stride, l.k_offset, l.v_offset, dout,
           lse, delta, s.T, s.H, window);
  rt_.launch(dq_, cl::NDRange(row_blocks * items, size_t(s.B) * s.H), cl::NDRange(items, 1),
             {dq_flops, inputs + sizeof(float) * q_floats});
}

// ---- the variant ----

// Backward scratch, shared by the layers (they run one after another).
struct TiledExactAttention::Scratch {
  DeviceBuffer datt;   // dO (B,T,C); then the projections' dx scratch
  DeviceBuffer dq;     // gradient of the q projection buffer
  DeviceBuffer dkv;    // gradient of the K|V buffer when separate
  DeviceBuffer delta;  // (B,H,T)
  DeviceBuffer dkv_shares;  // per-query-head dK|dV (groups of heads only)
};

std::string TiledAttentionKernels::arithmetic() const {
  // The backward's head sizes are a subset of the forward's (tf32_*_supports).
  const std::string atomics =
      fused_dq_ ? "; dQ added by the dK/dV kernel with float atomics (" +
                      atomic_add_name(backward_.atomics) + ")"
                : "";
  if (!forward_tf32_) return "fp32" + atomics;
  const std::string cores = split_operands(precision_) ? "3xtf32" : "tf32";
  return cores + (backward_tf32_ ? " tensor cores: forward, dQ, dK/dV"
                                 : " tensor cores: forward (dQ, dK/dV fp32)") +
         atomics;
}

TiledExactAttention::TiledExactAttention(const AttentionOptions& options)
    : AttentionVariant(options) {}

std::string TiledExactAttention::attention_kernels() const {
  return kernels_ ? kernels_->arithmetic() : "fp32";
}

std::string TiledExactAttention::attention_backward() const {
  return kernels_ ? kernels_->backward_form() : "";
}

TiledExactAttention::~TiledExactAttention() = default;

void TiledExactAttention::resolve(const AttentionDims& dims) {
  const FlashTiles typical = typical_gpu_flash_tiles(dims.head_size());  // checks d
  const bool built = kernels_ && kernels_->head_size() == dims.head_size();
  tiles_ = built ? kernels_->tiles() : typical;
  forward_tf32_ = built && kernels_->forward_tf32();  // cost(): fp32 until allocate() knows
  backward_tf32_ = built && kernels_->backward_tf32();
  fused_dq_ = built && kernels_->fused_dq();
}

TiledShape TiledExactAttention::tiled_shape(const AttentionDims& dims) const {
  TiledShape s;
  s.B = dims.B, s.T = dims.T, s.H = dims.H, s.head_size = dims.head_size();
  s.group_size = dims.H / kv_heads(dims);
  s.window = window(dims);
  return s;
}

std::vector<TensorSpec> TiledExactAttention::parameters(const AttentionDims& dims) const {
  std::vector<TensorSpec> specs = projection_parameters(dims);
  const size_t C = dims.C;
  specs.push_back({"attprojw", {C, C}, Init::kResidualProjection, true});
  specs.push_back({"attprojb", {C}, Init::kZero, false});
  return specs;
}

std::vector<TensorSpec> TiledExactAttention::projection_parameters(const AttentionDims& dims) const {
  const size_t C = dims.C;
  return {{"qkvw", {3 * C, C}, Init::kNormal, true}, {"qkvb", {3 * C}, Init::kZero, false}};
}

size_t TiledExactAttention::q_floats(const AttentionDims& d) const {
  return size_t(d.B) * d.T * 3 * d.C;
}

size_t TiledExactAttention::kv_floats(const AttentionDims&) const { return 0; }

QkvLayout TiledExactAttention::layout(const AttentionDims& d) const {
  return {3 * d.C, 0, 3 * d.C, d.C, 2 * d.C};
}

void TiledExactAttention::project_forward(Ops& ops, const AttentionDims& d,
                                          const std::vector<cl::Buffer>& params,
                                          const cl::Buffer& x, const cl::Buffer& q,
                                          const cl::Buffer&) {
  ops.matmul_forward(q, x, params[0], &params[1], d.B * d.T, d.C, 3 * d.C);
}

void TiledExactAttention::project_backward(Ops& ops, const AttentionDims& d,
                                           const std::vector<cl::Buffer>& params,
                                           const std::vector<cl::Buffer>& grads,
                                           const cl::Buffer& x, const cl::Buffer& dq,
                                           const cl::Buffer&, const cl::Buffer& dx,
                                           const cl::Buffer&) {
  ops.matmul_backward(dx, grads[0], &grads[1], dq, x, params[0], d.B * d.T, d.C, 3 * d.C);
}

double TiledExactAttention::projection_flops(const AttentionDims& d) const {
  const double rows = double(d.B) * d.T;
  return 2 * rows * d.C * (double(q_floats(d) + kv_floats(d)) / rows) + 2 * rows * d.C * d.C;
}

AttentionCost TiledExactAttention::cost(const AttentionDims& d) const {
  const TiledPairs pairs = count_tiled_pairs(d.T, window(d), tiles_);
  const double bh = double(d.B) * d.H, hd = d.head_size();
  const double proj = projection_flops(d);
  const TiledFlops executed =
      tiled_attention_flops(tiled_shape(d), tiles_, forward_tf32_, backward_tf32_, fused_dq_);
  AttentionCost c;
  c.model_flops_forward = proj + bh * 4 * pairs.needed * hd;  // QKᵀ and PV over allowed pairs
  c.model_flops_backward = 2 * c.model_flops_forward;
  c.executed_flops_forward = proj + executed.forward;
  c.executed_flops_backward = 2 * proj + executed.backward;
  const double att_floats = double(d.B) * d.T * d.C;
  c.saved_bytes = sizeof(float) * (double(q_floats(d) + kv_floats(d)) + att_floats + bh * d.T);
  return c;
}

std::vector<DeviceBufferSpec> TiledExactAttention::device_buffers(const AttentionDims& d) const {
  const size_t rows = size_t(d.B) * d.T, stats = size_t(d.B) * d.H * d.T;
  std::vector<DeviceBufferSpec> buffers = {
      layer_floats(family() + " projections", q_floats(d)),
      layer_floats(family() + " attention output", rows * d.C),
      layer_floats(family() + " lse", stats),
      shared_floats(family() + " dO", rows * d.C),
      shared_floats(family() + " dq", q_floats(d)),
      shared_floats(family() + " delta", stats)};
  if (kv_floats(d) > 0) {
    buffers.push_back(layer_floats(family() + " kv", kv_floats(d)));
    buffers.push_back(shared_floats(family() + " dkv", kv_floats(d)));
  }
  if (const size_t shares = TiledAttentionKernels::dkv_share_floats(tiled_shape(d)))
    buffers.push_back(shared_floats(family() + " dK|dV per query head", shares));
  return buffers;
}

std::unique_ptr<AttentionActivations> TiledExactAttention::allocate(Ops& ops,
                                                                     const AttentionDims& d) {
  Runtime& rt = ops.runtime();
  const size_t rows = size_t(d.B) * d.T, stats = size_t(d.B) * d.H * d.T;
  check_tiled_rows_fit(family(), layout(d), d.T);
  const TiledShape shape = tiled_shape(d);
  const TiledPrecision precision = tiled_precision(ops.precision());
  const TiledBackward backward = tiled_backward(ops);
  if (!kernels_ || kernels_->head_size() != shape.head_size ||
      kernels_->group_size() != shape.group_size || kernels_->precision() != precision ||
      kernels_->backward() != backward) {
    kernels_ = TiledAttentionKernels::for_device(rt, family(), shape, precision, backward);
    tiles_ = kernels_->tiles();
    forward_tf32_ = kernels_->forward_tf32();
    backward_tf32_ = kernels_->backward_tf32();
    fused_dq_ = kernels_->fused_dq();
  }
  if (!scratch_ || scratch_->dq.floats() < q_floats(d) || scratch_->dkv.floats() < kv_floats(d) ||
      scratch_->datt.floats() < rows * d.C || scratch_->delta.floats() < stats ||
      scratch_->dkv_shares.floats() < TiledAttentionKernels::dkv_share_floats(shape)) {
    scratch_.reset();  // free before allocating the larger one
    scratch_ = std::make_unique<Scratch>();
    scratch_->datt = rt.alloc_floats(rows * d.C, family() + " dO");
    scratch_->dq = rt.alloc_floats(q_floats(d), family() + " dq");
    if (kv_floats(d) > 0) scratch_->dkv = rt.alloc_floats(kv_floats(d), family() + " dkv");
    scratch_->delta = rt.alloc_floats(stats, family() + " delta");
    if (const size_t shares = TiledAttentionKernels::dkv_share_floats(shape))
      scratch_->dkv_shares = rt.alloc_floats(shares, family() + " dK|dV per query head");
  }
  auto a = std::make_unique<TiledActivations>();
  a->q = rt.alloc_floats(q_floats(d), family() + " projections");
  if (kv_floats(d) > 0) a->kv = rt.alloc_floats(kv_floats(d), family() + " kv");
  a->att = rt.alloc_floats(rows * d.C, family() + " attention output");
  a->lse = rt.alloc_floats(stats, family() + " lse");
  return a;
}

void TiledExactAttention::forward(const DeviceArgs& args, const cl::Buffer& out) {
  const auto& [ops, d, step, params, x, acts] = args;
  auto& a = static_cast<TiledActivations&>(acts);
  project_forward(ops, d, params, x, a.q, a.keys());
  kernels_->forward(a.att, a.lse, a.q, a.keys(), layout(d), tiled_shape(d));
  const size_t n = params.size();
  ops.matmul_forward(out, a.att, params[n - 2], &params[n - 1], d.B * d.T, d.C, d.C);
}

void TiledExactAttention::backward(const DeviceArgs& args, const DeviceGrads& gradients) {
  const auto& [ops, d, step, params, x, acts] = args;
  const auto& [dout, dx, grads] = gradients;
  auto& a = static_cast<TiledActivations&>(acts);
  Scratch& s = *scratch_;
  const cl::Buffer& dkv = s.dkv.empty() ? s.dq.buffer() : s.dkv.buffer();
  const size_t n = params.size();
  ops.matmul_backward(s.datt, grads[n - 2], &grads[n - 1], dout, a.att, params[n - 2], d.B * d.T,
                      d.C, d.C);
  const cl::Buffer& shares = s.dkv_shares.empty() ? s.delta.buffer() : s.dkv_shares.buffer();
  kernels_->backward(s.dq, dkv, s.delta, shares, s.datt, a.att, a.lse, a.q, a.keys(), layout(d),
                     tiled_shape(d));
  project_backward(ops, d, params, grads, x, s.dq, dkv, dx, s.datt);
}

void TiledExactAttention::reference_forward(const ReferenceArgs& args, float* out) const {
  const auto& [dims, step, params, x] = args;
  reference::mha_block_forward(dims, window(dims), params, x, out);
}

void TiledExactAttention::reference_backward(const ReferenceArgs& args,
                                             const ReferenceGrads& gradients) const {
  const auto& [dims, step, params, x] = args;
  const auto& [dout, dx, dparams] = gradients;
  reference::mha_block_backward(dims, window(dims), params, x, dout, dx, dparams);
}

}  // namespace attnscope
