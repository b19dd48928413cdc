// The one time base of a telemetry session: seconds since the session began, on the
// steady clock, so that samples, counter readings and window edges can be compared
// directly. The wall-clock time of the origin is kept for the manifest.
#pragma once
#include <chrono>

namespace attnscope {

class TelemetryClock {
 public:
  TelemetryClock()
      : origin_(std::chrono::steady_clock::now()), origin_wall_(std::chrono::system_clock::now()) {}

  double now() const { return seconds_at(std::chrono::steady_clock::now()); }

  double seconds_at(std::chrono::steady_clock::time_point t) const {
    return std::chrono::duration<double>(t - origin_).count();
  }

  // The steady-clock time point of `seconds` on this clock (to sleep until it).
  std::chrono::steady_clock::time_point time_point_at(double seconds) const {
    return origin_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(seconds));
  }

  // Seconds since 1970 at the origin: time_s in power.csv plus this is Unix time.
  double origin_unix_seconds() const {
    return std::chrono::duration<double>(origin_wall_.time_since_epoch()).count();
  }

 private:
  std::chrono::steady_clock::time_point origin_;
  std::chrono::system_clock::time_point origin_wall_;
};

}  // namespace attnscope
