#include "model/attention/baseline.hpp"

#include <algorithm>
#include <cmath>

#include "host/runtime/error.hpp"
#include "model/attention/common_reference.hpp"

namespace attnscope {

namespace {

constexpr const char* kKernelFile = "attention/baseline.cl";
constexpr size_t kSoftmaxWorkGroup = 128;  // preferred; halved to fit the device

size_t floats_per_head_tensor(const AttentionDims& d) { return size_t(d.B) * d.T * d.C; }
size_t score_floats(const AttentionDims& d) { return size_t(d.B) * d.H * d.T * d.T; }

// One GEMM per (b, h) over per-head matrices laid out (.., B, H, T, ..) contiguously.
Ops::GemmSpec per_head_gemm(const AttentionDims& d, int M, int N, int K, bool trans_a,
                            bool trans_b) {
  Ops::GemmSpec g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.batch = d.B * d.H;
  return g;
}

}  // namespace

VariantInfo BaselineAttention::info() const {
  return {"baseline",
          "GPT-2 eager attention: scores QKᵀ/√d materialised as (B,H,T,T), causal masked "
          "softmax, PV; separate kernels",
          "O(T²·d) FLOPs, O(T²) memory per head",
          "Vaswani et al. 2017, Attention Is All You Need; Radford et al. 2019, Language "
          "Models are Unsupervised Multitask Learners (GPT-2)"};
}

std::vector<TensorSpec> BaselineAttention::parameters(const AttentionDims& dims) const {
  const size_t C = dims.C;
  return {{"qkvw", {3 * C, C}, Init::kNormal, true},
          {"qkvb", {3 * C}, Init::kZero, false},
          {"attprojw", {C, C}, Init::kResidualProjection, true},
          {"attprojb", {C}, Init::kZero, false}};
}

AttentionCost BaselineAttention::cost(const AttentionDims& dims) const {
  const double B = dims.B, T = dims.T, C = dims.C, H = dims.H, d = dims.head_size();
  const double projections = 2 * B * T * C * (3 * C) + 2 * B * T * C * C;
  // QKᵀ and PV: one multiply-add per (query, key, channel) each. The definition needs
  // the causal pairs j ≤ i; the GEMMs compute all T² of them.
  const double causal_pairs = B * H * T * (T + 1) / 2, all_pairs = B * H * T * T;
  AttentionCost c;
  c.model_flops_forward = projections + 2 * 2 * d * causal_pairs;
  c.executed_flops_forward = projections + 2 * 2 * d * all_pairs;
  c.model_flops_backward = 2 * c.model_flops_forward;
  c.executed_flops_backward = 2 * c.executed_flops_forward;
  c.saved_bytes = sizeof(float) * (3 * B * T * C + B * H * T * T + B * T * C);
  return c;
}

void BaselineAttention::build_kernels(Runtime& rt) {
  if (softmax_wg_ != 0) return;
  const DeviceInfo& dev = rt.device();
  size_t wg = kSoftmaxWorkGroup;
  // The reduction buffer takes wg floats of local memory; leave room for the driver.
  while (wg > 1 && (wg > dev.max_work_group_size || wg * sizeof(float) > dev.local_mem_bytes / 2))
    wg /= 2;
  // A kernel's own limit can be below the device's; halve until both softmax kernels fit.
  for (;; wg /= 2) {
    const std::string options = "-DSOFTMAX_WG=" + std::to_string(wg);
    softmax_forward_ = rt.kernel(kKernelFile, "causal_softmax_forward", options);
    softmax_backward_ = rt.kernel(kKernelFile, "causal_softmax_backward", options);
    const size_t fits = std::min(
        softmax_forward_.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(dev.device),
        softmax_backward_.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(dev.device));
    if (wg <= fits) {
      split_heads_ = rt.kernel(kKernelFile, "split_heads", options);
      merge_heads_ = rt.kernel(kKernelFile, "merge_heads", options);
      softmax_wg_ = wg;
      return;
    }
    if (wg == 1) throw Error("baseline softmax kernels cannot run on " + dev.short_label());
  }
}

void BaselineAttention::grow_scratch(Runtime& rt, const AttentionDims& dims) {
  const size_t btc = floats_per_head_tensor(dims);
  ensure_floats(rt, qkv_, 3 * btc, "baseline qkv/dqkv scratch");
  ensure_floats(rt, heads_, btc, "baseline O/dO heads scratch");
  ensure_floats(rt, datt_, btc, "baseline datt scratch");
  ensure_floats(rt, dqkvr_, 3 * btc, "baseline dqkvr scratch");
  ensure_floats(rt, dprobs_, score_floats(dims), "baseline dP scratch");
}

std::vector<DeviceBufferSpec> BaselineAttention::device_buffers(const AttentionDims& dims) const {
  const size_t btc = floats_per_head_tensor(dims), scores = score_floats(dims);
  return {layer_floats("baseline qkvr", 3 * btc),
          layer_floats("baseline P", scores),
          layer_floats("baseline att", btc),
          shared_floats("baseline qkv/dqkv scratch", 3 * btc),
          shared_floats("baseline O/dO heads scratch", btc),
          shared_floats("baseline datt scratch", btc),
          shared_floats("baseline dqkvr scratch", 3 * btc),
          shared_floats("baseline dP scratch", scores)};
}

std::unique_ptr<AttentionActivations> BaselineAttention::allocate(Ops& ops,
                                                                  const AttentionDims& dims) {
  Runtime& rt = ops.runtime();
  build_kernels(rt);
  grow_scratch(rt, dims);
  auto acts = std::make_unique<BaselineActivations>();
  acts->qkvr = rt.alloc_floats(3 * floats_per_head_tensor(dims), "baseline qkvr");
  acts->probs = rt.alloc_floats(score_floats(dims), "baseline P");
  acts->att = rt.alloc_floats(floats_per_head_tensor(dims), "baseline att");
  return acts;
}

// split_heads or merge_heads over parts tensors of (B, T, C): a float4 per work-item when
// the head size allows (every head's row then starts 16-byte aligned), else a float.
void BaselineAttention::permute_heads(Runtime& rt, cl::Kernel& kernel, const cl::Buffer& out,
                                      const cl::Buffer& in, const AttentionDims& dims, int parts) {
  const size_t n = size_t(parts) * floats_per_head_tensor(dims);
  if (n >= (size_t(1) << 32))
    throw Error("baseline attention: a (B, T, " + std::to_string(parts) + "·C) tensor of " +
                std::to_string(n) + " floats is beyond its 32-bit head permutation");
  const cl_uint vec = dims.head_size() % 4 == 0 ? 4 : 1;
  set_args(kernel, out, in, cl_uint(dims.B), cl_uint(dims.T), cl_uint(dims.H),
           cl_uint(dims.head_size()), cl_uint(parts), vec);
  rt.launch(kernel, cl::NDRange(n / vec), cl::NullRange, KernelCost{0, 2.0 * n * sizeof(float)});
}

void BaselineAttention::split_heads(Runtime& rt, const cl::Buffer& out, const cl::Buffer& in,
                                    const AttentionDims& dims, int parts) {
  permute_heads(rt, split_heads_, out, in, dims, parts);
}

void BaselineAttention::merge_heads(Runtime& rt, const cl::Buffer& out, const cl::Buffer& in,
                                    const AttentionDims& dims, int parts) {
  permute_heads(rt, merge_heads_, out, in, dims, parts);
}

// Element-wise work counts no FLOPs (VARIANTS.md); bytes: the (B,H,T,T) tensors once each.
void BaselineAttention::softmax_forward(Runtime& rt, const cl::Buffer& att,
                                        const AttentionDims& dims) {
  const size_t rows = size_t(dims.B) * dims.H * dims.T;
  set_args(softmax_forward_, att, dims.T);
  rt.launch(softmax_forward_, cl::NDRange(rows * softmax_wg_), cl::NDRange(softmax_wg_),
            KernelCost{0, 2.0 * score_floats(dims) * sizeof(float)});
}

void BaselineAttention::softmax_backward(Runtime& rt, const cl::Buffer& datt,
                                         const cl::Buffer& att, const AttentionDims& dims) {
  const size_t rows = size_t(dims.B) * dims.H * dims.T;
  set_args(softmax_backward_, datt, att, dims.T);
  rt.launch(softmax_backward_, cl::NDRange(rows * softmax_wg_), cl::NDRange(softmax_wg_),
            KernelCost{0, 3.0 * score_floats(dims) * sizeof(float)});
}

void BaselineAttention::forward(const DeviceArgs& args, const cl::Buffer& out) {
  const auto& [ops, dims, step, params, x, activations] = args;
  auto& acts = static_cast<BaselineActivations&>(activations);
  Runtime& rt = ops.runtime();
  const int N = dims.B * dims.T, C = dims.C, T = dims.T, d = dims.head_size();
  const size_t part = floats_per_head_tensor(dims), td = size_t(T) * d, tt = size_t(T) * T;

  ops.matmul_forward(qkv_, x, params[0], &params[1], N, C, 3 * C);
  split_heads(rt, acts.qkvr, qkv_, dims, 3);

  Ops::GemmSpec scores = per_head_gemm(dims, T, T, d, false, true);  // S = Q Kᵀ / √d
  scores.alpha = float(1.0 / std::sqrt(double(d)));
  scores.stride_a = scores.stride_b = td;
  scores.stride_c = tt;
  scores.offset_b = part;
  ops.gemm(scores, acts.qkvr, acts.qkvr, acts.probs);
  softmax_forward(rt, acts.probs, dims);

  Ops::GemmSpec pv = per_head_gemm(dims, T, d, T, false, false);  // O = P V
  pv.stride_a = tt;
  pv.stride_b = pv.stride_c = td;
  pv.offset_b = 2 * part;
  ops.gemm(pv, acts.probs, acts.qkvr, heads_);
  merge_heads(rt, acts.att, heads_, dims, 1);

  ops.matmul_forward(out, acts.att, params[2], &params[3], N, C, C);
}

void BaselineAttention::backward(const DeviceArgs& args, const DeviceGrads& gradients) {
  const auto& [ops, dims, step, params, x, activations] = args;
  const auto& [dout, dx, grads] = gradients;
  auto& acts = static_cast<BaselineActivations&>(activations);
  Runtime& rt = ops.runtime();
  const int N = dims.B * dims.T, C = dims.C, T = dims.T, d = dims.head_size();
  const size_t part = floats_per_head_tensor(dims), td = size_t(T) * d, tt = size_t(T) * T;

  ops.matmul_backward(datt_, grads[2], &grads[3], dout, acts.att, params[2], N, C, C);
  split_heads(rt, heads_, datt_, dims, 1);  // dO per head

  Ops::GemmSpec dp = per_head_gemm(dims, T, T, d, false, true);  // dP = dO Vᵀ
  dp.stride_a = dp.stride_b = td;
  dp.stride_c = tt;
  dp.offset_b = 2 * part;
  ops.gemm(dp, heads_, acts.qkvr, dprobs_);

  Ops::GemmSpec dv = per_head_gemm(dims, T, d, T, true, false);  // dV = Pᵀ dO
  dv.stride_a = tt;
  dv.stride_b = dv.stride_c = td;
  dv.offset_c = 2 * part;
  ops.gemm(dv, acts.probs, heads_, dqkvr_);

  softmax_backward(rt, dprobs_, acts.probs, dims);  // dP → dS

  const float scale = float(1.0 / std::sqrt(double(d)));
  Ops::GemmSpec dq = per_head_gemm(dims, T, d, T, false, false);  // dQ = dS K / √d
  dq.alpha = scale;
  dq.stride_a = tt;
  dq.stride_b = dq.stride_c = td;
  dq.offset_b = part;
  ops.gemm(dq, dprobs_, acts.qkvr, dqkvr_);

  Ops::GemmSpec dk = per_head_gemm(dims, T, d, T, true, false);  // dK = dSᵀ Q / √d
  dk.alpha = scale;
  dk.stride_a = tt;
  dk.stride_b = dk.stride_c = td;
  dk.offset_c = part;
  ops.gemm(dk, dprobs_, acts.qkvr, dqkvr_);

  merge_heads(rt, qkv_, dqkvr_, dims, 3);  // dqkv
  ops.matmul_backward(dx, grads[0], &grads[1], qkv_, x, params[0], N, C, 3 * C);
}

void BaselineAttention::reference_forward(const ReferenceArgs& args, float* out) const {
  const auto& [dims, step, params, x] = args;
  reference::mha_block_forward(dims, /*window=*/0, params, x, out);
}

void BaselineAttention::reference_backward(const ReferenceArgs& args,
                                           const ReferenceGrads& gradients) const {
  const auto& [dims, step, params, x] = args;
  const auto& [dout, dx, dparams] = gradients;
  reference::mha_block_backward(dims, /*window=*/0, params, x, dout, dx, dparams);
}

std::unique_ptr<AttentionVariant> make_baseline(const AttentionOptions& options) {
  return std::make_unique<BaselineAttention>(options);
}

}  // namespace attnscope
