// Device-side layers shared by the model and the attention variants: thin wrappers that
// launch the kernels of cl_kernels/*.cl with their analytic cost. Argument order follows
// llm.c: forward(out, ..., inp, params...), backward(dinp, dparams..., dout, saved...).
//
// Accumulation rules (as llm.c's CUDA version): parameter gradients are accumulated
// (+=); matmul_backward overwrites dinp; layernorm_backward and encoder_backward
// accumulate (+=) into dinp / dwte / dwpe, because they add into the residual stream.
#pragma once
#include <cstddef>
#include <functional>
#include <map>

#include "host/runtime/runtime.hpp"
#include "model/atomic_add.hpp"

namespace attnscope {

// How matrix products are computed. fp32: the portable SGEMM (matmul.cl), the default and
// the fallback. tf32: tensor cores (matmul_tf32.cl, NVIDIA compute capability ≥ 8.0),
// operands rounded to TF32 (10 mantissa bits), fp32 accumulation; only after a probe has
// proven the path on the device (model/tf32.hpp). tf32x3 ("3xtf32"): the same tensor cores,
// each operand split into a TF32 part and a TF32 remainder and each product taken as three
// (hi·hi + hi·lo + lo·hi): fp32-accurate products for three times the tensor-core work,
// probed the same way. Under tf32 and 3xtf32 the exact tiled attention uses the matching
// tensor-core kernels where it has them (model/attention/flash_core.hpp).
enum class Precision { fp32, tf32, tf32x3 };
std::string precision_name(Precision precision);  // "fp32", "tf32", "3xtf32"
// "fp32", "tf32" or "3xtf32"; throws UsageError otherwise.
Precision parse_precision(const std::string& name);
// Whether products run on tensor cores (tf32, 3xtf32).
inline bool on_tensor_cores(Precision precision) { return precision != Precision::fp32; }

// How the exact tiled attention's fp32 backward (cl_kernels/attention/flash.cl) gets dQ.
// split: a kernel of its own that recomputes S and dP — seven products a tile pair, every
// sum in a fixed order, bitwise reproducible. fused: FlashAttention-2's order — the dK/dV
// kernel adds each tile's share of dQ with float atomics, five products, but the adds land
// in a run-dependent order. automatic (the default): fused where the device's own float
// atomics passed their probe (NVIDIA's red.global.add.f32), else split — the portable
// compare-and-swap loop is there for `fused` on other devices and for the tests. Variants
// with other kernels ignore it.
enum class AttentionBackward { automatic, split, fused };
std::string attention_backward_name(AttentionBackward backward);  // "auto", "split", "fused"
// "auto", "split" or "fused"; throws UsageError otherwise.
AttentionBackward parse_attention_backward(const std::string& name);

class Ops {
 public:
  // With tf32 or 3xtf32, probes the device first and throws UsageError naming why the
  // path is not available (never a silent fp32 run labelled tf32). Unless
  // AttentionBackward::split, probes which float atomics the device gets
  // (model/atomic_add.hpp) and resolves automatic to split or fused.
  explicit Ops(Runtime& runtime, Precision precision = Precision::fp32,
               AttentionBackward attention_backward = AttentionBackward::automatic);
  Runtime& runtime() { return rt_; }
  Precision precision() const { return precision_; }
  AttentionBackward attention_backward() const { return attention_backward_; }  // split|fused
  // Whether float atomics are NVIDIA's red.global.add.f32 (proven by the probe) rather than
  // the portable compare-and-swap loop, and if not, why (unprobed with split asked for).
  const AtomicAddPath& atomic_add() const { return atomic_add_; }
  // "split", or "fused (red.global.add.f32)" / "fused (compare-and-swap loop)".
  std::string attention_backward_label() const;

  // out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]. tokens: int32 (B,T).
  void encoder_forward(const cl::Buffer& out, const cl::Buffer& tokens, const cl::Buffer& wte,
                       const cl::Buffer& wpe, int B, int T, int C);
  void encoder_backward(const cl::Buffer& dwte, const cl::Buffer& dwpe, const cl::Buffer& dout,
                        const cl::Buffer& tokens, int B, int T, int C);

  // Over N rows of C: out = (inp - mean) * rstd * weight + bias; saves mean, rstd (N).
  void layernorm_forward(const cl::Buffer& out, const cl::Buffer& mean, const cl::Buffer& rstd,
                         const cl::Buffer& inp, const cl::Buffer& weight, const cl::Buffer& bias,
                         int N, int C);
  void layernorm_backward(const cl::Buffer& dinp, const cl::Buffer& dweight,
                          const cl::Buffer& dbias, const cl::Buffer& dout, const cl::Buffer& inp,
                          const cl::Buffer& weight, const cl::Buffer& mean,
                          const cl::Buffer& rstd, int N, int C);

  // out[N,OC] = inp[N,C] · weight[OC,C]ᵀ + bias[OC]; bias may be null.
  void matmul_forward(const cl::Buffer& out, const cl::Buffer& inp, const cl::Buffer& weight,
                      const cl::Buffer* bias, int N, int C, int OC);
  // dinp = dout·weight (overwritten); dweight += doutᵀ·inp; dbias += Σ_n dout (if non-null).
  void matmul_backward(const cl::Buffer& dinp, const cl::Buffer& dweight, const cl::Buffer* dbias,
                       const cl::Buffer& dout, const cl::Buffer& inp, const cl::Buffer& weight,
                       int N, int C, int OC);
  // General batched product used by attention kernels that want a plain GEMM:
  // for each of `batch` slices: C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C,
  // row-major, with element strides between slices. op = transpose when the flag is set.
  struct GemmSpec {
    int M = 0, N = 0, K = 0;
    bool trans_a = false, trans_b = false;
    float alpha = 1.f, beta = 0.f;
    int batch = 1;
    size_t stride_a = 0, stride_b = 0, stride_c = 0;  // floats between slices
    size_t offset_a = 0, offset_b = 0, offset_c = 0;  // floats to the first slice
  };
  void gemm(const GemmSpec& spec, const cl::Buffer& A, const cl::Buffer& B, const cl::Buffer& C);

  // GELU, tanh approximation.
  void gelu_forward(const cl::Buffer& out, const cl::Buffer& inp, size_t n);
  void gelu_backward(const cl::Buffer& dinp, const cl::Buffer& inp, const cl::Buffer& dout, size_t n);

  // out = a + b.
  void residual_forward(const cl::Buffer& out, const cl::Buffer& a, const cl::Buffer& b, size_t n);
  // dst += src.
  void accumulate(const cl::Buffer& dst, const cl::Buffer& src, size_t n);

  // Softmax cross-entropy over the first V of Vp logits per row (N rows), fused with its
  // backward: losses[n] = -log p[n, targets[n]]; logits are overwritten in place by
  // dlogits = (p - onehot) * dloss (dloss = 1/N, the mean). Padded columns get 0.
  void fused_classifier(const cl::Buffer& logits, const cl::Buffer& losses,
                        const cl::Buffer& targets, int N, int V, int Vp);
  // Softmax cross-entropy forward only (validation): losses[n].
  void crossentropy_forward(const cl::Buffer& losses, const cl::Buffer& logits,
                            const cl::Buffer& targets, int N, int V, int Vp);

  // out[0] = Σ grads[i]² over n elements (two-pass reduction on the device).
  void squared_norm(const cl::Buffer& out, const cl::Buffer& grads, size_t n);
  // AdamW with bias correction over n elements; grads scaled by grad_scale first
  // (global-norm clipping: scale = min(1, clip / norm)). weight_decay applies to this
  // range only (the caller passes 0 for biases and layernorm parameters).
  struct AdamW {
    float lr = 6e-4f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
  };
  void adamw_update(const cl::Buffer& params, const cl::Buffer& grads, const cl::Buffer& m,
                    const cl::Buffer& v, size_t n, const AdamW& hp, float weight_decay, int step,
                    const cl::Buffer& grad_scale);
  // grad_scale[0] = min(1, clip / sqrt(norm_sq[0])) (1 when clip <= 0).
  void clip_scale(const cl::Buffer& grad_scale, const cl::Buffer& norm_sq, float clip);

 private:
  // Device scratch kept between calls (reduction partials, the encoder's sorted positions),
  // one buffer per slot, grown on demand. The queue is in order, so a call may reuse what
  // an earlier call's kernels used.
  const cl::Buffer& scratch(int slot, size_t bytes);
  // The scratch slot of split-K partial products, for run_gemm (model/gemm.hpp).
  std::function<const cl::Buffer&(size_t)> gemm_scratch();

  Runtime& rt_;
  Precision precision_;
  AttentionBackward attention_backward_;
  AtomicAddPath atomic_add_;
  std::map<int, DeviceBuffer> scratch_;
};

}  // namespace attnscope
