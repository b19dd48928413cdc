// Telemetry in the run manifest: every source with its availability and reason, how it
// reads power and energy, the sampling interval, and window results. Absent figures are
// JSON null, never 0.
#pragma once
#include <nlohmann/json.hpp>

#include "telemetry/telemetry.hpp"

namespace attnscope {

nlohmann::json source_status_json(const SourceStatus& status);
nlohmann::json window_json(const WindowResult& window);

// {"sample_interval_ms", "clock_origin_unix_s", "sysfs_root", "sources": [...], "sampler": {...}}
nlohmann::json telemetry_manifest_json(const Telemetry& telemetry);

}  // namespace attnscope
