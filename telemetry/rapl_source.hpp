// CPU energy from the RAPL powercap zones: <sysfs>/class/powercap/intel-rapl:N (named
// "package-N") and their subzones intel-rapl:N:M named "dram". Each zone's energy_uj
// counter (µJ) is checked on its own (it wraps at max_energy_range_uj); the source's
// energy is the sum over every package and dram zone. core/uncore subzones are inside
// their package and psys overlaps the packages, so they are not summed. Power in the
// series is the counter's difference over each sample interval.
#pragma once
#include <filesystem>

#include "telemetry/power_source.hpp"

namespace attnscope {

// A per-zone bound: no CPU package or DIMM set draws this much, while a misread wrap or
// a bad read implies far more.
constexpr double kRaplMaxPlausibleWattsPerZone = 1000;

// RAPL counters update about every millisecond.
constexpr double kRaplCounterResolutionSeconds = 0.001;

DetectedSource detect_rapl(const std::filesystem::path& sysfs_dir);

}  // namespace attnscope
