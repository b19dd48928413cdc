#include "telemetry/nvml_source.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>

#include "telemetry/checked_counter.hpp"
#include "telemetry/nvml_api.hpp"
#include "telemetry/pci_address.hpp"

namespace attnscope {
namespace {

struct NvmlMetrics {
  bool memory = false;
  bool utilization = false;
  bool clock = false;
  bool temperature = false;
};

std::optional<double> field_as_double(const nvml::FieldValue& field) {
  switch (field.valueType) {
    case nvml::kValueDouble: return field.value.dVal;
    case nvml::kValueUnsignedInt: return double(field.value.uiVal);
    case nvml::kValueUnsignedLong: return double(field.value.ulVal);
    case nvml::kValueUnsignedLongLong: return double(field.value.ullVal);
    case nvml::kValueSignedLongLong: return double(field.value.sllVal);
    case nvml::kValueSignedInt: return double(field.value.siVal);
    case nvml::kValueUnsignedShort: return double(field.value.usVal);
    default: return std::nullopt;
  }
}

// Instantaneous power in mW; *error says why not when nullopt.
std::optional<double> read_instant_milliwatts(const nvml::Api& api, nvml::Device device, std::string* error) {
  if (!api.DeviceGetFieldValues) {
    *error = "nvmlDeviceGetFieldValues missing (driver too old)";
    return std::nullopt;
  }
  nvml::FieldValue field{};
  field.fieldId = nvml::kFieldPowerInstant;
  field.scopeId = 0;
  nvml::Return status = api.DeviceGetFieldValues(device, 1, &field);
  if (status != nvml::kSuccess) {
    *error = api.error_string(status);
    return std::nullopt;
  }
  if (field.nvmlReturn != nvml::kSuccess) {
    *error = api.error_string(field.nvmlReturn);
    return std::nullopt;
  }
  std::optional<double> milliwatts = field_as_double(field);
  if (!milliwatts) *error = "unknown value type " + std::to_string(field.valueType);
  return milliwatts;
}

std::optional<double> read_average_milliwatts(const nvml::Api& api, nvml::Device device, std::string* error) {
  unsigned int milliwatts = 0;
  nvml::Return status = api.DeviceGetPowerUsage(device, &milliwatts);
  if (status != nvml::kSuccess) {
    *error = api.error_string(status);
    return std::nullopt;
  }
  return double(milliwatts);
}

class NvmlSource : public PowerSource {
 public:
  NvmlSource(SourceStatus status, std::unique_ptr<nvml::Library> library, nvml::Device device,
             bool instant_power, NvmlMetrics metrics, std::optional<CheckedCounter> counter)
      : status_(std::move(status)),
        library_(std::move(library)),
        device_(device),
        instant_power_(instant_power),
        metrics_(metrics),
        counter_(std::move(counter)) {}

  const SourceStatus& status() const override { return status_; }

  std::optional<PowerSample> sample(const TelemetryClock& clock) override {
    const nvml::Api& api = library_->api();
    std::string ignored;
    std::optional<double> milliwatts = instant_power_ ? read_instant_milliwatts(api, device_, &ignored)
                                                      : read_average_milliwatts(api, device_, &ignored);
    if (!milliwatts) {
      count_failed_read();
      return std::nullopt;
    }
    PowerSample sample;
    sample.time_s = clock.now();
    sample.watts = *milliwatts * 1e-3;
    read_metrics(api, &sample);
    return sample;
  }

  // Called by the sampler's counter thread (between windows, in probes of the counter's
  // update times, and at window edges where a read is expensive) and, where it is
  // cheap, by the thread closing a window.
  std::optional<CounterSnapshot> read_counter(const TelemetryClock& clock) override {
    if (!counter_) return std::nullopt;
    // One read at a time, so that readings reach the checked counter in time order.
    std::lock_guard<std::mutex> reading(read_mutex_);
    unsigned long long millijoules = 0;
    double start_s = clock.now();
    nvml::Return status = library_->api().DeviceGetTotalEnergyConsumption(device_, &millijoules);
    double end_s = clock.now();
    if (status != nvml::kSuccess) {
      count_failed_read();
      return std::nullopt;
    }
    // The driver took the value somewhere inside the call: stamped at its middle.
    double time_s = 0.5 * (start_s + end_s);
    counter_->feed(millijoules, time_s);
    CounterSnapshot snapshot{time_s, end_s - start_s, counter_->joules(), counter_->glitches(),
                             counter_->advances(), counter_->last_advance_s()};
    std::lock_guard<std::mutex> lock(latest_mutex_);
    latest_ = snapshot;
    return snapshot;
  }

  // Never waits for a read in progress (which can take milliseconds).
  std::optional<CounterSnapshot> latest_counter() const override {
    std::lock_guard<std::mutex> lock(latest_mutex_);
    return latest_;
  }

 private:
  void read_metrics(const nvml::Api& api, PowerSample* sample) const {
    nvml::Memory memory{};
    if (metrics_.memory && api.DeviceGetMemoryInfo(device_, &memory) == nvml::kSuccess)
      sample->memory_used_bytes = memory.used;
    nvml::Utilization utilization{};
    if (metrics_.utilization && api.DeviceGetUtilizationRates(device_, &utilization) == nvml::kSuccess)
      sample->utilization_percent = utilization.gpu;
    unsigned int value = 0;
    if (metrics_.clock && api.DeviceGetClockInfo(device_, nvml::kClockSm, &value) == nvml::kSuccess)
      sample->clock_mhz = value;
    if (metrics_.temperature && api.DeviceGetTemperature(device_, nvml::kTemperatureGpu, &value) == nvml::kSuccess)
      sample->temperature_c = value;
  }

  SourceStatus status_;
  std::unique_ptr<nvml::Library> library_;
  nvml::Device device_;
  bool instant_power_;
  NvmlMetrics metrics_;
  std::mutex read_mutex_;  // guards counter_
  std::optional<CheckedCounter> counter_;
  mutable std::mutex latest_mutex_;  // guards latest_
  std::optional<CounterSnapshot> latest_;
};

// The cost of one counter read (the cheapest of three: preemption can only add to it).
// On some GPUs the call takes milliseconds (4 ms of CPU measured on an H100 with driver
// 580), which decides where the counter is read. nullopt: the GPU has no counter.
std::optional<double> counter_read_seconds(const nvml::Api& api, nvml::Device device) {
  if (!api.DeviceGetTotalEnergyConsumption) return std::nullopt;
  double cheapest = 1e9;
  for (int i = 0; i < 3; ++i) {
    unsigned long long millijoules = 0;
    auto start = std::chrono::steady_clock::now();
    if (api.DeviceGetTotalEnergyConsumption(device, &millijoules) != nvml::kSuccess) return std::nullopt;
    cheapest = std::min(cheapest, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return cheapest;
}

NvmlMetrics probe_metrics(const nvml::Api& api, nvml::Device device) {
  NvmlMetrics metrics;
  nvml::Memory memory{};
  nvml::Utilization utilization{};
  unsigned int value = 0;
  metrics.memory = api.DeviceGetMemoryInfo && api.DeviceGetMemoryInfo(device, &memory) == nvml::kSuccess;
  metrics.utilization = api.DeviceGetUtilizationRates &&
                        api.DeviceGetUtilizationRates(device, &utilization) == nvml::kSuccess;
  metrics.clock = api.DeviceGetClockInfo && api.DeviceGetClockInfo(device, nvml::kClockSm, &value) == nvml::kSuccess;
  metrics.temperature = api.DeviceGetTemperature &&
                        api.DeviceGetTemperature(device, nvml::kTemperatureGpu, &value) == nvml::kSuccess;
  return metrics;
}

std::vector<std::string> metric_names(const NvmlMetrics& metrics) {
  std::vector<std::string> names;
  if (metrics.memory) names.push_back("memory_used");
  if (metrics.utilization) names.push_back("utilization");
  if (metrics.clock) names.push_back("clock");
  if (metrics.temperature) names.push_back("temperature");
  return names;
}

std::optional<double> enforced_limit_watts(const nvml::Api& api, nvml::Device device) {
  unsigned int milliwatts = 0;
  if (!api.DeviceGetEnforcedPowerLimit || api.DeviceGetEnforcedPowerLimit(device, &milliwatts) != nvml::kSuccess ||
      milliwatts == 0)
    return std::nullopt;
  return milliwatts * 1e-3;
}

std::string device_description(const nvml::Api& api, nvml::Device device, const std::string& bus_id) {
  char name[96] = "";
  char driver[96] = "";
  api.DeviceGetName(device, name, sizeof name);
  std::string text = std::string(name[0] ? name : "NVIDIA GPU") + " (" + bus_id + ")";
  if (api.SystemGetDriverVersion && api.SystemGetDriverVersion(driver, sizeof driver) == nvml::kSuccess)
    text += ", driver " + std::string(driver);
  return text;
}

}  // namespace

DetectedSource detect_nvml(const std::string& pci_bus_id, const std::string& library_file) {
  auto unavailable = [](std::string reason) {
    return unavailable_source("nvml", DeviceKind::kGpu, std::move(reason));
  };
  if (pci_bus_id.empty())
    return unavailable("the OpenCL device reports no PCI bus id, so no NVML device can be matched to it");
  std::optional<PciAddress> address = parse_pci_address(pci_bus_id);
  if (!address) return unavailable("malformed PCI bus id '" + pci_bus_id + "'");
  std::string reason;
  std::unique_ptr<nvml::Library> library = nvml::Library::open(library_file, &reason);
  if (!library) return unavailable(reason);
  const nvml::Api& api = library->api();
  const std::string bus_id = nvml_pci_string(*address);
  nvml::Device device = nullptr;
  nvml::Return found = api.DeviceGetHandleByPciBusId_v2(bus_id.c_str(), &device);
  if (found != nvml::kSuccess)
    return unavailable("no NVML device with PCI bus id " + bus_id + ": " + api.error_string(found) +
                       " (the OpenCL device is not an NVIDIA GPU, or NVML cannot see it)");

  SourceStatus status;
  status.name = "nvml";
  status.device = DeviceKind::kGpu;
  status.available = true;
  status.detail = device_description(api, device, bus_id);

  std::string instant_error, average_error;
  bool instant = read_instant_milliwatts(api, device, &instant_error).has_value();
  if (instant) {
    status.power_method = "NVML_FI_DEV_POWER_INSTANT (instantaneous, mW)";
  } else if (read_average_milliwatts(api, device, &average_error)) {
    status.power_method = "nvmlDeviceGetPowerUsage (1 s moving average on Ampere and newer, mW); "
                          "NVML_FI_DEV_POWER_INSTANT unavailable: " + instant_error;
    status.power_averaging_s = kNvmlAveragePowerSeconds;
  } else {
    return unavailable("no power reading: NVML_FI_DEV_POWER_INSTANT: " + instant_error +
                       "; nvmlDeviceGetPowerUsage: " + average_error);
  }

  std::optional<double> limit = enforced_limit_watts(api, device);
  status.max_plausible_watts = limit ? *limit * kNvmlPowerLimitMargin : kNvmlFallbackMaxPlausibleWatts;
  status.detail += limit ? ", enforced power limit " + std::to_string(int(*limit + 0.5)) + " W"
                         : ", enforced power limit unknown";

  std::optional<CheckedCounter> counter;
  if (std::optional<double> read_seconds = counter_read_seconds(api, device)) {
    CounterSpec spec;
    spec.joules_per_unit = 1e-3;
    spec.max_plausible_watts = *status.max_plausible_watts;
    spec.resolution_s = kNvmlCounterResolutionSeconds;
    counter.emplace(spec);
    status.has_energy_counter = true;
    status.counter_resolution_s = kNvmlCounterResolutionSeconds;
    set_counter_read_policy(status, *read_seconds);
    status.detail += "; energy counter nvmlDeviceGetTotalEnergyConsumption (mJ), one read " +
                     std::to_string(int(*read_seconds * 1e6 + 0.5)) + " us";
    if (!status.counter_read_by_caller)
      status.detail += ", so read by the sampler's thread at window edges and every " +
                       std::to_string(int(*status.counter_poll_s * 1e3 + 0.5)) + " ms between them";
  } else {
    status.detail += "; no energy counter (before Volta): energy is the sampled integral";
  }

  NvmlMetrics metrics = probe_metrics(api, device);
  status.metrics = metric_names(metrics);
  DetectedSource detected;
  detected.status = status;
  detected.source = std::make_unique<NvmlSource>(std::move(status), std::move(library), device, instant,
                                                 metrics, std::move(counter));
  return detected;
}

}  // namespace attnscope
