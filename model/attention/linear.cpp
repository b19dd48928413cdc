#include "model/attention/linear.hpp"

#include <algorithm>

#include "host/runtime/error.hpp"
#include "model/reference/layers.hpp"

namespace attnscope {

namespace {

constexpr const char* kKernelFile = "attention/linear.cl";
constexpr size_t kElementWiseGroup = 64;

size_t activation_floats(const AttentionDims& d) { return size_t(d.B) * d.T * d.C; }
size_t head_rows(const AttentionDims& d) { return size_t(d.B) * d.H * d.T; }

size_t chunk_count(int T, int chunk) { return (size_t(T) + chunk - 1) / chunk; }

// The tiles before a device is known: a sub-tile of 32 rows, or the chunk if shorter.
LinearTiles default_tiles(int chunk, int head_size) {
  LinearTiles t;
  t.head_size = head_size;
  t.tile = std::min(t.tile, chunk);
  return t;
}

// The largest sub-tile (TILE ≤ 32 rows, at most the chunk) whose local memory fits in the
// device's with room to spare and whose work-group the device allows.
LinearTiles choose_tiles(const DeviceInfo& dev, int chunk, int head_size) {
  LinearTiles t = default_tiles(chunk, head_size);
  const size_t budget = dev.local_mem_bytes - dev.local_mem_bytes / 8;
  while (t.local_bytes() > budget || t.work_group() > dev.max_work_group_size) {
    if (t.tile == 1)
      throw Error("linear attention with head size " + std::to_string(head_size) +
                  " needs more local memory or work-items than " + dev.short_label() + " has");
    t.tile = (t.tile + 1) / 2;
  }
  return t;
}

// What one causal product's three kernels compute (2 FLOPs per multiply-add, padding
// included) and move, following their loops: per chunk of m sub-tiles, the state
// (m·TILE rows × padded state rows × BLOCK_COLS), m query tiles (a·S) and m(m+1)/2
// (query, key) tile pairs (scores, scores·v). The scan only adds.
struct ProductCost {
  KernelCost states, scan, output;
  double flops() const { return states.flops + output.flops; }
};

ProductCost causal_product_cost(const LinearTiles& t, double G, int T, int chunk, int Dk, int Dv) {
  double tiles = 0, pairs = 0;
  auto add_chunks = [&](int length, int count) {
    const double m = (length + t.tile - 1) / t.tile;
    tiles += count * m;
    pairs += count * m * (m + 1) / 2;
  };
  add_chunks(chunk, T / chunk);
  if (T % chunk) add_chunks(T % chunk, 1);
  const double tile = t.tile, cols = t.block_cols(), state = double(Dk) * Dv;
  const double n_chunks = chunk_count(T, chunk), f = sizeof(float);
  ProductCost c;
  c.states = {2 * G * tiles * tile * (t.state_iters() * tile) * cols,
              f * G * (double(T) * (Dk + Dv) + n_chunks * state)};
  c.scan = {0, 2 * f * G * n_chunks * state};
  c.output = {2 * G * (tiles * tile * Dk * cols + pairs * tile * tile * (Dk + cols)),
              f * G * (tiles * (tile * Dk + state) + pairs * tile * (Dk + Dv) + double(T) * Dv)};
  return c;
}

}  // namespace

size_t LinearTiles::local_bytes() const {
  const size_t pitch = size_t(head_size + 1) | 1;
  return sizeof(float) * (2 * tile * pitch + size_t(tile) * block_cols() + size_t(tile) * tile +
                          size_t(state_rows) * block_cols());
}

std::string LinearTiles::build_options() const {
  return "-DHEAD_SIZE=" + std::to_string(head_size) + " -DTILE=" + std::to_string(tile) +
         " -DCOLS_PER_ITEM=" + std::to_string(cols_per_item) +
         " -DSTATE_ROWS=" + std::to_string(state_rows);
}

VariantInfo LinearAttention::info() const {
  return {"linear",
          "causal linear attention: phi(Q) S_i / (phi(Q)·z_i + eps) with phi = elu + 1 and "
          "running S = sum phi(K)ᵀV, z = sum phi(K); chunk-wise (masked quadratic form "
          "inside a chunk, running state across chunks)",
          "O(T·d²) time, O(T·d) memory",
          "Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive "
          "Transformers with Linear Attention (arXiv:2006.16236)",
          {{"chunk", 64, "chunk length"}}};
}

void LinearAttention::resolve(const AttentionDims& dims) {
  if (option("chunk") < 1)
    throw UsageError("--chunk must be at least 1, got " + std::to_string(option("chunk")));
  tiles_ = default_tiles(option("chunk"), dims.head_size());
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
  const int d = dims.head_size(), chunk = option("chunk");
  const double projections = 2 * B * T * C * (3 * C) + 2 * B * T * C * C;
  // The definition: S'_i = S'_{i-1} + φ(K_i)ᵀ[V_i | 1] and φ(Q_i)·S'_i, d·(d+1)
  // multiply-adds each per position and head.
  const double core = 2 * 2 * G * T * d * (d + 1.0);
  const LinearTiles t = tiles_.head_size == d ? tiles_ : default_tiles(chunk, d);
  const auto fwd = causal_product_cost(t, G, dims.T, chunk, d, d + 1);
  const auto dq = causal_product_cost(t, G, dims.T, chunk, d + 1, d);  // and dK
  const auto dv = causal_product_cost(t, G, dims.T, chunk, d, d);
  AttentionCost c;
  c.model_flops_forward = projections + core;
  c.model_flops_backward = 2 * c.model_flops_forward;
  c.executed_flops_forward = projections + fwd.flops();
  c.executed_flops_backward = 2 * projections + 2 * dq.flops() + dv.flops();
  c.saved_bytes = sizeof(float) * (3 * B * T * C + B * T * C + G * T);
  return c;
}

void LinearAttention::build_kernels(Runtime& rt, const AttentionDims& dims) {
  const DeviceInfo& dev = rt.device();
  LinearTiles t = choose_tiles(dev, option("chunk"), dims.head_size());
  for (;;) {  // a compiled kernel may allow fewer work-items than the device
    const std::string options = t.build_options();
    if (options == built_options_) return;
    cl::Kernel states = rt.kernel(kKernelFile, "linear_chunk_states", options);
    cl::Kernel output = rt.kernel(kKernelFile, "linear_chunk_output", options);
    auto allows = [&](const cl::Kernel& k) {
      return k.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(dev.device) >= t.work_group();
    };
    if (allows(states) && allows(output)) {
      chunk_states_ = states, chunk_output_ = output;
      break;
    }
    if (t.tile == 1) throw Error("linear attention kernels cannot run on " + dev.short_label());
    t.tile = (t.tile + 1) / 2;
  }
  if (size_t(t.head_size) > dev.max_work_group_size)
    throw Error("linear attention needs work-groups of the head size (" +
                std::to_string(t.head_size) + ") on " + dev.short_label());
  tiles_ = t;
  built_options_ = t.build_options();
  state_scan_ = rt.kernel(kKernelFile, "linear_state_scan", built_options_);
  features_ = rt.kernel(kKernelFile, "linear_features", built_options_);
  normalize_ = rt.kernel(kKernelFile, "linear_normalize", built_options_);
  output_grad_ = rt.kernel(kKernelFile, "linear_output_grad", built_options_);
  input_grad_ = rt.kernel(kKernelFile, "linear_input_grad", built_options_);
}

void LinearAttention::grow_scratch(Runtime& rt, const AttentionDims& dims) {
  const size_t rows = head_rows(dims), d = dims.head_size(), btc = activation_floats(dims);
  ensure_floats(rt, phi_q_, rows * d, "linear phi(Q) scratch");
  ensure_floats(rt, phi_k_, rows * d, "linear phi(K) scratch");
  ensure_floats(rt, v_ext_, rows * (d + 1), "linear [V|1] scratch");
  ensure_floats(rt, ext_, rows * (d + 1), "linear [num|den] / g' scratch");
  ensure_floats(rt, datt_, btc, "linear datt scratch");
  ensure_floats(rt, dphi_q_, rows * d, "linear dphi(Q) scratch");
  ensure_floats(rt, dphi_k_, rows * d, "linear dphi(K) scratch");
  ensure_floats(rt, dv_, rows * d, "linear dV scratch");
  ensure_floats(rt, dqkv_, 3 * btc, "linear dqkv scratch");
  const size_t heads = size_t(dims.B) * dims.H;
  ensure_floats(rt, states_, heads * chunk_count(dims.T, option("chunk")) * d * (d + 1),
              "linear per-chunk states scratch");
}

std::vector<DeviceBufferSpec> LinearAttention::device_buffers(const AttentionDims& dims) const {
  const size_t rows = head_rows(dims), d = dims.head_size(), btc = activation_floats(dims);
  const size_t states = size_t(dims.B) * dims.H * chunk_count(dims.T, option("chunk")) * d * (d + 1);
  return {layer_floats("linear qkv", 3 * btc), layer_floats("linear att", btc),
          layer_floats("linear den", rows), shared_floats("linear phi(Q) scratch", rows * d),
          shared_floats("linear phi(K) scratch", rows * d), shared_floats("linear [V|1] scratch", rows * (d + 1)),
          shared_floats("linear [num|den] / g' scratch", rows * (d + 1)), shared_floats("linear datt scratch", btc),
          shared_floats("linear dphi(Q) scratch", rows * d), shared_floats("linear dphi(K) scratch", rows * d),
          shared_floats("linear dV scratch", rows * d), shared_floats("linear dqkv scratch", 3 * btc),
          shared_floats("linear per-chunk states scratch", states)};
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
  rt.launch(kernel, cl::NDRange(round_up(dims.C, group), dims.T, dims.B), cl::NDRange(group, 1, 1),
            KernelCost{0, bytes});
}

void LinearAttention::features(Runtime& rt, const AttentionDims& dims, const cl::Buffer& qkv) {
  set_args(features_, phi_q_.buffer(), phi_k_.buffer(), v_ext_.buffer(), qkv, dims.T, dims.C,
           dims.H);
  const double btc = activation_floats(dims);
  element_wise(rt, features_, dims, sizeof(float) * (6 * btc + head_rows(dims)));
}

void LinearAttention::causal_product(Runtime& rt, const AttentionDims& dims, const cl::Buffer& out,
                                     const cl::Buffer& a, const cl::Buffer& b, int Dk,
                                     const cl::Buffer& v, int Dv, int ldv, bool reverse) {
  const LinearTiles& t = tiles_;
  const int T = dims.T, chunk = option("chunk");
  const size_t G = size_t(dims.B) * dims.H, n_chunks = chunk_count(T, chunk);
  const size_t tile_bytes = sizeof(float) * t.tile * (size_t(Dk) | 1);
  const size_t block_bytes = sizeof(float) * t.tile * t.block_cols();
  const ProductCost cost = causal_product_cost(t, double(G), T, chunk, Dk, Dv);
  const cl::NDRange chunks(t.work_group(), n_chunks, G), group(t.work_group(), 1, 1);

  set_args(chunk_states_, states_.buffer(), b, v, T, Dk, Dv, ldv, chunk, cl::Local(tile_bytes),
           cl::Local(block_bytes));
  rt.launch(chunk_states_, chunks, group, cost.states);
  const size_t scan_group = std::min<size_t>(64, rt.device().max_work_group_size);
  set_args(state_scan_, states_.buffer(), int(n_chunks), Dk * Dv, int(reverse));
  rt.launch(state_scan_, cl::NDRange(round_up(size_t(Dk) * Dv, scan_group), G),
            cl::NDRange(scan_group, 1), cost.scan);
  set_args(chunk_output_, out, a, b, v, states_.buffer(), T, Dk, Dv, ldv, chunk, int(reverse),
           cl::Local(tile_bytes), cl::Local(tile_bytes), cl::Local(block_bytes),
           cl::Local(sizeof(float) * t.tile * t.tile),
           cl::Local(sizeof(float) * t.state_rows * t.block_cols()));
  rt.launch(chunk_output_, chunks, group, cost.output);
}

void LinearAttention::forward(const DeviceArgs& args, const cl::Buffer& out) {
  const auto& [ops, dims, step, params, x, activations] = args;
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

void LinearAttention::backward(const DeviceArgs& args, const DeviceGrads& gradients) {
  const auto& [ops, dims, step, params, x, activations] = args;
  const auto& [dout, dx, grads] = gradients;
  auto& acts = static_cast<LinearActivations&>(activations);
  Runtime& rt = ops.runtime();
  build_kernels(rt, dims);
  const int N = dims.B * dims.T, C = dims.C, d = dims.head_size();
  const double btc = activation_floats(dims), rows = head_rows(dims);
  ops.matmul_backward(datt_, grads[2], &grads[3], dout, acts.att, params[2], N, C, C);
  features(rt, dims, acts.qkv);
  set_args(output_grad_, ext_.buffer(), datt_.buffer(), acts.att.buffer(), acts.den.buffer(),
           dims.T, C, dims.H, cl::Local(sizeof(float) * d));
  rt.launch(output_grad_, cl::NDRange(C, dims.T, dims.B), cl::NDRange(d, 1, 1),
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

void LinearAttention::reference_forward(const ReferenceArgs& args, float* out) const {
  const auto& [dims, step, params, x] = args;
  std::vector<float> qkv, att;
  linear_core_forward(qkv, att, dims, params, x);
  reference::matmul_forward(out, att.data(), params[2], params[3], dims.B * dims.T, dims.C, dims.C);
}

void LinearAttention::reference_backward(const ReferenceArgs& args,
                                         const ReferenceGrads& gradients) const {
  const auto& [dims, step, params, x] = args;
  const auto& [dout, dx, dparams] = gradients;
  const int N = dims.B * dims.T, C = dims.C;
  std::vector<float> qkv, att;  // recomputed: the reference keeps no state between calls
  linear_core_forward(qkv, att, dims, params, x);
  std::vector<float> datt(size_t(N) * C), dqkv(size_t(N) * 3 * C, 0.f);
  reference::matmul_backward(datt.data(), dparams[2], dparams[3], dout, att.data(), params[2], N, C,
                             C);
  const reference::QKVHeads in = reference::split_qkv(qkv.data(), C);
  const reference::QKVGradHeads grad = reference::split_qkv_grad(dqkv.data(), C);
  reference::linear_attention_backward(grad.q, grad.k, grad.v, {datt.data(), C}, in.q, in.k, in.v,
                                       linear_shape(dims));
  reference::matmul_backward(dx, dparams[0], dparams[1], dqkv.data(), x, params[0], N, C, 3 * C);
}

std::unique_ptr<AttentionVariant> make_linear(const AttentionOptions& options) {
  return std::make_unique<LinearAttention>(options);
}

}  // namespace attnscope
