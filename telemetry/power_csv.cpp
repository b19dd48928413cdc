#include "telemetry/power_csv.hpp"

#include <cstdio>

namespace attnscope {
namespace {

// Fixed decimals keep the file diffable and free of locale or exponent surprises.
std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

template <typename T>
std::string cell(const std::optional<T>& value, int decimals) {
  return value ? fixed(double(*value), decimals) : std::string();
}

}  // namespace

void write_power_csv_header(std::ostream& out) {
  out << "time_s,source,watts,memory_used_bytes,utilization_percent,clock_mhz,temperature_c\n";
}

void write_power_csv_rows(std::ostream& out, const std::vector<PowerRow>& rows) {
  for (const PowerRow& row : rows) {
    const PowerSample& s = row.sample;
    out << fixed(s.time_s, 6) << ',' << row.source << ',' << fixed(s.watts, 3) << ','
        << (s.memory_used_bytes ? std::to_string(*s.memory_used_bytes) : std::string()) << ','
        << cell(s.utilization_percent, 1) << ',' << cell(s.clock_mhz, 1) << ',' << cell(s.temperature_c, 1)
        << '\n';
  }
}

}  // namespace attnscope
