// Host side shared by the exact tiled-attention family — flash, gqa, sliding_window (and
// mla's attention core) — whose kernels are cl_kernels/attention/flash.cl (gqa.cl,
// sliding_window.cl and mla.cl specialise it) and, with --precision tf32, flash_tf32.cl
// (tensor cores; TiledPrecision below): the tile sizes chosen per device, the launches,
// the analytic cost, and one AttentionVariant implementation (projections → tiled
// attention → output projection) that the three variants parameterise.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/atomic_add.hpp"
#include "model/attention_variant.hpp"

namespace attnscope {

// Tunables of flash.cl (see its top comment): forward: BR queries per work-group, tiles of
// BC keys, TM rows × TN tile columns per work-item; backward (dQ and dK/dV): BB rows per
// work-group and per tile, TMB rows × TNB columns per work-item.
struct FlashTiles {
  int tm = 4;
  int br = 64, bc = 32, tn = 8;
  int bb = 32, tnb = 4;
  int tmb = 4;
  // NVIDIA builds only: -cl-nv-maxrregcount for the program (0: the compiler's choice), so a
  // sweep can trade registers for work-groups per SM (ATTNSCOPE_FLASH_TILES' 8th number).
  // The kernels then leave their work-group size undeclared (work_group_size.cl). On
  // the H200 no cap paid (results/20261203-flash-registers_NVIDIA-H200).
  int max_registers = 0;

  int forward_items() const { return (br / tm) * (bc / tn); }
  int backward_items() const { return (bb / tmb) * (bb / tnb); }
  // "TM,BR,BC,TN,BB,TNB,TMB[,REGS]", as ATTNSCOPE_FLASH_TILES takes it.
  std::string spec() const;
  // Head size padded as the kernels stage it: float4s, a multiple of the column groups.
  int padded_head(int head_size) const;
  // __local bytes of the forward, dQ and dK/dV kernels; the largest of them. fused_dq: the
  // dK/dV kernel also holds dS a second way (flash.cl's FUSED_DQ).
  size_t local_bytes(int head_size, bool fused_dq = false) const;
};

// Tiles that fit the device (local memory, work-group size) for this head size, preferred
// first: on GPUs from 64×32 forward / 32×32 backward tiles with 4×4 / 4×2 register blocks
// down; on CPUs (PoCL, where a work-group is a loop over SIMD lanes and small unrolled
// bodies compile several times faster) 16×8 / 8×8 with 2×4 / 2×2.
// ATTNSCOPE_FLASH_TILES="TM,BR,BC,TN,BB,TNB[,TMB[,REGS]]" (TMB defaults to TM; REGS, 32–255,
// caps the registers of NVIDIA builds, ignored elsewhere) makes those tiles
// the only candidate, for tile sweeps (tools/gpu_flash_tiles.sh) and for running a GPU's
// tiles on PoCL. fused_dq: the tiles must fit the fused backward's dK/dV kernel. Throws
// UsageError for head sizes outside 1..128 and for an override that is malformed or does
// not fit the device.
std::vector<FlashTiles> flash_tile_candidates(const DeviceInfo& device, int head_size,
                                              bool fused_dq = false);
FlashTiles choose_flash_tiles(const DeviceInfo& device, int head_size,
                              bool fused_dq = false);  // the first

// Where Q, K and V rows live (floats): Q in one buffer, K and V in another (or the same).
struct QkvLayout {
  int q_stride = 0, q_offset = 0;
  int kv_stride = 0, k_offset = 0, v_offset = 0;
};

// The kernels index a batch's rows in 32 bits: throws UsageError (naming `variant`) when
// T rows of the layout's widest buffer reach 2^31 floats. Call before allocating.
void check_tiled_rows_fit(const std::string& variant, const QkvLayout& layout, int T);

// Shape of one call of the tiled kernels.
struct TiledShape {
  int B = 1, T = 1, H = 1, head_size = 1;
  int group_size = 1;  // query heads per K/V head
  int window = 0;      // 0: causal only; w > 0: keys i − w < j ≤ i
};

// Number of (query, key) pairs each (batch, head) attends to, and the pairs the kernels'
// tiles actually compute (padding rows and masked parts of tiles included).
struct TiledPairs {
  double needed = 0;         // per (b, h): Σ_i |allowed keys of i|
  double forward_tiles = 0;  // per (b, h): Σ over visited forward tiles of BR·BC
  double dq_tiles = 0;       // per (b, h): Σ over visited dQ tiles of BB·BB
  double dkdv_tiles = 0;     // per (b, h): Σ over visited dK/dV tiles of BB·BB
};
TiledPairs count_tiled_pairs(int T, int window, const FlashTiles& tiles);

// The tiles on a typical GPU (48 KiB of local memory, work-groups up to 1024): what a
// variant's cost() assumes until allocate() has seen the device. Checks the head size.
FlashTiles typical_gpu_flash_tiles(int head_size);

// How the tiled kernels run their products. tf32: on NVIDIA tensor cores with TF32
// operands (<family>_tf32.cl): the forward (<family>_forward_tf32: 64 queries × tiles of
// tf32_forward_key_tile keys) for head sizes that tf32_forward_supports, the dQ and dK/dV
// kernels (<family>_backward_dq_tf32, _dkdv_tf32: 64 rows × tiles of 32) for those that
// tf32_backward_supports; the rest, and the delta and dkdv_sum kernels, are flash.cl's fp32
// kernels, from the same program. tf32x3: the same kernels with fp32 operands split into
// three TF32 products each (SPLIT_TF32, --precision 3xtf32). *_emulated: the same kernels
// with the tensor-core instructions emulated (EMULATE_MMA), for tests on CPU devices only,
// never in production.
enum class TiledPrecision { fp32, tf32, tf32x3, tf32_emulated, tf32x3_emulated };
TiledPrecision tiled_precision(Precision precision);  // Ops' precision → fp32, tf32, tf32x3

// How the dQ/dK/dV kernels get dQ (Ops' AttentionBackward): fused — the dK/dV kernel adds
// it with float atomics (FUSED_DQ in flash.cl and flash_tf32.cl; no dQ kernel), made the way
// `atomics` says (atomic_add.cl: NVIDIA's reductions where the probe proved them, else the
// portable compare-and-swap loop).
struct TiledBackward {
  bool fused = false;
  AtomicAdd atomics = AtomicAdd::compare_and_swap;
  bool operator==(const TiledBackward& o) const { return fused == o.fused && atomics == o.atomics; }
  bool operator!=(const TiledBackward& o) const { return !(*this == o); }
};
TiledBackward tiled_backward(const Ops& ops);
bool tf32_forward_supports(int head_size);            // a multiple of 8, at most 128
bool tf32_backward_supports(int head_size);           // a multiple of 16, at most 64
int tf32_forward_key_tile(int head_size);             // keys per tile: 64 (d ≤ 64) or 32
// flash_tf32.cl's fixed shape (its BQT, ITEMS_T and BKB):
constexpr int kTf32RowBlock = 64;     // rows (queries; keys in dK/dV) per work-group: 4 warps
constexpr int kTf32Items = 128;       // work-items per work-group
constexpr int kTf32BackwardTile = 32;  // backward: rows of the other side per tile

// FLOPs the tiled kernels execute for one call (padding rows and the masked parts of
// visited tiles included): forward QKᵀ and PV per tile; backward the dQ kernel's S, dP, dQ
// and the dK/dV kernel's S, dP, dV, dK. tf32_forward, tf32_backward: those kernels are the
// tensor-core ones (their own tiles, no head padding).
struct TiledFlops {
  double forward = 0, backward = 0;
};
TiledFlops tiled_attention_flops(const TiledShape& shape, const FlashTiles& tiles,
                                 bool tf32_forward = false, bool tf32_backward = false,
                                 bool fused_dq = false);

// The four kernels of one variant's .cl file, built for one head size and group size.
class TiledAttentionKernels {
 public:
  // family: "flash" → cl_kernels/attention/flash.cl, kernels flash_forward, ...; with
  // precision tf32 (and a head size tf32_forward_supports) flash_tf32.cl, kernels
  // flash_forward_tf32 and flash.cl's backward kernels.
  TiledAttentionKernels(Runtime& rt, const std::string& family, const TiledShape& shape,
                        const FlashTiles& tiles, TiledPrecision precision = TiledPrecision::fp32,
                        TiledBackward backward = {});
  // Whether the compiled kernels (their registers) allow the tiles' work-group sizes, and
  // the tf32 kernels' __local memory fits the device.
  bool fits_compiled_limits() const;
  // With the first of flash_tile_candidates() whose compiled kernels (their registers)
  // allow the tiles' work-group sizes.
  static std::unique_ptr<TiledAttentionKernels> for_device(
      Runtime& rt, const std::string& family, const TiledShape& shape,
      TiledPrecision precision = TiledPrecision::fp32, TiledBackward backward = {});
  const FlashTiles& tiles() const { return tiles_; }
  TiledPrecision precision() const { return precision_; }  // as asked
  TiledBackward backward() const { return backward_; }      // as asked
  bool fused_dq() const { return fused_dq_; }  // whether the dK/dV kernel adds dQ
  bool forward_tf32() const { return forward_tf32_; }      // whether the forward is tf32
  bool backward_tf32() const { return backward_tf32_; }    // whether dQ and dK/dV are
  // "split" or "fused": how the backward got dQ.
  std::string backward_form() const { return fused_dq_ ? "fused" : "split"; }
  // "fp32", or "tf32 tensor cores: forward, dQ, dK/dV" (the kernels that are), then, with
  // the fused backward, "; dQ by float atomics (red.global.add.f32)" or "(compare-and-swap
  // loop)": for AttentionVariant::attention_kernels.
  std::string arithmetic() const;
  int head_size() const { return head_size_; }
  int group_size() const { return group_size_; }
  // Floats of backward's per-query-head dK|dV scratch: (B,T,H,2·d) for groups, else 0.
  static size_t dkv_share_floats(const TiledShape& shape);

  // out (B,T,C) and lse (B,H,T) overwritten.
  void forward(const cl::Buffer& out, const cl::Buffer& lse, const cl::Buffer& q,
               const cl::Buffer& kv, const QkvLayout& layout, const TiledShape& shape);
  // dq (layout of q) and dkv (layout of kv; may be dq's buffer) overwritten; delta (B,H,T)
  // and, for groups of query heads, dkv_shares (dkv_share_floats) are scratch. out, lse:
  // what forward wrote.
  void backward(const cl::Buffer& dq, const cl::Buffer& dkv, const cl::Buffer& delta,
                const cl::Buffer& dkv_shares, const cl::Buffer& dout, const cl::Buffer& out, const cl::Buffer& lse,
                const cl::Buffer& q, const cl::Buffer& kv, const QkvLayout& layout,
                const TiledShape& shape);

 private:
  Runtime& rt_;
  FlashTiles tiles_;
  int head_size_, group_size_;
  TiledPrecision precision_;
  TiledBackward backward_;
  bool forward_tf32_, backward_tf32_, fused_dq_;
  cl::Kernel forward_, delta_, dkdv_, dkdv_sum_, dq_;
};

// flash, gqa and sliding_window: x → Q, K, V (projections) → tiled exact attention → O →
// y = O·W_oᵀ + b_o. By default the projection is GPT-2's fused W_qkv (parameters exactly
// baseline's); gqa overrides the projection hooks. Keeps per layer: the projections, O and
// L; backward scratch (dO, dQKV, delta) is shared by all layers of one variant object.
class TiledExactAttention : public AttentionVariant {
 public:
  explicit TiledExactAttention(const AttentionOptions& options);
  ~TiledExactAttention() override;
  void resolve(const AttentionDims& dims) override;
  std::vector<TensorSpec> parameters(const AttentionDims& dims) const override;
  AttentionCost cost(const AttentionDims& dims) const override;

  std::vector<DeviceBufferSpec> device_buffers(const AttentionDims& dims) const override;
  std::unique_ptr<AttentionActivations> allocate(Ops& ops, const AttentionDims& dims) override;
  void forward(const DeviceArgs& args, const cl::Buffer& out) override;
  void backward(const DeviceArgs& args, const DeviceGrads& gradients) override;
  std::string attention_kernels() const override;
  std::string attention_backward() const override;

  void reference_forward(const ReferenceArgs& args, float* out) const override;
  void reference_backward(const ReferenceArgs& args,
                          const ReferenceGrads& gradients) const override;

  // Tiles of the kernels: chosen for the device by allocate(); before that, those of a
  // typical GPU (48 KiB local memory), which cost() then assumes.
  const FlashTiles& tiles() const { return tiles_; }

 protected:
  // Kernel family: cl_kernels/attention/<family>.cl, kernels <family>_*.
  virtual std::string family() const = 0;
  // K/V heads G (H: multi-head) and band width (0: causal only), after resolve().
  virtual int kv_heads(const AttentionDims& dims) const { return dims.H; }
  virtual int window(const AttentionDims& dims) const {
    (void)dims;
    return 0;
  }

  // Projection hooks. The defaults are GPT-2's fused projection: params = {qkvw (3C,C),
  // qkvb, attprojw, attprojb}; Q, K, V live in one (B,T,3C) buffer.
  virtual std::vector<TensorSpec> projection_parameters(const AttentionDims& dims) const;
  // Floats of the buffer holding Q (and K, V when kv_floats is 0) and of the K|V buffer.
  virtual size_t q_floats(const AttentionDims& dims) const;
  virtual size_t kv_floats(const AttentionDims& dims) const;
  virtual QkvLayout layout(const AttentionDims& dims) const;
  // q (and kv) = projections of x.
  virtual void project_forward(Ops& ops, const AttentionDims& dims,
                               const std::vector<cl::Buffer>& params, const cl::Buffer& x,
                               const cl::Buffer& q, const cl::Buffer& kv);
  // dx overwritten, projection grads accumulated, from dq (and dkv). scratch: B·T·C floats.
  virtual void project_backward(Ops& ops, const AttentionDims& dims,
                                const std::vector<cl::Buffer>& params,
                                const std::vector<cl::Buffer>& grads, const cl::Buffer& x,
                                const cl::Buffer& dq, const cl::Buffer& dkv,
                                const cl::Buffer& dx, const cl::Buffer& scratch);
  double projection_flops(const AttentionDims& dims) const;  // forward, 2 per multiply-add

  TiledShape tiled_shape(const AttentionDims& dims) const;

 private:
  struct Scratch;
  FlashTiles tiles_;
  // Whether the kernels run forward / dQ and dK/dV on tensor cores, and whether the dK/dV
  // kernel adds dQ (for cost()).
  bool forward_tf32_ = false, backward_tf32_ = false, fused_dq_ = false;
  std::unique_ptr<TiledAttentionKernels> kernels_;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace attnscope
