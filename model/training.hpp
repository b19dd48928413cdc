// One training run: model + data + optimizer, stepped by `attnscope train` and by the
// benchmark. Timing follows docs/DESIGN.md, "Metrics": a step's time is host wall time
// from its first enqueue to the completion of AdamW; validation runs outside it.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "model/data.hpp"
#include "model/gpt2.hpp"

namespace attnscope {

struct TrainSettings {
  ModelConfig model;
  std::string variant = "baseline";
  AttentionOptions attention;
  int batch = 4;
  int seq = 64;
  int steps = 50;  // the run's length: the learning-rate schedule decays over it
  uint64_t seed = 1337;  // initial weights and the synthetic corpus
  OptimizerConfig optimizer;
  DataSpec data;
  int val_every = 0;     // 0: only at the end
  int val_batches = 4;
  std::string load_path;  // checkpoint to start from (llm.c format)
};

struct StepResult {
  int64_t step = 0;
  float loss = 0;
  float grad_norm = 0;
  float lr = 0;  // the learning rate of this step's update (the schedule applied)
  double step_ms = 0;
  double tokens_per_s = 0;
};

class TrainingRun {
 public:
  TrainingRun(Ops& ops, const TrainSettings& settings);

  // One timed training step. Throws Error naming what is not finite when the loss or the
  // gradient norm is not.
  StepResult step();
  // Mean loss over settings.val_batches held-out batches (the same ones every time).
  float validate();
  void save_checkpoint(const std::string& path) const;
  // Multi-line description: model, variant, optimizer hyper-parameters, data, memory.
  std::string banner() const;

  GPT2& model() { return *model_; }
  const TrainSettings& settings() const { return settings_; }
  int64_t steps_done() const { return step_; }

 private:
  void load_or_init();
  std::string non_finite_step_message(float loss, float grad_norm) const;
  Ops& ops_;
  TrainSettings settings_;
  DataLoaders data_;
  std::unique_ptr<GPT2> model_;
  int64_t step_ = 0;
  float previous_grad_norm_ = 0;
};

}  // namespace attnscope
