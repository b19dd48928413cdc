// GPT-2 on the device: the flat parameter/gradient/moment buffers, the activations, and
// one training step as two lists of layer calls (forward, then backward in reverse),
// followed by global-norm clipping and AdamW. The attention block of every layer is the
// chosen AttentionVariant. The host only enqueues kernels and reads back the losses.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/attention_variant.hpp"
#include "model/config.hpp"
#include "model/lr_schedule.hpp"
#include "model/ops.hpp"
#include "model/parameters.hpp"

namespace attnscope {

struct OptimizerConfig {
  Ops::AdamW adamw;        // lr 6e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1
  float grad_clip = 1.0f;  // global gradient-norm clip; <= 0 disables
  LrSchedule schedule;     // adamw.lr is the peak; TrainingRun applies it per step
};

// Analytic FLOPs of one training step (forward + backward), whole model.
struct StepFlops {
  double model = 0;     // what the math needs (attention: VARIANTS.md's model FLOPs)
  double executed = 0;  // what the kernels compute
};

class GPT2 {
 public:
  GPT2(Ops& ops, const ModelConfig& config, std::unique_ptr<AttentionVariant> attention, int B,
       int T, const OptimizerConfig& optimizer);
  ~GPT2();

  // Parameters as a packed host vector in llm.c order (see parameters.hpp).
  void set_parameters(const std::vector<float>& packed);
  std::vector<float> parameters() const;
  // The last train_step's gradients (before clipping), packed like parameters().
  std::vector<float> gradients() const;

  // One full step on (B,T) int32 inputs/targets: forward, loss, backward, clip, AdamW at
  // learning rate lr. step counts from 1 (AdamW's bias correction). Returns the mean loss;
  // blocks until the device has finished the update.
  float train_step(const int* inputs, const int* targets, int64_t step, float lr);
  // Forward only; the mean loss over the batch.
  float evaluate(const int* inputs, const int* targets);
  // Gradient norm before clipping of the last train_step.
  float last_grad_norm() const { return last_grad_norm_; }

  const ModelConfig& config() const { return config_; }
  const ParameterLayout& layout() const { return layout_; }
  AttentionVariant& attention() { return *attention_; }
  const AttentionVariant& attention() const { return *attention_; }
  const AttentionDims& attention_dims() const { return dims_; }
  int batch() const { return B_; }
  int seq() const { return T_; }
  StepFlops step_flops() const;

 private:
  struct LayerActivations;
  void allocate_parameters();
  void allocate_activations();
  void upload_batch(const int* inputs, const int* targets);
  void forward(int64_t step);
  void backward(int64_t step);
  void update(int64_t step, float lr);
  float mean_loss();
  const cl::Buffer& param(const std::string& group, int layer = 0) const;
  const cl::Buffer& grad(const std::string& group, int layer = 0) const;
  const cl::Buffer& residual_input(int layer) const;

  Ops& ops_;
  Runtime& rt_;
  ModelConfig config_;
  std::unique_ptr<AttentionVariant> attention_;
  AttentionDims dims_;
  int B_, T_;
  OptimizerConfig optimizer_;
  ParameterLayout layout_;

  DeviceBuffer params_, grads_, adam_m_, adam_v_;
  // Sub-buffer views: [group][layer].
  std::vector<std::vector<cl::Buffer>> param_views_, grad_views_;
  std::vector<cl::Buffer> param_group_views_, grad_group_views_, m_group_views_, v_group_views_;
  std::vector<std::vector<cl::Buffer>> attention_params_, attention_grads_;  // [layer][tensor]

  DeviceBuffer inputs_, targets_;
  DeviceBuffer encoded_;
  std::vector<std::unique_ptr<LayerActivations>> layers_;
  DeviceBuffer lnf_, lnf_mean_, lnf_rstd_, logits_, losses_;
  // Scratch shared by all layers (not needed by backward).
  DeviceBuffer attn_out_, fcproj_out_;
  // Backward scratch.
  DeviceBuffer dresidual_, dbtc_, dfch_, dfch_gelu_;
  DeviceBuffer norm_sq_, grad_scale_;
  std::vector<float> host_losses_;
  float last_grad_norm_ = 0;
};

}  // namespace attnscope
