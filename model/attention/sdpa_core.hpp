// Host side of cl_kernels/attention/sdpa.cl: exact causal softmax attention of H heads
// over (B,T,·) device arrays, forward as one fused kernel that holds each query block's
// score rows on chip, backward recomputing P from the saved row log-sum-exp. The `sdpa`
// variant runs it on the fused qkv projection, `mla` on its up-projected K and V.
#pragma once
#include <cstddef>
#include <string>

#include "host/runtime/runtime.hpp"
#include "model/attention_variant.hpp"

namespace attnscope {

// Where the head vectors of a (B,T,·) device array live: head h of token (b,t) is the
// head_size floats at offset + (b·T + t)·row_stride + h·head_size.
struct DeviceHeads {
  cl::Buffer buffer;
  int offset = 0;
  int row_stride = 0;
};

// sdpa.cl's tile tunables for one program: a work-group of threads_row × threads_col
// work-items owns block_rows() rows (queries; keys in dK/dV) and walks the other side in
// tiles of block_cols() columns. The defaults (32×32 tiles, 4×2 per work-item) were the
// fastest of 21 shapes on an H100 at d = 64, T = 512..2048, for forward and backward
// alike: larger row blocks amortise each staged K/V tile over more queries, which outweighs
// the chunked path's second QKᵀ that their shorter on-chip rows (224 keys in 48 KiB) cost.
struct SdpaTiles {
  int threads_row = 8;
  int threads_col = 16;
  int rows_per_thread = 4;
  int cols_per_thread = 2;

  int block_rows() const { return threads_row * rows_per_thread; }
  int block_cols() const { return threads_col * cols_per_thread; }
  int work_group_size() const { return threads_row * threads_col; }
  std::string build_options(int head_size) const;
  std::string label() const;  // "32x32/8x16"
  // __local bytes of the forward kernel's own arrays (the score rows come on top).
  size_t forward_local_bytes(int head_size) const;
  // __local bytes of the larger backward kernel (dK/dV).
  size_t backward_local_bytes(int head_size) const;
  // __local bytes of a score buffer holding `keys` columns of the block's rows.
  size_t score_bytes(int keys) const;
};

struct SdpaTuning {
  SdpaTiles tiles;             // preferred; shrunk until they fit the device
  size_t local_mem_limit = 0;  // __local bytes to plan for; 0 = CL_DEVICE_LOCAL_MEM_SIZE
};

// What runs for one head size on one device.
struct SdpaPlan {
  SdpaTiles forward, backward;
  // Keys of one on-chip score chunk (a multiple of forward.block_cols()): a query block
  // whose causal row is at most this long takes the one-pass path, longer ones the
  // two-pass chunked path.
  int chunk_keys = 0;
};

// The plan for `local_mem_bytes` of __local memory and work-groups of at most
// `max_work_group_size`: the tuning's tiles, shrunk (columns first) until each kernel
// fits, and the longest score chunk that fits beside the forward's own arrays. Throws
// Error when even the smallest tiles do not fit.
SdpaPlan plan_sdpa(size_t local_mem_bytes, size_t max_work_group_size, int head_size,
                   const SdpaTuning& tuning);
// The plan on a typical GPU (48 KiB of __local memory, default tuning): what cost()
// assumes before allocate() has met the real device.
SdpaPlan typical_gpu_sdpa_plan(int head_size);

// FLOPs the kernels execute for one layer (2 per multiply-add over whole tiles, masked
// pairs and recomputed scores included): the forward (QKᵀ twice on the chunked path, PV),
// the backward (D, then S and dP in both the dQ and the dK/dV kernel, dQ, dK, dV).
double sdpa_forward_flops(const SdpaPlan& plan, const AttentionDims& dims);
double sdpa_backward_flops(const SdpaPlan& plan, const AttentionDims& dims);
// FLOPs the definition needs: causal pairs only, QKᵀ and PV forward, twice that backward.
double exact_attention_model_flops_forward(const AttentionDims& dims);

class SdpaCore {
 public:
  // Builds kernel_file (cl_kernels/attention/sdpa.cl, or a variant's file that includes
  // it) for this head size, through the runtime's program cache.
  SdpaCore(Runtime& runtime, const std::string& kernel_file, int head_size,
           const SdpaTuning& tuning = {});
  const SdpaPlan& plan() const { return plan_; }
  int head_size() const { return head_size_; }

  // out = softmax_row(Q Kᵀ/√d, causal) V per (batch, head); lse (B,H,T) = the rows'
  // log Σ_j exp(S_ij). Every element of out's heads and of lse is written.
  void forward(const AttentionDims& dims, const DeviceHeads& out, const cl::Buffer& lse,
               const DeviceHeads& q, const DeviceHeads& k, const DeviceHeads& v);
  // dq, dk, dv overwritten (they may be views into one buffer). delta: B·H·T floats of
  // scratch. out and lse as forward left them.
  void backward(const AttentionDims& dims, const DeviceHeads& dq, const DeviceHeads& dk,
                const DeviceHeads& dv, const cl::Buffer& delta, const DeviceHeads& dout,
                const DeviceHeads& out, const cl::Buffer& lse, const DeviceHeads& q,
                const DeviceHeads& k, const DeviceHeads& v);

 private:
  void check_dims(const AttentionDims& dims) const;
  Runtime& rt_;
  int head_size_;
  SdpaPlan plan_;
  cl::Kernel forward_, delta_, dq_, dkv_;
};

}  // namespace attnscope
