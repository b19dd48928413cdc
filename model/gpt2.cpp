#include "model/gpt2.hpp"

#include <cmath>

#include "host/runtime/error.hpp"
#include "model/fault_injection.hpp"
#include "model/memory_plan.hpp"

namespace attnscope {

// What one layer keeps from forward for backward (llm.c's ActivationTensors, per layer).
struct GPT2::LayerActivations {
  DeviceBuffer ln1, ln1_mean, ln1_rstd;  // attention input and its statistics
  DeviceBuffer residual2;                // residual + attention output
  DeviceBuffer ln2, ln2_mean, ln2_rstd;
  DeviceBuffer fch, fch_gelu;            // (B,T,4C) before and after GELU
  DeviceBuffer residual3;                // the layer's output
  std::unique_ptr<AttentionActivations> attention;
};

GPT2::GPT2(Ops& ops, const ModelConfig& config, std::unique_ptr<AttentionVariant> attention, int B,
           int T, const OptimizerConfig& optimizer)
    : ops_(ops),
      rt_(ops.runtime()),
      config_(config),
      attention_(std::move(attention)),
      dims_{B, T, config.n_embd, config.n_head},
      B_(B),
      T_(T),
      optimizer_(optimizer),
      layout_(config, (config_.validate(), attention_->resolve(dims_), attention_->parameters(dims_)),
              std::max<size_t>(1, rt_.device().base_addr_align_bytes / sizeof(float))) {
  if (B <= 0 || T <= 0) throw UsageError("batch and sequence length must be positive");
  if (T > config.max_seq_len)
    throw UsageError("--seq " + std::to_string(T) + " exceeds the model's max sequence length " +
                     std::to_string(config.max_seq_len));
  check_plan_fits(plan_training_memory(config_, layout_, *attention_, B, T), rt_.device(),
                  rt_.memory().current_bytes());
  allocate_parameters();
  allocate_activations();
}

// A step that failed midway may have left kernels running on this model's buffers: they
// finish before the buffers are released, so the next run starts on an idle queue.
GPT2::~GPT2() { rt_.drain(); }

void GPT2::allocate_parameters() {
  const size_t n = layout_.device_floats();
  params_ = rt_.alloc_floats(n, "parameters");
  grads_ = rt_.alloc_floats(n, "gradients");
  adam_m_ = rt_.alloc_floats(n, "AdamW first moments");
  adam_v_ = rt_.alloc_floats(n, "AdamW second moments");
  for (auto* buf : {&params_, &grads_, &adam_m_, &adam_v_}) rt_.fill(*buf, 0.f, n);
  auto view = [&](const DeviceBuffer& parent, size_t offset, size_t count) {
    return rt_.sub_buffer(parent, offset * sizeof(float), count * sizeof(float));
  };
  for (const auto& g : layout_.groups()) {
    std::vector<cl::Buffer> p, d;
    for (size_t l = 0; l < g.layer_count; ++l) {
      p.push_back(view(params_, g.device_offset + l * g.device_stride, g.floats_per_layer));
      d.push_back(view(grads_, g.device_offset + l * g.device_stride, g.floats_per_layer));
    }
    param_views_.push_back(p);
    grad_views_.push_back(d);
    param_group_views_.push_back(view(params_, g.device_offset, g.device_floats()));
    grad_group_views_.push_back(view(grads_, g.device_offset, g.device_floats()));
    m_group_views_.push_back(view(adam_m_, g.device_offset, g.device_floats()));
    v_group_views_.push_back(view(adam_v_, g.device_offset, g.device_floats()));
  }
  attention_params_.resize(config_.n_layer);
  attention_grads_.resize(config_.n_layer);
  const size_t first = layout_.attention_group_begin();
  for (int l = 0; l < config_.n_layer; ++l)
    for (size_t g = first; g < first + layout_.attention_group_count(); ++g) {
      attention_params_[l].push_back(param_views_[g][l]);
      attention_grads_[l].push_back(grad_views_[g][l]);
    }
}

void GPT2::allocate_activations() {
  const size_t BT = size_t(B_) * T_, C = config_.n_embd, Vp = config_.padded_vocab_size;
  auto floats = [&](size_t n, const char* label) { return rt_.alloc_floats(n, label); };
  inputs_ = rt_.alloc(BT * sizeof(int), "input tokens");
  targets_ = rt_.alloc(BT * sizeof(int), "target tokens");
  encoded_ = floats(BT * C, "embeddings");
  for (int l = 0; l < config_.n_layer; ++l) {
    auto a = std::make_unique<LayerActivations>();
    a->ln1 = floats(BT * C, "ln1");
    a->ln1_mean = floats(BT, "ln1 mean");
    a->ln1_rstd = floats(BT, "ln1 rstd");
    a->residual2 = floats(BT * C, "residual2");
    a->ln2 = floats(BT * C, "ln2");
    a->ln2_mean = floats(BT, "ln2 mean");
    a->ln2_rstd = floats(BT, "ln2 rstd");
    a->fch = floats(BT * 4 * C, "fc");
    a->fch_gelu = floats(BT * 4 * C, "fc gelu");
    a->residual3 = floats(BT * C, "residual3");
    a->attention = attention_->allocate(ops_, dims_);
    layers_.push_back(std::move(a));
  }
  lnf_ = floats(BT * C, "final layernorm");
  lnf_mean_ = floats(BT, "lnf mean");
  lnf_rstd_ = floats(BT, "lnf rstd");
  logits_ = floats(BT * Vp, "logits");
  losses_ = floats(BT, "losses");
  attn_out_ = floats(BT * C, "attention output");
  fcproj_out_ = floats(BT * C, "mlp output");
  dresidual_ = floats(BT * C, "residual gradient");
  dbtc_ = floats(BT * C, "activation gradient");
  dfch_ = floats(BT * 4 * C, "fc gradient");
  dfch_gelu_ = floats(BT * 4 * C, "fc gelu gradient");
  norm_sq_ = floats(1, "gradient norm");
  grad_scale_ = floats(1, "gradient scale");
  host_losses_.resize(BT);
}

void GPT2::set_parameters(const std::vector<float>& packed) {
  if (packed.size() != layout_.packed_floats())
    throw Error("parameter count mismatch: got " + std::to_string(packed.size()) + ", model has " +
                std::to_string(layout_.packed_floats()));
  std::vector<float> image = layout_.to_device_image(packed);
  rt_.upload(params_, image.data(), image.size() * sizeof(float));
  for (auto* buf : {&adam_m_, &adam_v_}) rt_.fill(*buf, 0.f, layout_.device_floats());
}

std::vector<float> GPT2::parameters() const {
  std::vector<float> image(layout_.device_floats());
  const_cast<Runtime&>(rt_).download(params_, image.data(), image.size() * sizeof(float));
  return layout_.to_packed(image);
}

std::vector<float> GPT2::gradients() const {
  std::vector<float> image(layout_.device_floats());
  const_cast<Runtime&>(rt_).download(grads_, image.data(), image.size() * sizeof(float));
  return layout_.to_packed(image);
}

size_t group_index(const ParameterLayout& layout, const std::string& name) {
  const auto& groups = layout.groups();
  for (size_t i = 0; i < groups.size(); ++i)
    if (groups[i].name == name) return i;
  throw Error("no parameter group " + name);
}

const cl::Buffer& GPT2::param(const std::string& group, int layer) const {
  return param_views_[group_index(layout_, group)][layer];
}

const cl::Buffer& GPT2::grad(const std::string& group, int layer) const {
  return grad_views_[group_index(layout_, group)][layer];
}

const cl::Buffer& GPT2::residual_input(int layer) const {
  return layer == 0 ? encoded_.buffer() : layers_[layer - 1]->residual3.buffer();
}

void GPT2::upload_batch(const int* inputs, const int* targets) {
  const size_t bytes = size_t(B_) * T_ * sizeof(int);
  rt_.upload(inputs_, inputs, bytes);
  if (targets) rt_.upload(targets_, targets, bytes);
}

void GPT2::forward(int64_t step) {
  const int BT = B_ * T_, C = config_.n_embd;
  ops_.encoder_forward(encoded_, inputs_, param("wte"), param("wpe"), B_, T_, C);
  for (int l = 0; l < config_.n_layer; ++l) {
    LayerActivations& a = *layers_[l];
    const StepContext context{step, l};
    const cl::Buffer& residual = residual_input(l);
    ops_.layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, residual, param("ln1w", l),
                           param("ln1b", l), BT, C);
    attention_->forward({ops_, dims_, context, attention_params_[l], a.ln1, *a.attention},
                        attn_out_);
    ops_.residual_forward(a.residual2, residual, attn_out_, size_t(BT) * C);
    ops_.layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.residual2, param("ln2w", l),
                           param("ln2b", l), BT, C);
    ops_.matmul_forward(a.fch, a.ln2, param("fcw", l), &param("fcb", l), BT, C, 4 * C);
    ops_.gelu_forward(a.fch_gelu, a.fch, size_t(BT) * 4 * C);
    ops_.matmul_forward(fcproj_out_, a.fch_gelu, param("fcprojw", l), &param("fcprojb", l), BT,
                        4 * C, C);
    ops_.residual_forward(a.residual3, a.residual2, fcproj_out_, size_t(BT) * C);
  }
  ops_.layernorm_forward(lnf_, lnf_mean_, lnf_rstd_, residual_input(config_.n_layer),
                         param("lnfw"), param("lnfb"), BT, C);
  ops_.matmul_forward(logits_, lnf_, param("wte"), nullptr, BT, C, config_.padded_vocab_size);
}

// Reverse of forward(). dresidual_ carries the gradient of the residual stream: each
// layernorm backward adds its input gradient into it (llm.c's CUDA scheme).
void GPT2::backward(int64_t step) {
  const int BT = B_ * T_, C = config_.n_embd, L = config_.n_layer;
  ops_.matmul_backward(dbtc_, grad("wte"), nullptr, logits_, lnf_, param("wte"), BT, C,
                       config_.padded_vocab_size);
  rt_.fill(dresidual_, 0.f, size_t(BT) * C);
  ops_.layernorm_backward(dresidual_, grad("lnfw"), grad("lnfb"), dbtc_, residual_input(L),
                          param("lnfw"), lnf_mean_, lnf_rstd_, BT, C);
  for (int l = L - 1; l >= 0; --l) {
    LayerActivations& a = *layers_[l];
    const StepContext context{step, l};
    ops_.matmul_backward(dfch_gelu_, grad("fcprojw", l), &grad("fcprojb", l), dresidual_,
                         a.fch_gelu, param("fcprojw", l), BT, 4 * C, C);
    ops_.gelu_backward(dfch_, a.fch, dfch_gelu_, size_t(BT) * 4 * C);
    ops_.matmul_backward(dbtc_, grad("fcw", l), &grad("fcb", l), dfch_, a.ln2, param("fcw", l),
                         BT, C, 4 * C);
    ops_.layernorm_backward(dresidual_, grad("ln2w", l), grad("ln2b", l), dbtc_, a.residual2,
                            param("ln2w", l), a.ln2_mean, a.ln2_rstd, BT, C);
    attention_->backward({ops_, dims_, context, attention_params_[l], a.ln1, *a.attention},
                         {dresidual_, dbtc_, attention_grads_[l]});
    ops_.layernorm_backward(dresidual_, grad("ln1w", l), grad("ln1b", l), dbtc_,
                            residual_input(l), param("ln1w", l), a.ln1_mean, a.ln1_rstd, BT, C);
  }
  ops_.encoder_backward(grad("wte"), grad("wpe"), dresidual_, inputs_, B_, T_, C);
}

void GPT2::update(int64_t step, float lr) {
  Ops::AdamW adamw = optimizer_.adamw;
  adamw.lr = lr;
  ops_.squared_norm(norm_sq_, grads_, layout_.device_floats());
  ops_.clip_scale(grad_scale_, norm_sq_, optimizer_.grad_clip);
  const auto& groups = layout_.groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    const float decay = groups[g].weight_decay ? optimizer_.adamw.weight_decay : 0.f;
    ops_.adamw_update(param_group_views_[g], grad_group_views_[g], m_group_views_[g],
                      v_group_views_[g], groups[g].device_floats(), adamw, decay,
                      int(step), grad_scale_);
  }
}

float GPT2::mean_loss() {
  rt_.download(losses_, host_losses_.data(), host_losses_.size() * sizeof(float));
  double sum = 0;
  for (float x : host_losses_) sum += x;
  return float(sum / double(host_losses_.size()));
}

float GPT2::train_step(const int* inputs, const int* targets, int64_t step, float lr) {
  upload_batch(inputs, targets);
  rt_.fill(grads_, 0.f, layout_.device_floats());
  forward(step);
  inject_step_fault_if_asked(*attention_, step);
  ops_.fused_classifier(logits_, losses_, targets_, B_ * T_, config_.vocab_size,
                        config_.padded_vocab_size);
  backward(step);
  update(step, lr);
  float norm_sq = 0;
  rt_.download(norm_sq_, &norm_sq, sizeof(float));  // blocking: the step has finished
  last_grad_norm_ = std::sqrt(norm_sq);
  return mean_loss();
}

float GPT2::evaluate(const int* inputs, const int* targets) {
  upload_batch(inputs, targets);
  forward(0);
  ops_.crossentropy_forward(losses_, logits_, targets_, B_ * T_, config_.vocab_size,
                            config_.padded_vocab_size);
  return mean_loss();
}

StepFlops GPT2::step_flops() const {
  const double BT = double(B_) * T_, C = config_.n_embd, L = config_.n_layer;
  const AttentionCost a = attention_->cost(dims_);
  // MLP: two matmuls of 2·BT·C·4C each; backward is twice forward.
  const double mlp = 3.0 * 2 * (2.0 * BT * C * 4 * C);
  const double head_model = 3.0 * 2 * BT * C * config_.vocab_size;
  const double head_executed = 3.0 * 2 * BT * C * config_.padded_vocab_size;
  StepFlops f;
  f.model = L * (mlp + a.model_flops_forward + a.model_flops_backward) + head_model;
  f.executed = L * (mlp + a.executed_flops_forward + a.executed_flops_backward) + head_executed;
  return f;
}

}  // namespace attnscope
