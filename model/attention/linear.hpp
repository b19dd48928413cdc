// linear: causal linear attention (Katharopoulos et al. 2020), VARIANTS.md §linear,
// computed chunk-wise (cl_kernels/attention/linear.cl explains the algorithm). Declared
// here so the tests can reach the CPU reference of the core and what a layer keeps.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/attention/common_reference.hpp"
#include "model/attention_variant.hpp"

namespace attnscope {

// What one layer keeps from forward for backward. φQ, φK and V' are recomputed from qkv.
struct LinearActivations : AttentionActivations {
  DeviceBuffer qkv;  // (B, T, 3C): Q | K | V before φ — φ'(Q), φ'(K) and V in backward
  DeviceBuffer att;  // (B, T, C): O, heads merged — the output projection's input, dO·O
  DeviceBuffer den;  // (B, H, T): φ(Q_i)·z_i + ε
};

// linear.cl's tunables for one device and head size d (see the kernel file).
struct LinearTiles {
  int head_size = 64;
  int tile = 32;
  int cols_per_item = 8;
  int state_rows = 16;
  int col_groups() const { return (head_size + cols_per_item) / cols_per_item; }
  int block_cols() const { return col_groups() * cols_per_item; }  // ≥ d + 1
  int state_iters() const { return (head_size + tile) / tile; }    // ⌈(d + 1) / tile⌉
  size_t work_group() const { return size_t(tile) * col_groups(); }
  size_t local_bytes() const;  // linear_chunk_output's, the largest
  std::string build_options() const;
};

class LinearAttention : public AttentionVariant {
 public:
  using AttentionVariant::AttentionVariant;

  VariantInfo info() const override;
  void resolve(const AttentionDims& dims) override;
  std::vector<TensorSpec> parameters(const AttentionDims& dims) const override;
  AttentionCost cost(const AttentionDims& dims) const override;

  std::vector<DeviceBufferSpec> device_buffers(const AttentionDims& dims) const override;
  std::unique_ptr<AttentionActivations> allocate(Ops& ops, const AttentionDims& dims) override;
  void forward(const DeviceArgs& args, const cl::Buffer& out) override;
  void backward(const DeviceArgs& args, const DeviceGrads& gradients) override;

  void reference_forward(const ReferenceArgs& args, float* out) const override;
  void reference_backward(const ReferenceArgs& args,
                          const ReferenceGrads& gradients) const override;

  // The tiles allocate() chose (the defaults before that).
  const LinearTiles& tiles() const { return tiles_; }

 private:
  void build_kernels(Runtime& rt, const AttentionDims& dims);
  void grow_scratch(Runtime& rt, const AttentionDims& dims);
  void features(Runtime& rt, const AttentionDims& dims, const cl::Buffer& qkv);
  void causal_product(Runtime& rt, const AttentionDims& dims, const cl::Buffer& out,
                      const cl::Buffer& a, const cl::Buffer& b, int Dk, const cl::Buffer& v, int Dv,
                      int ldv, bool reverse);
  void element_wise(Runtime& rt, cl::Kernel& kernel, const AttentionDims& dims, double bytes);

  LinearTiles tiles_;
  std::string built_options_;  // the tiles' build options the kernels below came from
  cl::Kernel chunk_states_, state_scan_, chunk_output_;
  cl::Kernel features_, normalize_, output_grad_, input_grad_;

  // Transient buffers shared by all layers (layers run one at a time on the in-order
  // queue), sized for the largest dims allocate() has seen. (G,T,·) with G = B·H.
  DeviceBuffer phi_q_, phi_k_;         // (G,T,d)
  DeviceBuffer v_ext_;                 // (G,T,d+1): [V | 1]
  DeviceBuffer ext_;                   // (G,T,d+1): forward [num | den − ε]; backward g'
  DeviceBuffer datt_;                  // (B,T,C)
  DeviceBuffer dphi_q_, dphi_k_, dv_;  // (G,T,d)
  DeviceBuffer dqkv_;                  // (B,T,3C)
  DeviceBuffer states_;                // (G,⌈T/c⌉,Dk,Dv): one product's per-chunk states
};

namespace reference {

struct LinearShape {
  int B = 1, T = 1, H = 1, head_size = 1;
};

// VARIANTS.md's recurrence, literally: per (b, h), running S and z in double.
void linear_attention_forward(const Heads& out, const ConstHeads& q, const ConstHeads& k,
                              const ConstHeads& v, const LinearShape& shape);
// Its exact gradient; dq, dk, dv ACCUMULATE (+=), as exact_attention_backward's.
void linear_attention_backward(const Heads& dq, const Heads& dk, const Heads& dv,
                               const ConstHeads& dout, const ConstHeads& q, const ConstHeads& k,
                               const ConstHeads& v, const LinearShape& shape);

}  // namespace reference

}  // namespace attnscope
