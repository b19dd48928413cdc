#include "model/training.hpp"

#include <cmath>
#include <sstream>

#include "host/runtime/error.hpp"
#include "model/checkpoint.hpp"
#include "model/registry.hpp"

namespace attnscope {
namespace {

CheckpointHeader header_for(const GPT2& model, const std::string& variant) {
  return checkpoint_header(model.config(), variant,
                           model.attention().parameters(model.attention_dims()),
                           model.attention().parameter_options());
}

// More validation batches than the held-out data holds would count some batches twice.
void check_validation_fits(int val_batches, const DataLoader& val) {
  const std::optional<int64_t> distinct = val.batches_per_pass();
  if (distinct && val_batches > *distinct)
    throw UsageError("--val-batches " + std::to_string(val_batches) + " is more than the held-out data "
                     "holds: " + std::to_string(*distinct) + " distinct batches of this --batch and --seq in " +
                     val.describe() + "; lower --val-batches or give more held-out data");
}

}  // namespace

TrainingRun::TrainingRun(Ops& ops, const TrainSettings& settings)
    : ops_(ops), settings_(settings) {
  if (settings.steps < 0) throw UsageError("--steps must be >= 0");
  if (settings.val_batches < 1) throw UsageError("--val-batches must be >= 1");
  AttentionOptions attention = settings.attention;
  attention.seed = settings.seed;
  model_ = std::make_unique<GPT2>(ops, settings.model, make_variant(settings.variant, attention),
                                  settings.batch, settings.seq, settings.optimizer);
  DataSpec data = settings.data;
  data.seed = settings.seed;
  data_ = make_data(data, settings.batch, settings.seq, settings.model.vocab_size);
  check_validation_fits(settings.val_batches, *data_.val);
  load_or_init();
}

void TrainingRun::load_or_init() {
  if (settings_.load_path.empty()) {
    model_->set_parameters(init_parameters(model_->layout(), model_->config(), settings_.seed));
    return;
  }
  LoadedCheckpoint ckpt = load_checkpoint(settings_.load_path);
  check_checkpoint_matches(settings_.load_path, ckpt, header_for(*model_, settings_.variant),
                           model_->layout().packed_floats());
  const std::string non_finite = describe_non_finite(model_->layout(), ckpt.packed);
  if (!non_finite.empty())
    throw UsageError("checkpoint " + settings_.load_path + ": tensor " + non_finite);
  model_->set_parameters(ckpt.packed);
}

StepResult TrainingRun::step() {
  const Batch& batch = data_.train->next_batch();
  ++step_;
  const OptimizerConfig& o = settings_.optimizer;
  const float lr = scheduled_lr(o.adamw.lr, o.schedule, step_, settings_.steps);
  auto start = std::chrono::steady_clock::now();
  float loss = model_->train_step(batch.inputs.data(), batch.targets.data(), step_, lr);
  auto end = std::chrono::steady_clock::now();
  const float grad_norm = model_->last_grad_norm();
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) throw Error(non_finite_step_message(loss, grad_norm));
  StepResult r;
  r.step = step_;
  r.loss = loss;
  r.grad_norm = grad_norm;
  previous_grad_norm_ = grad_norm;
  r.lr = lr;
  r.step_ms = std::chrono::duration<double, std::milli>(end - start).count();
  r.tokens_per_s = double(settings_.batch) * settings_.seq / (r.step_ms / 1000.0);
  return r;
}

// Names what is not finite, read back from the device, instead of guessing a cause. A
// finite loss with a non-finite gradient: the backward pass overflowed, and the first such
// gradient tensor is named. A non-finite loss: the forward pass met non-finite weights or
// overflowed; the step's update has spread it, so the first non-finite weight and the
// previous step's gradient norm are what can be told.
std::string TrainingRun::non_finite_step_message(float loss, float grad_norm) const {
  const std::string what = "training step " + std::to_string(step_) + ": loss " + std::to_string(loss) +
                           ", gradient norm " + std::to_string(grad_norm);
  if (std::isfinite(loss))
    return what + ": the gradient is not finite, first " +
           describe_non_finite(model_->layout(), model_->gradients());
  const std::string weights = describe_non_finite(model_->layout(), model_->parameters());
  return what + ": the loss is not finite" +
         (step_ > 1 ? " (the previous step's gradient norm was " + std::to_string(previous_grad_norm_) + ")" : "") +
         (weights.empty() ? "; the weights are finite" : "; the weights are not, first " + weights);
}

std::optional<float> TrainingRun::validate(const std::function<bool()>& stop) {
  data_.val->reset();
  double sum = 0;
  for (int i = 0; i < settings_.val_batches; ++i) {
    if (stop()) return std::nullopt;
    const Batch& batch = data_.val->next_batch();
    sum += model_->evaluate(batch.inputs.data(), batch.targets.data());
  }
  return float(sum / settings_.val_batches);
}

void TrainingRun::save_checkpoint(const std::string& path) const {
  attnscope::save_checkpoint(path, header_for(*model_, settings_.variant), model_->parameters());
}

std::string TrainingRun::banner() const {
  const ModelConfig& c = model_->config();
  const auto& o = settings_.optimizer;
  const GPT2& m = *model_;
  std::ostringstream os;
  os << "device:    " << ops_.runtime().device().short_label() << " ("
     << ops_.runtime().device().version << ")\n"
     << "model:     " << (c.preset.empty() ? "custom" : c.preset) << " L=" << c.n_layer
     << " H=" << c.n_head << " C=" << c.n_embd << " vocab=" << c.vocab_size << " (padded "
     << c.padded_vocab_size << "), " << m.layout().packed_floats() << " parameters\n"
     << "precision: " << precision_name(ops_.precision())
     << (on_tensor_cores(ops_.precision()) ? " (tensor cores; probe passed)\n" : "\n")
     << "attention: " << settings_.variant;
  std::string opts = m.attention().describe_options();
  if (!opts.empty()) os << " (" << opts << ")";
  os << "; kernels: " << m.attention().attention_kernels() << "\n"
     << "batch:     B=" << settings_.batch << " T=" << settings_.seq << " ("
     << settings_.batch * settings_.seq << " tokens/step), seed " << settings_.seed << "\n"
     << "optimizer: AdamW lr=" << o.adamw.lr << " betas=(" << o.adamw.beta1 << ", "
     << o.adamw.beta2 << ") eps=" << o.adamw.eps << " weight_decay=" << o.adamw.weight_decay
     << " grad_clip=" << o.grad_clip << "\n"
     << "schedule:  warm-up " << o.schedule.warmup_steps << " steps, then "
     << lr_decay_name(o.schedule.decay) << " decay to " << o.schedule.min_lr_frac
     << " of the peak over " << settings_.steps << " steps\n"
     << "data:      " << data_.train->describe() << "; validation: " << data_.val->describe()
     << "\n"
     << "memory:    " << (ops_.runtime().memory().current_bytes() >> 20)
     << " MiB allocated on the device\n";
  if (!settings_.load_path.empty()) os << "loaded:    " << settings_.load_path << "\n";
  return os.str();
}

}  // namespace attnscope
