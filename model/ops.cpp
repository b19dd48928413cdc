#include "model/ops.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "host/runtime/error.hpp"
#include "model/gemm.hpp"
#include "model/tf32.hpp"

namespace attnscope {

namespace {

constexpr double kFloat = sizeof(float);

// Rows per partial sum of layernorm's dweight and dbias (layernorm.cl's LN_ROWS).
constexpr int kLayernormRows = 32;
const std::string kLayernormOptions = "-DLN_ROWS=" + std::to_string(kLayernormRows);

// Scratch slots (Ops::scratch).
enum ScratchSlot { kEncoderOrder, kLayernormPartials, kNormPartials, kGemmPartials };

// Work-group size for kernels that reduce over a work-group: a power of two, at most 256
// and at most the device's limit; no more than `items` needs (rows of C floats).
size_t reduction_group_size(const DeviceInfo& device, size_t items = 256) {
  size_t size = 1;
  while (size * 2 <= 256 && size * 2 <= device.max_work_group_size && size < items) size *= 2;
  return size;
}

// Work-group width for one- and two-dimensional element-wise grids.
size_t elementwise_group_size(const DeviceInfo& device) {
  return std::min<size_t>(256, device.max_work_group_size);
}

void launch_elementwise(Runtime& rt, const cl::Kernel& kernel, size_t n, double bytes) {
  if (n == 0) return;  // an empty NDRange is an OpenCL error
  size_t local = elementwise_group_size(rt.device());
  rt.launch(kernel, cl::NDRange(round_up(n, local)), cl::NDRange(local), KernelCost{0, bytes});
}

// A grid of (columns, rows) work-items, columns rounded up to the work-group width.
void launch_columns(Runtime& rt, const cl::Kernel& kernel, size_t columns, size_t rows,
                    double bytes) {
  if (columns == 0 || rows == 0) return;
  size_t local = std::min<size_t>(64, rt.device().max_work_group_size);
  rt.launch(kernel, cl::NDRange(round_up(columns, local), rows), cl::NDRange(local, 1),
            KernelCost{0, bytes});
}

}  // namespace

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::tf32: return "tf32";
    case Precision::tf32x3: return "3xtf32";
    default: return "fp32";
  }
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "tf32") return Precision::tf32;
  if (name == "3xtf32") return Precision::tf32x3;
  throw UsageError("--precision: expected fp32, tf32 or 3xtf32, got '" + name + "'");
}

std::string attention_backward_name(AttentionBackward backward) {
  switch (backward) {
    case AttentionBackward::split: return "split";
    case AttentionBackward::fused: return "fused";
    default: return "auto";
  }
}

AttentionBackward parse_attention_backward(const std::string& name) {
  if (name == "auto") return AttentionBackward::automatic;
  if (name == "split") return AttentionBackward::split;
  if (name == "fused") return AttentionBackward::fused;
  throw UsageError("--attention-backward: expected auto, split or fused, got '" + name + "'");
}

Ops::Ops(Runtime& runtime, Precision precision, AttentionBackward attention_backward)
    : rt_(runtime), precision_(precision), attention_backward_(attention_backward) {
  if (attention_backward_ != AttentionBackward::split) {
    atomic_add_ = probe_atomic_add(rt_);
    if (attention_backward_ == AttentionBackward::automatic)
      attention_backward_ = atomic_add_.ptx() ? AttentionBackward::fused : AttentionBackward::split;
  } else {
    atomic_add_.reason = "not probed (--attention-backward split)";
  }
  if (!on_tensor_cores(precision_)) return;
  const Tf32Probe probe = probe_tf32(rt_, precision_ == Precision::tf32x3);
  if (!probe.available)
    throw UsageError("--precision " + precision_name(precision_) + " is not available: " +
                     probe.reason);
}

std::string Ops::attention_backward_label() const {
  if (attention_backward_ != AttentionBackward::fused) return "split";
  return "fused (" + atomic_add_name(atomic_add_.kind) + ")";
}

const cl::Buffer& Ops::scratch(int slot, size_t bytes) {
  DeviceBuffer& buffer = scratch_[slot];
  if (buffer.bytes() < bytes) buffer = rt_.alloc(bytes, "ops scratch");
  return buffer.buffer();
}

std::function<const cl::Buffer&(size_t)> Ops::gemm_scratch() {
  return [this](size_t bytes) -> const cl::Buffer& { return scratch(kGemmPartials, bytes); };
}

void Ops::matmul_forward(const cl::Buffer& out, const cl::Buffer& inp, const cl::Buffer& weight,
                         const cl::Buffer* bias, int N, int C, int OC) {
  GemmSpec spec;
  spec.M = N, spec.N = OC, spec.K = C, spec.trans_b = true;
  run_gemm(rt_, spec, inp, weight, out, bias, gemm_scratch(), precision_);
}

void Ops::matmul_backward(const cl::Buffer& dinp, const cl::Buffer& dweight,
                          const cl::Buffer* dbias, const cl::Buffer& dout, const cl::Buffer& inp,
                          const cl::Buffer& weight, int N, int C, int OC) {
  GemmSpec dinp_spec;  // dinp[N,C] = dout[N,OC] · weight[OC,C]
  dinp_spec.M = N, dinp_spec.N = C, dinp_spec.K = OC;
  run_gemm(rt_, dinp_spec, dout, weight, dinp, nullptr, gemm_scratch(), precision_);
  GemmSpec dweight_spec;  // dweight[OC,C] += dout[N,OC]ᵀ · inp[N,C]
  dweight_spec.M = OC, dweight_spec.N = C, dweight_spec.K = N;
  dweight_spec.trans_a = true, dweight_spec.beta = 1.f;
  run_gemm(rt_, dweight_spec, dout, inp, dweight, nullptr, gemm_scratch(), precision_);
  if (!dbias) return;
  // 32 columns per work-group (coalesced rows), up to 8 work-items sharing each column.
  const size_t cols = 32;
  const size_t rows = std::clamp<size_t>(rt_.device().max_work_group_size / cols, 1, 8);
  cl::Kernel kernel = rt_.kernel("matmul.cl", "matmul_dbias",
                                 "-DDBIAS_COLS=32 -DDBIAS_ROWS=" + std::to_string(rows));
  set_args(kernel, *dbias, dout, N, OC);
  rt_.launch(kernel, cl::NDRange(round_up(OC, cols), rows), cl::NDRange(cols, rows),
             KernelCost{0, (double(N) * OC + 2.0 * OC) * kFloat});
}

void Ops::gemm(const GemmSpec& spec, const cl::Buffer& A, const cl::Buffer& B,
               const cl::Buffer& C) {
  run_gemm(rt_, spec, A, B, C, nullptr, gemm_scratch(), precision_);
}

void Ops::encoder_forward(const cl::Buffer& out, const cl::Buffer& tokens, const cl::Buffer& wte,
                          const cl::Buffer& wpe, int B, int T, int C) {
  cl::Kernel kernel = rt_.kernel("encoder.cl", "encoder_forward");
  set_args(kernel, out, tokens, wte, wpe, T, C, B * T);
  launch_columns(rt_, kernel, C, size_t(B) * T, 3.0 * B * T * C * kFloat);
}

void Ops::encoder_backward(const cl::Buffer& dwte, const cl::Buffer& dwpe, const cl::Buffer& dout,
                           const cl::Buffer& tokens, int B, int T, int C) {
  const int count = B * T;
  cl::Kernel wpe = rt_.kernel("encoder.cl", "encoder_backward_wpe");
  set_args(wpe, dwpe, dout, B, T, C);
  launch_columns(rt_, wpe, C, T, (double(count) * C + 2.0 * T * C) * kFloat);

  const size_t sort_group = reduction_group_size(rt_.device());
  const cl::Buffer& order = scratch(kEncoderOrder, size_t(count) * sizeof(cl_int));
  cl::Kernel sort =
      rt_.kernel("encoder.cl", "encoder_sort_positions", "-DSORT_WG=" + std::to_string(sort_group));
  set_args(sort, order, tokens, count);
  rt_.launch(sort, cl::NDRange(round_up(count, sort_group)), cl::NDRange(sort_group),
             KernelCost{0, 2.0 * count * sizeof(cl_int)});

  cl::Kernel wte = rt_.kernel("encoder.cl", "encoder_backward_wte");
  set_args(wte, dwte, dout, order, tokens, count, C);
  launch_columns(rt_, wte, C, count, 3.0 * count * C * kFloat);
}

void Ops::layernorm_forward(const cl::Buffer& out, const cl::Buffer& mean, const cl::Buffer& rstd,
                            const cl::Buffer& inp, const cl::Buffer& weight, const cl::Buffer& bias,
                            int N, int C) {
  if (N == 0) return;
  const size_t group = reduction_group_size(rt_.device(), C);
  cl::Kernel kernel = rt_.kernel("layernorm.cl", "layernorm_forward", kLayernormOptions);
  set_args(kernel, out, mean, rstd, inp, weight, bias, C, cl::Local(group * sizeof(float)));
  rt_.launch(kernel, cl::NDRange(size_t(N) * group), cl::NDRange(group),
             KernelCost{0, (2.0 * N * C + 2.0 * C + 2.0 * N) * kFloat});
}

void Ops::layernorm_backward(const cl::Buffer& dinp, const cl::Buffer& dweight,
                             const cl::Buffer& dbias, const cl::Buffer& dout, const cl::Buffer& inp,
                             const cl::Buffer& weight, const cl::Buffer& mean,
                             const cl::Buffer& rstd, int N, int C) {
  if (N == 0) return;
  const size_t group = reduction_group_size(rt_.device(), C);
  cl::Kernel rows = rt_.kernel("layernorm.cl", "layernorm_backward", kLayernormOptions);
  set_args(rows, dinp, dout, inp, weight, mean, rstd, C, cl::Local(group * sizeof(float)));
  rt_.launch(rows, cl::NDRange(size_t(N) * group), cl::NDRange(group),
             KernelCost{0, (4.0 * N * C + C + 2.0 * N) * kFloat});

  const int blocks = (N + kLayernormRows - 1) / kLayernormRows;
  const cl::Buffer& partials = scratch(kLayernormPartials, 2 * size_t(blocks) * C * sizeof(float));
  cl::Kernel partial = rt_.kernel("layernorm.cl", "layernorm_param_partials", kLayernormOptions);
  set_args(partial, partials, dout, inp, mean, rstd, N, C);
  launch_columns(rt_, partial, C, blocks, (2.0 * N * C + 2.0 * blocks * C) * kFloat);
  cl::Kernel reduce = rt_.kernel("layernorm.cl", "layernorm_param_reduce", kLayernormOptions);
  set_args(reduce, dweight, dbias, partials, blocks, C);
  launch_columns(rt_, reduce, C, 1, (2.0 * blocks * C + 4.0 * C) * kFloat);
}

void Ops::gelu_forward(const cl::Buffer& out, const cl::Buffer& inp, size_t n) {
  cl::Kernel kernel = rt_.kernel("gelu.cl", "gelu_forward");
  set_args(kernel, out, inp, cl_ulong(n));
  launch_elementwise(rt_, kernel, n, 2.0 * n * kFloat);
}

void Ops::gelu_backward(const cl::Buffer& dinp, const cl::Buffer& inp, const cl::Buffer& dout,
                        size_t n) {
  cl::Kernel kernel = rt_.kernel("gelu.cl", "gelu_backward");
  set_args(kernel, dinp, inp, dout, cl_ulong(n));
  launch_elementwise(rt_, kernel, n, 3.0 * n * kFloat);
}

void Ops::residual_forward(const cl::Buffer& out, const cl::Buffer& a, const cl::Buffer& b,
                           size_t n) {
  cl::Kernel kernel = rt_.kernel("residual.cl", "residual_forward");
  set_args(kernel, out, a, b, cl_ulong(n));
  launch_elementwise(rt_, kernel, n, 3.0 * n * kFloat);
}

void Ops::accumulate(const cl::Buffer& dst, const cl::Buffer& src, size_t n) {
  cl::Kernel kernel = rt_.kernel("residual.cl", "accumulate");
  set_args(kernel, dst, src, cl_ulong(n));
  launch_elementwise(rt_, kernel, n, 3.0 * n * kFloat);
}

void Ops::fused_classifier(const cl::Buffer& logits, const cl::Buffer& losses,
                           const cl::Buffer& targets, int N, int V, int Vp) {
  if (N == 0) return;
  const size_t group = reduction_group_size(rt_.device(), V);
  cl::Kernel kernel = rt_.kernel("classifier.cl", "fused_classifier");
  set_args(kernel, logits, losses, targets, V, Vp, 1.f / N, cl::Local(2 * group * sizeof(float)));
  rt_.launch(kernel, cl::NDRange(size_t(N) * group), cl::NDRange(group),
             KernelCost{0, (2.0 * N * V + double(N) * Vp + 2.0 * N) * kFloat});
}

void Ops::crossentropy_forward(const cl::Buffer& losses, const cl::Buffer& logits,
                               const cl::Buffer& targets, int N, int V, int Vp) {
  if (N == 0) return;
  const size_t group = reduction_group_size(rt_.device(), V);
  cl::Kernel kernel = rt_.kernel("classifier.cl", "crossentropy_forward");
  set_args(kernel, losses, logits, targets, V, Vp, cl::Local(2 * group * sizeof(float)));
  rt_.launch(kernel, cl::NDRange(size_t(N) * group), cl::NDRange(group),
             KernelCost{0, (double(N) * V + 2.0 * N) * kFloat});
}

void Ops::squared_norm(const cl::Buffer& out, const cl::Buffer& grads, size_t n) {
  // A fixed number of groups for a given n and device keeps the sum's order fixed.
  const size_t group = reduction_group_size(rt_.device());
  const size_t groups = std::max<size_t>(1, std::min<size_t>(1024, (n + group - 1) / group));
  const cl::Buffer& partials = scratch(kNormPartials, groups * sizeof(float));
  cl::Kernel first = rt_.kernel("adamw.cl", "squared_norm_partials");
  set_args(first, partials, grads, cl_ulong(n), cl::Local(group * sizeof(float)));
  rt_.launch(first, cl::NDRange(groups * group), cl::NDRange(group),
             KernelCost{0, (double(n) + groups) * kFloat});
  cl::Kernel second = rt_.kernel("adamw.cl", "squared_norm_final");
  set_args(second, out, partials, cl_int(groups), cl::Local(group * sizeof(float)));
  rt_.launch(second, cl::NDRange(group), cl::NDRange(group),
             KernelCost{0, (double(groups) + 1) * kFloat});
}

void Ops::clip_scale(const cl::Buffer& grad_scale, const cl::Buffer& norm_sq, float clip) {
  cl::Kernel kernel = rt_.kernel("adamw.cl", "clip_scale");
  set_args(kernel, grad_scale, norm_sq, clip);
  rt_.launch(kernel, cl::NDRange(1), cl::NDRange(1), KernelCost{0, 2 * kFloat});
}

void Ops::adamw_update(const cl::Buffer& params, const cl::Buffer& grads, const cl::Buffer& m,
                       const cl::Buffer& v, size_t n, const AdamW& hp, float weight_decay, int step,
                       const cl::Buffer& grad_scale) {
  if (step < 1) throw Error("adamw_update: step must count from 1, got " + std::to_string(step));
  // Bias corrections 1 − β^t in double on the host, rounded once (as the reference does).
  const float m_correction = float(1.0 - std::pow(double(hp.beta1), step));
  const float v_correction = float(1.0 - std::pow(double(hp.beta2), step));
  cl::Kernel kernel = rt_.kernel("adamw.cl", "adamw_update");
  set_args(kernel, params, grads, m, v, cl_ulong(n), hp.lr, hp.beta1, hp.beta2, hp.eps,
           weight_decay, m_correction, v_correction, grad_scale);
  launch_elementwise(rt_, kernel, n, 7.0 * n * kFloat);
}

}  // namespace attnscope
