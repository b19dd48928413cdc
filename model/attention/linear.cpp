#include "model/attention/linear.hpp"

#include <algorithm>

#include "host/error.hpp"
#include "model/attention/variants.hpp"
#include "model/reference/layers.hpp"

namespace attnscope {

namespace {

constexpr const char* kKernelFile = "attention/linear.cl";
constexpr size_t kElementWiseGroup = 64;

size_t activation_floats(const AttentionDims& d) { return size_t(d.B) * d.T * d.C; }
size_t head_rows(const AttentionDims& d) { return size_t(d.B) * d.H * d.T; }

void ensure_size(Runtime& rt, DeviceBuffer& buffer, size_t floats, const std::string& label) {
  if (buffer.floats() < floats) buffer = rt.alloc_floats(floats, label);
}

// The largest tiles (TILE ≤ 32 rows, BLOCK_COLS 8) whose local memory, for the widest
// operand (Dk = d + 1), fits in the device's local memory with room to spare, and whose
// work-group the device allows.
LinearTiles choose_tiles(const DeviceInfo& dev, int chunk, int head_size) {
  LinearTiles t;
  t.tile = std::min(32, chunk);
  const size_t budget = dev.local_mem_bytes - dev.local_mem_bytes / 8;
  while (t.local_bytes(head_size + 1) > budget || t.work_group() > dev.max_work_group_size) {
    if (t.tile > 1)
      t.tile = (t.tile + 1) / 2;
    else if (t.block_cols > 1)
      t.block_cols /= 2;
    else
      throw Error("linear attention with head size " + std::to_string(head_size) +
                  " needs more local memory than " + dev.short_label() + " has");
  }
  return t;
}

// What one launch of linear_causal_product computes (2 FLOPs per multiply-add) and loads,
// following its loops: per work-group and chunk of m sub-tiles, m query tiles (a·state,
// state update) and m(m+1)/2 (query, key) tile pairs (scores, scores·v).
KernelCost causal_product_cost(const LinearTiles& t, double G, int T, int chunk, int Dk, int Dv) {
  double q_tiles = 0, pairs = 0;
  auto add_chunks = [&](int length, int count) {
    const double m = (length + t.tile - 1) / t.tile;
    q_tiles += count * m;
    pairs += count * m * (m + 1) / 2;
  };
  add_chunks(chunk, T / chunk);
  if (T % chunk) add_chunks(T % chunk, 1);
  const double tile = t.tile, cols = t.block_cols;
  const double groups = G * ((Dv + t.block_cols - 1) / t.block_cols);
  const double macs = q_tiles * 2 * tile * Dk * cols + pairs * tile * tile * (Dk + cols);
  const double loads = q_tiles * tile * (2 * Dk + cols) + pairs * tile * (Dk + cols) + T * cols;
  return {2 * groups * macs, sizeof(float) * groups * loads};
}

}  // namespace

size_t LinearTiles::local_bytes(int Dk) const {
  const size_t pitch = size_t(Dk) | 1;
  return sizeof(float) * (2 * tile * pitch + size_t(tile) * block_cols + size_t(tile) * tile +
                          size_t(Dk) * block_cols);
}

std::string LinearTiles::build_options() const {
  return "-DTILE=" + std::to_string(tile) + " -DBLOCK_COLS=" + std::to_string(block_cols);
}

VariantInfo LinearAttention::info() const {
  return {"linear",
          "causal linear attention: phi(Q) S_i / (phi(Q)·z_i + eps) with phi = elu + 1 and "
          "running S = sum phi(K)ᵀV, z = sum phi(K); chunk-wise (masked quadratic form "
          "inside a chunk, running state across chunks)",
          "O(T·d²) time, O(T·d) memory", "--chunk (64)",
          "Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive "
          "Transformers with Linear Attention (arXiv:2006.16236)"};
}

void LinearAttention::resolve(const AttentionDims&) {
  if (options_.chunk < 1)
    throw UsageError("--chunk must be at least 1, got " + std::to_string(options_.chunk));
  tiles_ = LinearTiles{};
  tiles_.tile = std::min(tiles_.tile, options_.chunk);
}

std::string LinearAttention::describe_options() const {
  return "chunk=" + std::to_string(options_.chunk);
}

std::vector<TensorSpec> LinearAttention::parameters(const AttentionDims& dims) const {
  const size_t C = dims.C;
  return {{"qkvw", {3 * C, C}, Init::kNormal, true},
          {"qkvb", {3 * C}, Init::kZero, false},
          {"attprojw", {C, C}, Init::kResidualProjection, true},
          {"attprojb", {C}, Init::kZero, false}};
}

AttentionCost LinearAttention::cost(const AttentionDims& dims) const {
  const double B = dims.B, T = dims.T, C = dims.C, H = dims.H, G = B * H;
  const int d = dims.head_size(), chunk = options_.chunk;
  const double projections = 2 * B * T * C * (3 * C) + 2 * B * T * C * C;
  // The definition: S'_i = S'_{i-1} + φ(K_i)ᵀ[V_i | 1] and φ(Q_i)·S'_i, d·(d+1)
  // multiply-adds each per position and head.
  const double core = 2 * 2 * G * T * d * (d + 1.0);
  const auto fwd = causal_product_cost(tiles_, G, dims.T, chunk, d, d + 1);
  const auto dq = causal_product_cost(tiles_, G, dims.T, chunk, d + 1, d);  // and dK
  const auto dv = causal_product_cost(tiles_, G, dims.T, chunk, d, d);
  AttentionCost c;
  c.model_flops_forward = projections + core;
  c.model_flops_backward = 2 * c.model_flops_forward;
  c.executed_flops_forward = projections + fwd.flops;
  c.executed_flops_backward = 2 * projections + 2 * dq.flops + dv.flops;
  c.saved_bytes = sizeof(float) * (3 * B * T * C + B * T * C + G * T);
  return c;
}

void LinearAttention::build_kernels(Runtime& rt, const AttentionDims& dims) {
  const DeviceInfo& dev = rt.device();
  LinearTiles t = choose_tiles(dev, options_.chunk, dims.head_size());
  for (;;) {  // a compiled kernel may allow fewer work-items than the device
    if (t.build_options() == built_options_) return;
    cl::Kernel product = rt.kernel(kKernelFile, "linear_causal_product", t.build_options());
    if (product.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(dev.device) >= t.work_group()) {
      product_ = product;
      break;
    }
    if (t.tile == 1) throw Error("linear_causal_product cannot run on " + dev.short_label());
    t.tile = (t.tile + 1) / 2;
  }
  tiles_ = t;
  built_options_ = t.build_options();
  features_ = rt.kernel(kKernelFile, "linear_features", built_options_);
  normalize_ = rt.kernel(kKernelFile, "linear_normalize", built_options_);
  output_grad_ = rt.kernel(kKernelFile, "linear_output_grad", built_options_);
  input_grad_ = rt.kernel(kKernelFile, "linear_input_grad", built_options_);
}

void LinearAttention::grow_scratch(Runtime& rt, const AttentionDims& dims) {
  const size_t rows = head_rows(dims), d = dims.head_size(), btc = activation_floats(dims);
  ensure_size(rt, phi_q_, rows * d, "linear phi(Q) scratch");
  ensure_size(rt, phi_k_, rows * d, "linear phi(K) scratch");
  ensure_size(rt, v_ext_, rows * (d + 1), "linear [V|1] scratch");
  ensure_size(rt, ext_, rows * (d + 1), "linear [num|den] / g' scratch");
  ensure_size(rt, datt_, btc, "linear datt scratch");
  ensure_size(rt, dphi_q_, rows * d, "linear dphi(Q) scratch");
  ensure_size(rt, dphi_k_, rows * d, "linear dphi(K) scratch");
  ensure_size(rt, dv_, rows * d, "linear dV scratch");
  ensure_size(rt, dqkv_, 3 * btc, "linear dqkv scratch");
}

std::unique_ptr<AttentionActivations> LinearAttention::allocate(Ops& ops,
                                                                const AttentionDims& dims) {
  Runtime& rt = ops.runtime();
  build_kernels(rt, dims);
  grow_scratch(rt, dims);
  auto acts = std::make_unique<LinearActivations>();
  acts->qkv = rt.alloc_floats(3 * activation_floats(dims), "linear qkv");
  acts->att = rt.alloc_floats(activation_floats(dims), "linear att");
  acts->den = rt.alloc_floats(head_rows(dims), "linear den");
  return acts;
}

// Over the (B, T, C) elements, one work-item each.
void LinearAttention::element_wise(Runtime& rt, cl::Kernel& kernel, const AttentionDims& dims,
                                   double bytes) {
  const size_t group = std::min(kElementWiseGroup, rt.device().max_work_group_size);
  rt.launch(kernel, cl::NDRange(round_up(dims.C, group), dims.T, dims.B),
            cl::NDRange(group, 1, 1), KernelCost{0, bytes});
}

void LinearAttention::features(Runtime& rt, const AttentionDims& dims, const cl::Buffer& qkv) {
  set_args(features_, phi_q_.buffer(), phi_k_.buffer(), v_ext_.buffer(), qkv, dims.T, dims.C, dims.H);
  const double btc = activation_floats(dims);
  element_wise(rt, features_, dims, sizeof(float) * (6 * btc + head_rows(dims)));
}

void LinearAttention::causal_product(Runtime& rt, const AttentionDims& dims, const cl::Buffer& out,
                                     const cl::Buffer& a, const cl::Buffer& b, int Dk,
                                     const cl::Buffer& v, int Dv, int ldv, bool reverse) {
  const LinearTiles& t = tiles_;
  const size_t pitch = size_t(Dk) | 1, G = size_t(dims.B) * dims.H;
  set_args(product_, out, a, b, v, dims.T, Dk, Dv, ldv, options_.chunk, int(reverse),
           cl::Local(sizeof(float) * t.tile * pitch), cl::Local(sizeof(float) * t.tile * pitch),
           cl::Local(sizeof(float) * t.tile * t.block_cols),
           cl::Local(sizeof(float) * t.tile * t.tile),
           cl::Local(sizeof(float) * Dk * t.block_cols));
  const size_t blocks = (Dv + t.block_cols - 1) / t.block_cols;
  rt.launch(product_, cl::NDRange(blocks * t.work_group(), G), cl::NDRange(t.work_group(), 1),
            causal_product_cost(t, double(G), dims.T, options_.chunk, Dk, Dv));
}

void LinearAttention::forward(Ops& ops, const AttentionDims& dims, const StepContext& /*step*/,
                              const std::vector<cl::Buffer>& params, const cl::Buffer& x,
                              const cl::Buffer& out, AttentionActivations& activations) {
  auto& acts = static_cast<LinearActivations&>(activations);
  Runtime& rt = ops.runtime();
  build_kernels(rt, dims);
  const int N = dims.B * dims.T, C = dims.C, d = dims.head_size();
  ops.matmul_forward(acts.qkv, x, params[0], &params[1], N, C, 3 * C);
  features(rt, dims, acts.qkv);
  causal_product(rt, dims, ext_, phi_q_, phi_k_, d, v_ext_, d + 1, d + 1, /*reverse=*/false);
  set_args(normalize_, acts.att.buffer(), acts.den.buffer(), ext_.buffer(), dims.T, C, dims.H);
  const double btc = activation_floats(dims), rows = head_rows(dims);
  element_wise(rt, normalize_, dims, sizeof(float) * (2 * btc + 2 * rows));
  ops.matmul_forward(out, acts.att, params[2], &params[3], N, C, C);
}

void LinearAttention::backward(Ops& ops, const AttentionDims& dims, const StepContext& /*step*/,
                               const std::vector<cl::Buffer>& params,
                               const std::vector<cl::Buffer>& grads, const cl::Buffer& x,
                               const cl::Buffer& dout, const cl::Buffer& dx,
                               AttentionActivations& activations) {
  auto& acts = static_cast<LinearActivations&>(activations);
  Runtime& rt = ops.runtime();
  build_kernels(rt, dims);
  const int N = dims.B * dims.T, C = dims.C, d = dims.head_size();
  const double btc = activation_floats(dims), rows = head_rows(dims);
  ops.matmul_backward(datt_, grads[2], &grads[3], dout, acts.att, params[2], N, C, C);
  features(rt, dims, acts.qkv);
  set_args(output_grad_, ext_.buffer(), datt_.buffer(), acts.att.buffer(), acts.den.buffer(), dims.B, dims.T, C, dims.H);
  rt.launch(output_grad_, cl::NDRange(dims.H, dims.T, dims.B), cl::NullRange,
            KernelCost{0, sizeof(float) * (3 * btc + 2 * rows)});
  // g' = [g | h] pairs with V' = [V | 1]; see linear.cl's header for the three products.
  causal_product(rt, dims, dphi_q_, ext_, v_ext_, d + 1, phi_k_, d, d, /*reverse=*/false);
  causal_product(rt, dims, dphi_k_, v_ext_, ext_, d + 1, phi_q_, d, d, /*reverse=*/true);
  causal_product(rt, dims, dv_, phi_k_, phi_q_, d, ext_, d, d + 1, /*reverse=*/true);
  set_args(input_grad_, dqkv_.buffer(), dphi_q_.buffer(), dphi_k_.buffer(), dv_.buffer(),
           acts.qkv.buffer(), dims.T, C, dims.H);
  element_wise(rt, input_grad_, dims, sizeof(float) * 8 * btc);
  ops.matmul_backward(dx, grads[0], &grads[1], dqkv_, x, params[0], N, C, 3 * C);
}

namespace {

reference::LinearShape linear_shape(const AttentionDims& dims) {
  return {dims.B, dims.T, dims.H, dims.head_size()};
}

// qkv (B,T,3C) and the attention output before projection, att (B,T,C).
void linear_core_forward(std::vector<float>& qkv, std::vector<float>& att,
                         const AttentionDims& dims, const std::vector<const float*>& params,
                         const float* x) {
  const int N = dims.B * dims.T, C = dims.C;
  qkv.resize(size_t(N) * 3 * C);
  att.resize(size_t(N) * C);
  reference::matmul_forward(qkv.data(), x, params[0], params[1], N, C, 3 * C);
  const reference::QKVHeads in = reference::split_qkv(qkv.data(), C);
  reference::linear_attention_forward({att.data(), C}, in.q, in.k, in.v, linear_shape(dims));
}

}  // namespace

void LinearAttention::reference_forward(const AttentionDims& dims, const StepContext& /*step*/,
                                        const std::vector<const float*>& params, const float* x,
                                        float* out) const {
  std::vector<float> qkv, att;
  linear_core_forward(qkv, att, dims, params, x);
  reference::matmul_forward(out, att.data(), params[2], params[3], dims.B * dims.T, dims.C,
                            dims.C);
}

void LinearAttention::reference_backward(const AttentionDims& dims, const StepContext& /*step*/,
                                         const std::vector<const float*>& params, const float* x,
                                         const float* dout, float* dx,
                                         const std::vector<float*>& dparams) const {
  const int N = dims.B * dims.T, C = dims.C;
  std::vector<float> qkv, att;  // recomputed: the reference keeps no state between calls
  linear_core_forward(qkv, att, dims, params, x);
  std::vector<float> datt(size_t(N) * C), dqkv(size_t(N) * 3 * C, 0.f);
  reference::matmul_backward(datt.data(), dparams[2], dparams[3], dout, att.data(), params[2], N,
                             C, C);
  const reference::QKVHeads in = reference::split_qkv(qkv.data(), C);
  const reference::QKVGradHeads grad = reference::split_qkv_grad(dqkv.data(), C);
  reference::linear_attention_backward(grad.q, grad.k, grad.v, {datt.data(), C}, in.q, in.k,
                                       in.v, linear_shape(dims));
  reference::matmul_backward(dx, dparams[0], dparams[1], dqkv.data(), x, params[0], N, C, 3 * C);
}

std::unique_ptr<AttentionVariant> make_linear(const AttentionOptions& options) {
  return std::make_unique<LinearAttention>(options);
}

}  // namespace attnscope
