// The part of NVML that attnscope uses, loaded at run time with dlopen so that the
// binary has no link-time dependency on the NVIDIA driver. Types, constants and
// function signatures are declared here exactly as nvml.h declares them (nvmlReturn_t
// and the other enums are C enums, i.e. int-sized).
#pragma once
#include <memory>
#include <string>

namespace attnscope::nvml {

using Return = int;  // nvmlReturn_t
constexpr Return kSuccess = 0;  // NVML_SUCCESS

struct DeviceOpaque;               // struct nvmlDevice_st
using Device = DeviceOpaque*;      // nvmlDevice_t

struct Memory {  // nvmlMemory_t (the v1 struct of nvmlDeviceGetMemoryInfo), bytes
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct Utilization {  // nvmlUtilization_t, percent over the driver's last sample period
  unsigned int gpu;
  unsigned int memory;
};

union Value {  // nvmlValue_t
  double dVal;
  int siVal;
  unsigned int uiVal;
  unsigned long ulVal;
  unsigned long long ullVal;
  long long sllVal;
  unsigned short usVal;
};

enum ValueType : int {  // nvmlValueType_t
  kValueDouble = 0,
  kValueUnsignedInt = 1,
  kValueUnsignedLong = 2,
  kValueUnsignedLongLong = 3,
  kValueSignedLongLong = 4,
  kValueSignedInt = 5,
  kValueUnsignedShort = 6,
};

struct FieldValue {  // nvmlFieldValue_t
  unsigned int fieldId;
  unsigned int scopeId;  // for power fields: 0 = the GPU alone (NVML_POWER_SCOPE_GPU)
  long long timestamp;   // µs since 1970
  long long latencyUsec;
  int valueType;         // nvmlValueType_t
  Return nvmlReturn;
  Value value;
};
static_assert(sizeof(FieldValue) == 40, "nvmlFieldValue_t is 40 bytes on LP64");

constexpr unsigned int kFieldPowerInstant = 186;  // NVML_FI_DEV_POWER_INSTANT, mW
constexpr int kClockSm = 1;                        // NVML_CLOCK_SM
constexpr int kTemperatureGpu = 0;                 // NVML_TEMPERATURE_GPU

// Entry points; the ones marked optional may be missing from old drivers (nullptr).
struct Api {
  Return (*Init_v2)();
  Return (*Shutdown)();
  const char* (*ErrorString)(Return);
  Return (*DeviceGetHandleByPciBusId_v2)(const char* pciBusId, Device* device);
  Return (*DeviceGetPowerUsage)(Device, unsigned int* milliwatts);
  Return (*DeviceGetName)(Device, char* name, unsigned int length);
  // optional:
  Return (*DeviceGetFieldValues)(Device, int valuesCount, FieldValue* values);
  Return (*DeviceGetTotalEnergyConsumption)(Device, unsigned long long* millijoules);
  Return (*DeviceGetEnforcedPowerLimit)(Device, unsigned int* milliwatts);
  Return (*DeviceGetMemoryInfo)(Device, Memory* memory);
  Return (*DeviceGetUtilizationRates)(Device, Utilization* utilization);
  Return (*DeviceGetClockInfo)(Device, int clockType, unsigned int* mhz);
  Return (*DeviceGetTemperature)(Device, int sensorType, unsigned int* celsius);
  Return (*SystemGetDriverVersion)(char* version, unsigned int length);

  std::string error_string(Return status) const;
};

// The loaded and initialized library. nvmlShutdown runs on destruction; the library
// itself stays mapped (unloading a driver library mid-process is not worth its risks).
class Library {
 public:
  // nullptr with *reason set when the library cannot be loaded or initialized.
  static std::unique_ptr<Library> open(const std::string& file_name, std::string* reason);
  ~Library();
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  const Api& api() const { return api_; }

 private:
  Library() = default;
  Api api_{};
};

}  // namespace attnscope::nvml
