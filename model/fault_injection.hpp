// Test-only fault injection. ATTNSCOPE_TEST_FAULT=VARIANT:STEP makes training step STEP
// (counted from 1) of every run of VARIANT throw DeviceOutOfMemory midway, after its
// forward pass is enqueued: what a device that runs out of memory inside a step does. The
// tests use it to check that a failed run closes what it opened (telemetry windows,
// profiling, the queue, device buffers). Unset or empty: nothing is injected.
#pragma once
#include <cstdint>

#include "model/attention_variant.hpp"

namespace attnscope {

// Throws DeviceOutOfMemory where ATTNSCOPE_TEST_FAULT names this variant and step; throws
// UsageError where the variable is malformed. Without the variable it costs a comparison:
// it runs in every training step.
void inject_step_fault_if_asked(const AttentionVariant& attention, int64_t step);

}  // namespace attnscope
