#include "model/fault_injection.hpp"

#include <cstdlib>
#include <optional>
#include <string>

#include "host/runtime/error.hpp"

namespace attnscope {
namespace {

struct StepFault {
  std::string variant;
  int64_t step = 0;
};

std::optional<StepFault> parse_fault(const char* spec) {
  if (!spec || !*spec) return std::nullopt;
  const std::string text = spec;
  const size_t colon = text.rfind(':');
  char* end = nullptr;
  const long long step = colon == std::string::npos ? 0 : std::strtoll(text.c_str() + colon + 1, &end, 10);
  if (colon == 0 || step < 1 || *end != '\0')
    throw UsageError("ATTNSCOPE_TEST_FAULT: '" + text + "' is not VARIANT:STEP (a step from 1)");
  return StepFault{text.substr(0, colon), step};
}

}  // namespace

void inject_step_fault_if_asked(const AttentionVariant& attention, int64_t step) {
  static const std::optional<StepFault> fault = parse_fault(std::getenv("ATTNSCOPE_TEST_FAULT"));
  if (fault && fault->step == step && fault->variant == attention.info().name)
    throw DeviceOutOfMemory("injected fault (ATTNSCOPE_TEST_FAULT) in step " + std::to_string(step) +
                            " of " + fault->variant);
}

}  // namespace attnscope
