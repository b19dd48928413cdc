// The learning rate of each training step, scheduled as llm.c's train_gpt2.cu does: a
// linear warm-up, lr·(s+1)/W at 0-based step s < W, then a decay from the peak lr down to
// min_lr_frac·lr over the rest of the run, with r = (s − W)/(N − W) for a run of N steps:
//   cosine: min + (lr − min)·½(1 + cos πr)     linear: lr − r·(lr − min)     none: lr
// Warm-up keeps AdamW's first updates small while its second-moment estimates are still
// noisy (without it, lr 6e-4 spikes the loss at T=4096 in the first steps; issue 13).
#pragma once
#include <cstdint>
#include <string>

namespace attnscope {

enum class LrDecay { kNone, kLinear, kCosine };

struct LrSchedule {
  int warmup_steps = 0;  // W
  LrDecay decay = LrDecay::kNone;
  float min_lr_frac = 0.f;  // the decay's end as a fraction of the peak, in [0, 1]
};

// "none", "linear", "cosine"; parse throws UsageError for anything else.
const char* lr_decay_name(LrDecay decay);
LrDecay parse_lr_decay(const std::string& name);

// The learning rate of step `step` (counted from 1, as TrainingRun counts) of a run of
// `total_steps` steps whose peak learning rate is `peak`.
float scheduled_lr(float peak, const LrSchedule& schedule, int64_t step, int64_t total_steps);

}  // namespace attnscope
