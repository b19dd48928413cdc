// The one exception telemetry/ throws. Telemetry sits beside the OpenCL runtime, not on it,
// and uses only the standard library, so it cannot throw attnscope::Error; main() gives a
// bad setting the usage exit code (2), like a UsageError, and any other failure 1.
#pragma once
#include <stdexcept>
#include <string>

namespace attnscope {

class TelemetryError : public std::runtime_error {
 public:
  enum class Kind { kFailure, kBadSetting };
  explicit TelemetryError(const std::string& message, Kind kind = Kind::kFailure)
      : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }
  bool bad_setting() const { return kind_ == Kind::kBadSetting; }

 private:
  Kind kind_;
};

}  // namespace attnscope
