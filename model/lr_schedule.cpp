#include "model/lr_schedule.hpp"

#include <algorithm>
#include <cmath>

#include "host/runtime/error.hpp"

namespace attnscope {

const char* lr_decay_name(LrDecay decay) {
  switch (decay) {
    case LrDecay::kLinear: return "linear";
    case LrDecay::kCosine: return "cosine";
    case LrDecay::kNone: break;
  }
  return "none";
}

LrDecay parse_lr_decay(const std::string& name) {
  for (LrDecay decay : {LrDecay::kNone, LrDecay::kLinear, LrDecay::kCosine})
    if (name == lr_decay_name(decay)) return decay;
  throw UsageError("--lr-decay: expected cosine, linear or none, got '" + name + "'");
}

float scheduled_lr(float peak, const LrSchedule& schedule, int64_t step, int64_t total_steps) {
  const int64_t s = step - 1, warmup = schedule.warmup_steps;  // llm.c counts from 0
  if (s < warmup) return peak * float(s + 1) / float(warmup);
  if (schedule.decay == LrDecay::kNone) return peak;
  const float r = std::clamp(float(s - warmup) / float(std::max<int64_t>(1, total_steps - warmup)), 0.f, 1.f);
  const float min_lr = peak * schedule.min_lr_frac;
  if (schedule.decay == LrDecay::kLinear) return peak - r * (peak - min_lr);
  const float coeff = 0.5f * (1.0f + std::cos(float(M_PI) * r));
  return min_lr + coeff * (peak - min_lr);
}

}  // namespace attnscope
