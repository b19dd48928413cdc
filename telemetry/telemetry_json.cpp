#include "telemetry/telemetry_json.hpp"

namespace attnscope {
namespace {

template <typename T>
nlohmann::json optional_json(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

nlohmann::json source_energy_json(const SourceEnergy& e) {
  return {{"source", e.source},
          {"device", device_kind_name(e.device)},
          {"method", energy_method_name(e.method)},
          {"joules", optional_json(e.joules)},
          {"counter_joules", optional_json(e.counter_joules)},
          {"sampled_joules", optional_json(e.sampled_joules)},
          {"counter_read_begin_s", optional_json(e.counter_read_begin_s)},
          {"counter_read_end_s", optional_json(e.counter_read_end_s)},
          {"counter_update_begin_s", optional_json(e.counter_update_begin_s)},
          {"counter_update_end_s", optional_json(e.counter_update_end_s)},
          {"counter_bridge_joules", optional_json(e.counter_bridge_joules)},
          {"counter_uncertainty_s", optional_json(e.counter_uncertainty_s)},
          {"disagreement", optional_json(e.disagreement())},
          {"mean_watts", optional_json(e.mean_watts)},
          {"peak_watts", optional_json(e.peak_watts)},
          {"peak_memory_used_bytes", optional_json(e.peak_memory_used_bytes)},
          {"samples", e.samples},
          {"flags",
           {{"glitch_rejected", e.flags.glitch_rejected},
            {"stale_counter", e.flags.stale_counter},
            {"shorter_than_counter_resolution", e.flags.shorter_than_counter_resolution},
            {"counter_too_coarse", e.flags.counter_too_coarse},
            {"averaged_power", e.flags.averaged_power}}}};
}

}  // namespace

nlohmann::json source_status_json(const SourceStatus& s) {
  return {{"name", s.name},
          {"device", device_kind_name(s.device)},
          {"available", s.available},
          {"detail", s.detail},
          {"power_method", s.available ? nlohmann::json(s.power_method) : nlohmann::json(nullptr)},
          {"energy_counter", s.has_energy_counter},
          {"counter_resolution_s", optional_json(s.counter_resolution_s)},
          {"counter_read_s", optional_json(s.counter_read_s)},
          {"counter_edge_reads", s.has_energy_counter ? nlohmann::json(s.counter_read_by_caller ? "caller" : "sampler")
                                                     : nlohmann::json(nullptr)},
          {"counter_poll_s", optional_json(s.counter_poll_s)},
          {"counter_update_timing", s.available && coarse_counter(s)},
          {"power_independent_of_counter", s.power_independent_of_counter},
          {"power_averaging_s", optional_json(s.power_averaging_s)},
          // Windows shorter than this are flagged averaged_power.
          {"averaged_power_below_s", s.power_averaging_s ? nlohmann::json(kAveragedPowerWindows * *s.power_averaging_s)
                                                         : nlohmann::json(nullptr)},
          {"max_plausible_watts", optional_json(s.max_plausible_watts)},
          {"metrics", s.metrics},
          {"failed_reads", s.failed_reads}};
}

nlohmann::json window_json(const WindowResult& w) {
  nlohmann::json sources = nlohmann::json::array();
  for (const SourceEnergy& e : w.sources) sources.push_back(source_energy_json(e));
  return {{"name", w.name},
          {"begin_s", w.begin_s},
          {"end_s", w.end_s},
          {"duration_s", w.duration_s()},
          {"cpu_user_s", w.cpu_user_s},
          {"cpu_system_s", w.cpu_system_s},
          {"cpu_utilization", w.cpu_utilization()},
          {"peak_rss_bytes", w.peak_rss_bytes},
          {"sources", sources}};
}

nlohmann::json telemetry_manifest_json(const Telemetry& telemetry) {
  nlohmann::json sources = nlohmann::json::array();
  for (const SourceStatus& status : telemetry.sources()) sources.push_back(source_status_json(status));
  SamplerStats stats = telemetry.sampler_stats();
  return {{"sample_interval_ms", telemetry.config().sample_interval.count()},
          {"clock_origin_unix_s", telemetry.clock().origin_unix_seconds()},
          {"sysfs_root", telemetry.config().sysfs_root},
          {"sources", sources},
          {"sampler",
           {{"wall_s", stats.wall_seconds},
            {"cpu_s", stats.cpu_seconds},
            {"cpu_share", stats.cpu_share()},
            {"ticks", stats.ticks},
            {"missed_ticks", stats.missed_ticks},
            {"edge_ticks", stats.edge_ticks},
            {"counter_reads", stats.counter_reads},
            {"end_window_waits", stats.end_waits},
            {"end_window_wait_mean_s", stats.end_wait_mean_s},
            {"end_window_wait_max_s", stats.end_wait_max_s}}}};
}

}  // namespace attnscope
