#include "model/attention/flash_core.hpp"

#include <algorithm>
#include <climits>

#include "host/error.hpp"
#include "model/attention/common_reference.hpp"

namespace attnscope {

namespace {

constexpr int kMaxHeadSize = 128;  // private accumulators: 2 rows of d floats per work-item

size_t padded_head(int head_size) { return round_up(size_t(head_size), 4); }

// __local floats of each kernel (flash.cl): forward ⊂ dQ (Q, dO tiles of BR rows; K, V tiles
// of BC rows); dK/dV (K, V of BKV rows; Q, dO of BQ rows; L, delta of BQ).
size_t dq_local_floats(const FlashTiles& t, int head_size) {
  return size_t(2 * t.br + 2 * t.bc) * padded_head(head_size);
}
size_t dkdv_local_floats(const FlashTiles& t, int head_size) {
  return size_t(2 * t.bkv + 2 * t.bq) * padded_head(head_size) + 2 * size_t(t.bq);
}

// Halves the larger of a (work-group rows) and b (tile rows) until fits(a, b).
template <typename Fits>
void shrink_until(int& a, int& b, Fits fits) {
  while (!fits() && (a > 1 || b > 1)) {
    if (a > b)
      a /= 2;
    else
      b /= 2;
  }
}

struct TiledActivations : AttentionActivations {
  DeviceBuffer q;    // the projection holding Q (fused: Q|K|V, (B,T,3C))
  DeviceBuffer kv;   // K|V when separate (gqa), else empty
  DeviceBuffer att;  // O (B,T,C): input of the output projection
  DeviceBuffer lse;  // L (B,H,T)
  const cl::Buffer& keys() const { return kv.empty() ? q.buffer() : kv.buffer(); }
};

std::string build_options(const TiledShape& s, const FlashTiles& t) {
  return "-DHEAD_SIZE=" + std::to_string(s.head_size) + " -DBR=" + std::to_string(t.br) +
         " -DBC=" + std::to_string(t.bc) + " -DBKV=" + std::to_string(t.bkv) +
         " -DBQ=" + std::to_string(t.bq) + " -DGROUP_SIZE=" + std::to_string(s.group_size);
}

size_t kernel_work_group_limit(const Runtime& rt, const cl::Kernel& kernel) {
  return kernel.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(rt.device().device);
}

// The band the kernels receive: w (at most T, which is plain causal attention) or T.
int kernel_window(const TiledShape& s) { return s.window > 0 ? std::min(s.window, s.T) : s.T; }

size_t blocks(int n, int block) { return size_t((n + block - 1) / block); }

}  // namespace

// ---- tiles and cost ----

size_t flash_local_bytes(const FlashTiles& tiles, int head_size) {
  return sizeof(float) * std::max(dq_local_floats(tiles, head_size),
                                  dkdv_local_floats(tiles, head_size));
}

FlashTiles choose_flash_tiles(const DeviceInfo& device, int head_size) {
  if (head_size < 1 || head_size > kMaxHeadSize)
    throw UsageError("the tiled attention kernels support head sizes 1.." +
                     std::to_string(kMaxHeadSize) + " (n_embd/n_head), got " +
                     std::to_string(head_size));
  // On CPUs (PoCL) a work-group runs as a loop over SIMD lanes: 16 rows fill them, and the
  // smaller unrolled bodies compile several times faster than GPU-sized tiles.
  FlashTiles t = device.is_cpu ? FlashTiles{16, 8, 16, 8} : FlashTiles{};
  const size_t local = device.local_mem_bytes, items = device.max_work_group_size;
  shrink_until(t.br, t.bc, [&] {
    return size_t(t.br) <= items && sizeof(float) * dq_local_floats(t, head_size) <= local;
  });
  shrink_until(t.bkv, t.bq, [&] {
    return size_t(t.bkv) <= items && sizeof(float) * dkdv_local_floats(t, head_size) <= local;
  });
  return t;
}

TiledPairs count_tiled_pairs(int T, int window, const FlashTiles& t) {
  TiledPairs p;
  for (int i = 0; i < T; ++i) p.needed += window > 0 ? std::min(i + 1, window) : i + 1;
  for (int q0 = 0; q0 < T; q0 += t.br) {  // forward and dQ: key tiles of each query block
    const int first = window > 0 ? std::max(0, q0 - window + 1) : 0;
    p.forward_tiles += double(blocks(std::min(T, q0 + t.br) - first, t.bc)) * t.br * t.bc;
  }
  for (int k0 = 0; k0 < T; k0 += t.bkv) {  // dK/dV: query tiles of each key block
    const int end = window > 0 ? std::min(T, k0 + t.bkv - 1 + window) : T;
    p.dkdv_tiles += double(blocks(end - k0, t.bq)) * t.bkv * t.bq;
  }
  return p;
}

// ---- kernels ----

TiledAttentionKernels::TiledAttentionKernels(Runtime& rt, const std::string& family,
                                             const TiledShape& shape, const FlashTiles& tiles)
    : rt_(rt), tiles_(tiles), head_size_(shape.head_size), group_size_(shape.group_size) {
  const std::string file = "attention/" + family + ".cl", options = build_options(shape, tiles);
  forward_ = rt.kernel(file, family + "_forward", options);
  delta_ = rt.kernel(file, family + "_backward_delta", options);
  dkdv_ = rt.kernel(file, family + "_backward_dkdv", options);
  dq_ = rt.kernel(file, family + "_backward_dq", options);
}

bool TiledAttentionKernels::fits_compiled_limits() const {
  return kernel_work_group_limit(rt_, forward_) >= size_t(tiles_.br) &&
         kernel_work_group_limit(rt_, dq_) >= size_t(tiles_.br) &&
         kernel_work_group_limit(rt_, dkdv_) >= size_t(tiles_.bkv);
}

std::unique_ptr<TiledAttentionKernels> TiledAttentionKernels::for_device(
    Runtime& rt, const std::string& family, const TiledShape& shape) {
  FlashTiles tiles = choose_flash_tiles(rt.device(), shape.head_size);
  for (;;) {
    auto kernels = std::make_unique<TiledAttentionKernels>(rt, family, shape, tiles);
    if (kernels->fits_compiled_limits()) return kernels;
    if (tiles.br == 1 && tiles.bkv == 1)
      throw Error("cl_kernels/attention/" + family + ".cl: no work-group size fits the " +
                  "compiled kernels on " + rt.device().short_label());
    tiles.br = std::max(1, tiles.br / 2);
    tiles.bkv = std::max(1, tiles.bkv / 2);
  }
}

void TiledAttentionKernels::forward(const cl::Buffer& out, const cl::Buffer& lse,
                                    const cl::Buffer& q, const cl::Buffer& kv,
                                    const QkvLayout& l, const TiledShape& s) {
  const TiledPairs pairs = count_tiled_pairs(s.T, s.window, tiles_);
  const double bh = double(s.B) * s.H, dp = double(padded_head(s.head_size));
  const double rows = double(s.B) * s.T, q_floats = rows * s.H * s.head_size;
  const double kv_floats = 2 * rows * (s.H / s.group_size) * s.head_size;
  set_args(forward_, out, lse, q, l.q_stride, l.q_offset, kv, kv, l.kv_stride, l.k_offset,
           l.v_offset, s.T, s.H, kernel_window(s));
  rt_.launch(forward_, cl::NDRange(blocks(s.T, tiles_.br) * tiles_.br, size_t(s.B) * s.H),
             cl::NDRange(tiles_.br, 1),
             {bh * 4 * pairs.forward_tiles * dp,
              sizeof(float) * (2 * q_floats + kv_floats + bh * s.T)});
}

void TiledAttentionKernels::backward(const cl::Buffer& dq, const cl::Buffer& dkv,
                                     const cl::Buffer& delta, const cl::Buffer& dout,
                                     const cl::Buffer& out, const cl::Buffer& lse,
                                     const cl::Buffer& q, const cl::Buffer& kv,
                                     const QkvLayout& l, const TiledShape& s) {
  const TiledPairs pairs = count_tiled_pairs(s.T, s.window, tiles_);
  const double bh = double(s.B) * s.H, dp = double(padded_head(s.head_size));
  const double rows = double(s.B) * s.T, q_floats = rows * s.H * s.head_size;
  const double kv_floats = 2 * rows * (s.H / s.group_size) * s.head_size;
  const int window = kernel_window(s);

  set_args(delta_, delta, dout, out, s.B, s.T, s.H);
  rt_.launch(delta_, cl::NDRange(size_t(s.B) * s.T * s.H), cl::NullRange,
             {0, sizeof(float) * (2 * q_floats + bh * s.T)});

  // dK, dV: S, dP, dV, dK per tile (4 products); reads Q, K, V, dO, L, delta.
  const double inputs = sizeof(float) * (2 * q_floats + kv_floats + 2 * bh * s.T);
  set_args(dkdv_, dkv, q, l.q_stride, l.q_offset, kv, kv, l.kv_stride, l.k_offset, l.v_offset,
           dout, lse, delta, s.T, s.H, window);
  rt_.launch(dkdv_,
             cl::NDRange(blocks(s.T, tiles_.bkv) * tiles_.bkv, size_t(s.B) * (s.H / s.group_size)),
             cl::NDRange(tiles_.bkv, 1),
             {bh * 8 * pairs.dkdv_tiles * dp, inputs + sizeof(float) * kv_floats});

  // dQ: S, dP, dQ per tile (3 products).
  set_args(dq_, dq, q, l.q_stride, l.q_offset, kv, kv, l.kv_stride, l.k_offset, l.v_offset, dout,
           lse, delta, s.T, s.H, window);
  rt_.launch(dq_, cl::NDRange(blocks(s.T, tiles_.br) * tiles_.br, size_t(s.B) * s.H),
             cl::NDRange(tiles_.br, 1),
             {bh * 6 * pairs.forward_tiles * dp, inputs + sizeof(float) * q_floats});
}

// ---- the variant ----

// Backward scratch, shared by the layers (they run one after another).
struct TiledExactAttention::Scratch {
  DeviceBuffer datt;   // dO (B,T,C); then the projections' dx scratch
  DeviceBuffer dq;     // gradient of the q projection buffer
  DeviceBuffer dkv;    // gradient of the K|V buffer when separate
  DeviceBuffer delta;  // (B,H,T)
};

TiledExactAttention::TiledExactAttention(const AttentionOptions& options)
    : AttentionVariant(options) {}

TiledExactAttention::~TiledExactAttention() = default;

void TiledExactAttention::resolve(const AttentionDims& dims) {
  DeviceInfo typical_gpu;  // what cost() assumes until allocate() sees the device
  typical_gpu.local_mem_bytes = 48 * 1024;
  typical_gpu.max_work_group_size = 1024;
  tiles_ = choose_flash_tiles(typical_gpu, dims.head_size());  // also checks the head size
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
  const double bh = double(d.B) * d.H, hd = d.head_size(), dp = double(padded_head(d.head_size()));
  const double proj = projection_flops(d);
  AttentionCost c;
  c.model_flops_forward = proj + bh * 4 * pairs.needed * hd;  // QKᵀ and PV over allowed pairs
  c.model_flops_backward = 2 * c.model_flops_forward;
  c.executed_flops_forward = proj + bh * 4 * pairs.forward_tiles * dp;
  // dQ kernel: S, dP, dQ (3 products); dK/dV kernel: S, dP, dV, dK (4 products).
  c.executed_flops_backward = 2 * proj + bh * (6 * pairs.forward_tiles + 8 * pairs.dkdv_tiles) * dp;
  const double att_floats = double(d.B) * d.T * d.C;
  c.saved_bytes = sizeof(float) * (double(q_floats(d) + kv_floats(d)) + att_floats + bh * d.T);
  return c;
}

std::unique_ptr<AttentionActivations> TiledExactAttention::allocate(Ops& ops,
                                                                     const AttentionDims& d) {
  Runtime& rt = ops.runtime();
  const size_t rows = size_t(d.B) * d.T, stats = size_t(d.B) * d.H * d.T;
  const QkvLayout l = layout(d);
  if (size_t(d.T) * std::max(l.q_stride, l.kv_stride) >= size_t(INT_MAX))
    throw UsageError(family() + ": T·(row of the projections) must stay below 2^31 floats");
  const TiledShape shape = tiled_shape(d);
  if (!kernels_ || kernels_->head_size() != shape.head_size ||
      kernels_->group_size() != shape.group_size) {
    kernels_ = TiledAttentionKernels::for_device(rt, family(), shape);
    tiles_ = kernels_->tiles();
  }
  if (!scratch_ || scratch_->dq.floats() < q_floats(d) || scratch_->dkv.floats() < kv_floats(d) ||
      scratch_->datt.floats() < rows * d.C || scratch_->delta.floats() < stats) {
    scratch_.reset();  // free before allocating the larger one
    scratch_ = std::make_unique<Scratch>();
    scratch_->datt = rt.alloc_floats(rows * d.C, family() + " dO");
    scratch_->dq = rt.alloc_floats(q_floats(d), family() + " dq");
    if (kv_floats(d) > 0) scratch_->dkv = rt.alloc_floats(kv_floats(d), family() + " dkv");
    scratch_->delta = rt.alloc_floats(stats, family() + " delta");
  }
  auto a = std::make_unique<TiledActivations>();
  a->q = rt.alloc_floats(q_floats(d), family() + " projections");
  if (kv_floats(d) > 0) a->kv = rt.alloc_floats(kv_floats(d), family() + " kv");
  a->att = rt.alloc_floats(rows * d.C, family() + " attention output");
  a->lse = rt.alloc_floats(stats, family() + " lse");
  return a;
}

void TiledExactAttention::forward(Ops& ops, const AttentionDims& d, const StepContext&,
                                  const std::vector<cl::Buffer>& params, const cl::Buffer& x,
                                  const cl::Buffer& out, AttentionActivations& acts) {
  auto& a = static_cast<TiledActivations&>(acts);
  project_forward(ops, d, params, x, a.q, a.keys());
  kernels_->forward(a.att, a.lse, a.q, a.keys(), layout(d), tiled_shape(d));
  const size_t n = params.size();
  ops.matmul_forward(out, a.att, params[n - 2], &params[n - 1], d.B * d.T, d.C, d.C);
}

void TiledExactAttention::backward(Ops& ops, const AttentionDims& d, const StepContext&,
                                   const std::vector<cl::Buffer>& params,
                                   const std::vector<cl::Buffer>& grads, const cl::Buffer& x,
                                   const cl::Buffer& dout, const cl::Buffer& dx,
                                   AttentionActivations& acts) {
  auto& a = static_cast<TiledActivations&>(acts);
  Scratch& s = *scratch_;
  const cl::Buffer& dkv = s.dkv.empty() ? s.dq.buffer() : s.dkv.buffer();
  const size_t n = params.size();
  ops.matmul_backward(s.datt, grads[n - 2], &grads[n - 1], dout, a.att, params[n - 2], d.B * d.T,
                      d.C, d.C);
  kernels_->backward(s.dq, dkv, s.delta, s.datt, a.att, a.lse, a.q, a.keys(), layout(d),
                     tiled_shape(d));
  project_backward(ops, d, params, grads, x, s.dq, dkv, dx, s.datt);
}

void TiledExactAttention::reference_forward(const AttentionDims& dims, const StepContext&,
                                            const std::vector<const float*>& params,
                                            const float* x, float* out) const {
  reference::mha_block_forward(dims, window(dims), params, x, out);
}

void TiledExactAttention::reference_backward(const AttentionDims& dims, const StepContext&,
                                             const std::vector<const float*>& params,
                                             const float* x, const float* dout, float* dx,
                                             const std::vector<float*>& dparams) const {
  reference::mha_block_backward(dims, window(dims), params, x, dout, dx, dparams);
}

}  // namespace attnscope
