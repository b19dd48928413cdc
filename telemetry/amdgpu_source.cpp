#include "telemetry/amdgpu_source.hpp"

#include <algorithm>

#include "telemetry/pci_address.hpp"
#include "telemetry/sysfs_files.hpp"

namespace attnscope {
namespace fs = std::filesystem;
namespace {

// The optional files of one card, empty paths where absent.
struct AmdgpuFiles {
  fs::path power;
  fs::path vram_used;
  fs::path busy_percent;
  fs::path shader_clock_hz;
  fs::path temperature_millicelsius;
};

class AmdgpuSource : public PowerSource {
 public:
  AmdgpuSource(SourceStatus status, AmdgpuFiles files)
      : status_(std::move(status)), files_(std::move(files)) {}

  const SourceStatus& status() const override { return status_; }

  std::optional<PowerSample> sample(const TelemetryClock& clock) override {
    PowerSample sample;
    sample.time_s = clock.now();
    FileValue<uint64_t> microwatts = read_unsigned_file(files_.power);
    if (!microwatts.value) {
      count_failed_read();
      return std::nullopt;
    }
    sample.watts = double(*microwatts.value) * 1e-6;
    sample.memory_used_bytes = optional_value(files_.vram_used);
    if (auto busy = optional_value(files_.busy_percent)) sample.utilization_percent = double(*busy);
    if (auto hz = optional_value(files_.shader_clock_hz)) sample.clock_mhz = double(*hz) * 1e-6;
    if (auto mc = optional_value(files_.temperature_millicelsius)) sample.temperature_c = double(*mc) * 1e-3;
    return sample;
  }

 private:
  static std::optional<uint64_t> optional_value(const fs::path& path) {
    if (path.empty()) return std::nullopt;
    return read_unsigned_file(path).value;
  }

  SourceStatus status_;
  AmdgpuFiles files_;
};

bool is_card_name(const std::string& name) {
  return name.size() > 4 && name.compare(0, 4, "card") == 0 &&
         name.find_first_not_of("0123456789", 4) == std::string::npos;
}

// The card's PCI address: the device symlink's target is the PCI device directory;
// where that is not a link (copied trees), uevent names it.
std::optional<PciAddress> card_pci_address(const fs::path& device_dir) {
  std::error_code error;
  fs::path target = fs::canonical(device_dir, error);
  if (!error) {
    if (auto address = parse_pci_address(target.filename().string())) return address;
  }
  FileValue<std::string> uevent = read_text_file(device_dir / "uevent");
  if (!uevent.value) return std::nullopt;
  const std::string key = "PCI_SLOT_NAME=";
  size_t at = uevent.value->find(key);
  if (at == std::string::npos) return std::nullopt;
  size_t end = uevent.value->find('\n', at);
  return parse_pci_address(uevent.value->substr(at + key.size(), end == std::string::npos ? end : end - at - key.size()));
}

std::optional<fs::path> find_card_device(const fs::path& drm, const PciAddress& wanted) {
  std::vector<fs::path> cards;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(drm, error))
    if (is_card_name(entry.path().filename().string())) cards.push_back(entry.path());
  std::sort(cards.begin(), cards.end());
  for (const fs::path& card : cards) {
    auto address = card_pci_address(card / "device");
    if (address && *address == wanted) return card / "device";
  }
  return std::nullopt;
}

fs::path existing(const fs::path& path) {
  std::error_code error;
  return fs::exists(path, error) ? path : fs::path();
}

// The first hwmon directory with a power file, and the files it and the device offer.
std::optional<AmdgpuFiles> find_files(const fs::path& device_dir) {
  std::vector<fs::path> hwmons;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(device_dir / "hwmon", error))
    if (entry.path().filename().string().rfind("hwmon", 0) == 0) hwmons.push_back(entry.path());
  std::sort(hwmons.begin(), hwmons.end());
  for (const fs::path& hwmon : hwmons) {
    AmdgpuFiles files;
    files.power = existing(hwmon / "power1_average");
    if (files.power.empty()) files.power = existing(hwmon / "power1_input");
    if (files.power.empty()) continue;
    files.vram_used = existing(device_dir / "mem_info_vram_used");
    files.busy_percent = existing(device_dir / "gpu_busy_percent");
    files.shader_clock_hz = existing(hwmon / "freq1_input");
    files.temperature_millicelsius = existing(hwmon / "temp1_input");
    return files;
  }
  return std::nullopt;
}

std::vector<std::string> metric_names(const AmdgpuFiles& files) {
  std::vector<std::string> names;
  if (!files.vram_used.empty()) names.push_back("memory_used");
  if (!files.busy_percent.empty()) names.push_back("utilization");
  if (!files.shader_clock_hz.empty()) names.push_back("clock");
  if (!files.temperature_millicelsius.empty()) names.push_back("temperature");
  return names;
}

}  // namespace

DetectedSource detect_amdgpu(const fs::path& sysfs_dir, const std::string& pci_bus_id) {
  auto unavailable = [](std::string reason) {
    return unavailable_source("amdgpu", DeviceKind::kGpu, std::move(reason));
  };
  if (pci_bus_id.empty())
    return unavailable("the OpenCL device reports no PCI bus id, so no DRM card can be matched to it");
  std::optional<PciAddress> wanted = parse_pci_address(pci_bus_id);
  if (!wanted) return unavailable("malformed PCI bus id '" + pci_bus_id + "'");
  const fs::path drm = sysfs_dir / "class" / "drm";
  std::error_code error;
  if (!fs::is_directory(drm, error)) return unavailable("no " + drm.string());
  std::optional<fs::path> device_dir = find_card_device(drm, *wanted);
  if (!device_dir)
    return unavailable("no DRM card with PCI address " + sysfs_pci_string(*wanted) + " under " + drm.string());
  std::optional<AmdgpuFiles> files = find_files(*device_dir);
  if (!files)
    return unavailable("no power1_average or power1_input under " + (*device_dir / "hwmon").string() +
                       " (not an amdgpu device, or a driver without power reporting)");
  FileValue<uint64_t> first = read_unsigned_file(files->power);
  if (!first.value) return unavailable(first.error);

  SourceStatus status;
  status.name = "amdgpu";
  status.device = DeviceKind::kGpu;
  status.available = true;
  status.detail = "DRM device " + device_dir->string() + " (PCI " + sysfs_pci_string(*wanted) + ")";
  bool averaged = files->power.filename() == "power1_average";
  status.power_method = files->power.filename().string() +
                        (averaged ? " (firmware-averaged over about 1 s, µW)" : " (instantaneous, µW)");
  if (averaged) status.power_averaging_s = kAmdgpuAveragePowerSeconds;
  status.metrics = metric_names(*files);
  DetectedSource detected;
  detected.status = status;
  detected.source = std::make_unique<AmdgpuSource>(std::move(status), std::move(*files));
  return detected;
}

}  // namespace attnscope
