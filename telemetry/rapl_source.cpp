#include "telemetry/rapl_source.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>

#include "telemetry/checked_counter.hpp"
#include "telemetry/sysfs_files.hpp"

namespace attnscope {
namespace fs = std::filesystem;
namespace {

struct RaplZone {
  std::string label;  // "package-0 (intel-rapl:0)"
  fs::path energy_path;
  CheckedCounter counter;
};

class RaplSource : public PowerSource {
 public:
  RaplSource(SourceStatus status, std::vector<RaplZone> zones)
      : status_(std::move(status)), zones_(std::move(zones)) {}

  const SourceStatus& status() const override { return status_; }

  std::optional<PowerSample> sample(const TelemetryClock& clock) override {
    std::lock_guard<std::mutex> lock(mutex_);
    std::optional<CounterSnapshot> now = read_locked(clock);
    if (!now) return std::nullopt;
    std::optional<CounterSnapshot> previous = last_sampled_;
    last_sampled_ = now;
    // No power over an interval where a reading was rejected: the gap is bridged by
    // interpolation instead of showing the rejected energy as a dip.
    if (!previous || now->glitches != previous->glitches || now->time_s <= previous->time_s)
      return std::nullopt;
    PowerSample sample;
    // The difference is the mean power over the interval: stamp it at the midpoint.
    sample.time_s = 0.5 * (previous->time_s + now->time_s);
    sample.watts = (now->joules - previous->joules) / (now->time_s - previous->time_s);
    return sample;
  }

  std::optional<CounterSnapshot> read_counter(const TelemetryClock& clock) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return read_locked(clock);
  }

  std::optional<CounterSnapshot> latest_counter() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return latest_;
  }

 private:
  std::optional<CounterSnapshot> read_locked(const TelemetryClock& clock) {
    CounterSnapshot snapshot;
    snapshot.time_s = clock.now();  // a few small sysfs reads: the read's start will do
    for (RaplZone& zone : zones_) {
      FileValue<uint64_t> raw = read_unsigned_file(zone.energy_path);
      if (!raw.value) {
        count_failed_read();
        return std::nullopt;
      }
      zone.counter.feed(*raw.value, snapshot.time_s);
      snapshot.joules += zone.counter.joules();
      snapshot.glitches += zone.counter.glitches();
      snapshot.advances += zone.counter.advances();
      snapshot.last_advance_s = std::max(snapshot.last_advance_s, zone.counter.last_advance_s());
    }
    latest_ = snapshot;
    return snapshot;
  }

  SourceStatus status_;
  mutable std::mutex mutex_;
  std::optional<CounterSnapshot> latest_;
  std::vector<RaplZone> zones_;
  std::optional<CounterSnapshot> last_sampled_;
};

// "intel-rapl:0" → {0}, "intel-rapl:0:2" → {0, 2}; empty when the name is not a zone.
std::vector<unsigned> zone_indices(const std::string& name) {
  const std::string prefix = "intel-rapl:";
  if (name.compare(0, prefix.size(), prefix) != 0) return {};
  std::vector<unsigned> indices;
  std::string rest = name.substr(prefix.size()) + ":";
  size_t start = 0;
  for (size_t colon; (colon = rest.find(':', start)) != std::string::npos; start = colon + 1) {
    std::string field = rest.substr(start, colon - start);
    if (field.empty() || field.size() > 6 || field.find_first_not_of("0123456789") != std::string::npos)
      return {};
    indices.push_back(unsigned(std::stoul(field)));
  }
  return indices;
}

// The zone directories of one nesting depth under dir (1: packages, 2: subzones), in
// index order so that reports list package-0 before package-10.
std::vector<fs::path> zone_dirs(const fs::path& dir, size_t depth) {
  std::vector<std::pair<std::vector<unsigned>, fs::path>> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    std::vector<unsigned> indices = zone_indices(entry.path().filename().string());
    if (indices.size() == depth) found.emplace_back(indices, entry.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> dirs;
  for (auto& [indices, path] : found) dirs.push_back(path);
  return dirs;
}

bool is_summed_zone(const std::string& name, size_t depth) {
  return depth == 1 ? name.rfind("package-", 0) == 0 : name == "dram";
}

std::string unreadable_reason(const FileValue<uint64_t>& value) {
  if (value.error_number == EACCES)
    return value.error + " (since Linux 5.10 energy_uj is readable by root only: run as root or "
                         "grant read access to it)";
  return value.error;
}

// Builds the checked counter of one zone; the error when its files cannot be read.
std::optional<RaplZone> open_zone(const fs::path& dir, const std::string& name, std::string* error) {
  FileValue<uint64_t> range = read_unsigned_file(dir / "max_energy_range_uj");
  if (!range.value) {
    *error = unreadable_reason(range);
    return std::nullopt;
  }
  FileValue<uint64_t> energy = read_unsigned_file(dir / "energy_uj");
  if (!energy.value) {
    *error = unreadable_reason(energy);
    return std::nullopt;
  }
  CounterSpec spec;
  spec.joules_per_unit = 1e-6;
  if (*range.value > 0) spec.wrap_range = *range.value;
  spec.max_plausible_watts = kRaplMaxPlausibleWattsPerZone;
  spec.resolution_s = kRaplCounterResolutionSeconds;
  return RaplZone{name + " (" + dir.filename().string() + ")", dir / "energy_uj", CheckedCounter(spec)};
}

// What reading every zone's counter once costs: the cheapest of three passes, since
// preemption can only add to it.
double read_seconds(const std::vector<RaplZone>& zones) {
  double cheapest = 1e9;
  for (int pass = 0; pass < 3; ++pass) {
    auto start = std::chrono::steady_clock::now();
    for (const RaplZone& zone : zones) read_unsigned_file(zone.energy_path);
    cheapest = std::min(cheapest, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return cheapest;
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

}  // namespace

DetectedSource detect_rapl(const fs::path& sysfs_dir) {
  const fs::path powercap = sysfs_dir / "class" / "powercap";
  auto unavailable = [](std::string reason) {
    return unavailable_source("rapl", DeviceKind::kCpu, std::move(reason));
  };
  std::error_code error;
  if (!fs::is_directory(powercap, error))
    return unavailable("no " + powercap.string() + " (no powercap driver, or sysfs is mounted elsewhere: --sysfs-root)");

  std::vector<RaplZone> zones;
  std::vector<std::string> skipped;
  for (const fs::path& package : zone_dirs(powercap, 1)) {
    std::vector<fs::path> dirs{package};
    for (const fs::path& subzone : zone_dirs(package, 2)) dirs.push_back(subzone);
    for (const fs::path& dir : dirs) {
      FileValue<std::string> name = read_text_file(dir / "name");
      if (!name.value) return unavailable(name.error);
      if (!is_summed_zone(*name.value, dir == package ? 1 : 2)) {
        skipped.push_back(*name.value + " (" + dir.filename().string() + ")");
        continue;
      }
      std::string zone_error;
      std::optional<RaplZone> zone = open_zone(dir, *name.value, &zone_error);
      if (!zone) return unavailable(zone_error);
      zones.push_back(std::move(*zone));
    }
  }
  if (zones.empty())
    return unavailable("no RAPL package or dram zone (intel-rapl:N) under " + powercap.string());

  SourceStatus status;
  status.name = "rapl";
  status.device = DeviceKind::kCpu;
  status.available = true;
  std::vector<std::string> labels;
  for (const RaplZone& zone : zones) labels.push_back(zone.label);
  status.detail = "zones summed: " + join(labels);
  if (!skipped.empty())
    status.detail += "; not summed (inside a package, or overlapping): " + join(skipped);
  status.power_method = "energy_uj differences over each sample interval";
  status.has_energy_counter = true;
  status.counter_resolution_s = kRaplCounterResolutionSeconds;
  status.power_independent_of_counter = false;
  status.max_plausible_watts = kRaplMaxPlausibleWattsPerZone;
  set_counter_read_policy(status, read_seconds(zones));
  DetectedSource detected;
  detected.status = status;
  detected.source = std::make_unique<RaplSource>(std::move(status), std::move(zones));
  return detected;
}

}  // namespace attnscope
