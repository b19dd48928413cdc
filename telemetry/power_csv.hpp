// power.csv: the sampler's series, one row per sample of one source, in time order.
// Columns: time_s (TelemetryClock seconds; add the manifest's clock_origin_unix_s for
// Unix time), source, watts, memory_used_bytes, utilization_percent, clock_mhz,
// temperature_c. A metric the source does not report is an empty cell, never 0.
#pragma once
#include <ostream>
#include <vector>

#include "telemetry/sampler.hpp"

namespace attnscope {

void write_power_csv_header(std::ostream& out);
void write_power_csv_rows(std::ostream& out, const std::vector<PowerRow>& rows);

}  // namespace attnscope
