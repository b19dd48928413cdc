#include "host/runtime/device_info.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "host/runtime/error.hpp"

namespace attnscope {
namespace {

// Vendor queries for the PCI address (values from cl_ext.h; spelled out because older
// headers lack some of them).
constexpr cl_device_info kPciBusInfoKhr = 0x410F;
constexpr cl_device_info kPciBusIdNv = 0x4008;
constexpr cl_device_info kPciSlotIdNv = 0x4009;
constexpr cl_device_info kPciDomainIdNv = 0x400A;
constexpr cl_device_info kTopologyAmd = 0x4037;

std::string format_pci(unsigned domain, unsigned bus, unsigned device, unsigned function) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, bus, device, function);
  return buf;
}

bool raw_info(const cl::Device& d, cl_device_info what, void* out, size_t size) {
  return clGetDeviceInfo(d(), what, size, out, nullptr) == CL_SUCCESS;
}

std::string pci_bus_id(const cl::Device& d, const std::string& extensions) {
  if (extensions.find("cl_khr_pci_bus_info") != std::string::npos) {
    struct { cl_uint domain, bus, device, function; } info{};
    if (raw_info(d, kPciBusInfoKhr, &info, sizeof info))
      return format_pci(info.domain, info.bus, info.device, info.function);
  }
  if (extensions.find("cl_nv_device_attribute_query") != std::string::npos) {
    cl_uint bus = 0, slot = 0, domain = 0;
    if (raw_info(d, kPciBusIdNv, &bus, sizeof bus) && raw_info(d, kPciSlotIdNv, &slot, sizeof slot)) {
      raw_info(d, kPciDomainIdNv, &domain, sizeof domain);  // optional on old drivers
      // NVIDIA's slot id packs device (bits 3..7) and function (bits 0..2).
      return format_pci(domain, bus, slot >> 3, slot & 7);
    }
  }
  if (extensions.find("cl_amd_device_attribute_query") != std::string::npos) {
    struct { cl_uint type; cl_uint data[2]; cl_char unused[17]; cl_char bus, device, function; } topo{};
    if (raw_info(d, kTopologyAmd, &topo, sizeof topo) && topo.type == 1)
      return format_pci(0, (unsigned char)topo.bus, (unsigned char)topo.device,
                        (unsigned char)topo.function);
  }
  return "";
}

// A whole number > 0 for key, else UsageError; no sign, no trailing characters, no wrap.
uint64_t positive_number(const std::string& key, const std::string& text, uint64_t max) {
  const bool digits = !text.empty() && text.size() <= 19 &&
                      std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
  const uint64_t value = digits ? std::stoull(text) : 0;
  if (value == 0 || value > max)
    throw UsageError("ATTNSCOPE_DEVICE_LIMITS: " + key + "='" + text +
                     "' is not a whole number from 1 to " + std::to_string(max));
  return value;
}

// ATTNSCOPE_DEVICE_LIMITS="local_mem=49152,work_group=1024,compute_units=132,type=gpu,
// tuning=NVIDIA H200" makes a device plan as another does, so that a CPU device (PoCL:
// 2 MiB local memory, 4096-item work-groups, CPU type) runs the tiles and GEMM plans of
// that one (here the H200's). local_mem and work_group lower the limits tiles are sized
// from (a value above the device's own is an error, never a raise: the kernels must still
// run); type and compute_units are what the tile lists and the GEMM planner branch on;
// tuning names the device whose GEMM tuning entries apply; global_mem=BYTES lowers the
// memory a run's plan must fit (model/memory_plan.hpp). For tests and debugging.
void apply_limit_override(DeviceInfo& info) {
  const char* spec = std::getenv("ATTNSCOPE_DEVICE_LIMITS");
  if (!spec || !*spec) return;
  std::stringstream items(spec);
  for (std::string item; std::getline(items, item, ',');) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos)
      throw UsageError("ATTNSCOPE_DEVICE_LIMITS: '" + item + "' is not key=value");
    const std::string key = item.substr(0, eq), text = item.substr(eq + 1);
    auto lower = [&](auto& limit) {
      const uint64_t value = positive_number(key, text, UINT64_MAX);
      if (value > limit)
        throw UsageError("ATTNSCOPE_DEVICE_LIMITS: " + key + "=" + text + " exceeds the device's " +
                         std::to_string(limit));
      limit = value;
    };
    if (key == "local_mem") {
      lower(info.local_mem_bytes);
    } else if (key == "work_group") {
      lower(info.max_work_group_size);
    } else if (key == "compute_units") {
      info.compute_units = unsigned(positive_number(key, text, 1u << 20));
    } else if (key == "type") {
      if (text != "gpu" && text != "cpu")
        throw UsageError("ATTNSCOPE_DEVICE_LIMITS: type='" + text + "' is not gpu or cpu");
      info.is_gpu = text == "gpu";
      info.is_cpu = text == "cpu";
    } else if (key == "global_mem") {  // what a run's memory plan must fit
      lower(info.global_mem_bytes);
      info.max_alloc_bytes = std::min(info.max_alloc_bytes, info.global_mem_bytes);
    } else if (key == "tuning") {
      if (text.empty()) throw UsageError("ATTNSCOPE_DEVICE_LIMITS: tuning= needs a device name");
      info.tuning_name = text;
    } else {
      throw UsageError("ATTNSCOPE_DEVICE_LIMITS: unknown key '" + key +
                       "' (local_mem, work_group, global_mem, compute_units, type, tuning)");
    }
  }
}

DeviceInfo query(const cl::Platform& platform, const cl::Device& d, int pi, int di) {
  DeviceInfo info;
  info.platform_index = pi;
  info.device_index = di;
  info.platform_name = platform.getInfo<CL_PLATFORM_NAME>();
  info.name = d.getInfo<CL_DEVICE_NAME>();
  info.vendor = d.getInfo<CL_DEVICE_VENDOR>();
  info.version = d.getInfo<CL_DEVICE_VERSION>();
  info.driver_version = d.getInfo<CL_DRIVER_VERSION>();
  cl_device_type type = d.getInfo<CL_DEVICE_TYPE>();
  info.is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
  info.is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
  info.compute_units = d.getInfo<CL_DEVICE_MAX_COMPUTE_UNITS>();
  info.clock_mhz = d.getInfo<CL_DEVICE_MAX_CLOCK_FREQUENCY>();
  info.global_mem_bytes = d.getInfo<CL_DEVICE_GLOBAL_MEM_SIZE>();
  info.local_mem_bytes = d.getInfo<CL_DEVICE_LOCAL_MEM_SIZE>();
  info.max_alloc_bytes = d.getInfo<CL_DEVICE_MAX_MEM_ALLOC_SIZE>();
  info.max_work_group_size = d.getInfo<CL_DEVICE_MAX_WORK_GROUP_SIZE>();
  info.base_addr_align_bytes = d.getInfo<CL_DEVICE_MEM_BASE_ADDR_ALIGN>() / 8;
  std::string ext = d.getInfo<CL_DEVICE_EXTENSIONS>();
  info.fp64 = ext.find("cl_khr_fp64") != std::string::npos;
  info.pci_bus_id = pci_bus_id(d, ext);
  info.device = d;
  for (auto& c : info.name) if (c == '\0') c = ' ';
  while (!info.name.empty() && (info.name.back() == ' ')) info.name.pop_back();
  apply_limit_override(info);
  return info;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

std::string DeviceInfo::type_name() const { return is_gpu ? "GPU" : is_cpu ? "CPU" : "other"; }

bool DeviceInfo::is_nvidia() const {
  return lower(vendor).find("nvidia") != std::string::npos ||
         lower(platform_name).find("nvidia") != std::string::npos;
}

std::string DeviceInfo::short_label() const {
  return std::to_string(platform_index) + ":" + std::to_string(device_index) + " " + name;
}

std::vector<DeviceInfo> list_devices() {
  std::vector<cl::Platform> platforms;
  try {
    cl::Platform::get(&platforms);
  } catch (const cl::Error&) {
    platforms.clear();  // the ICD loader reports "no platforms" as an error
  }
  std::vector<DeviceInfo> out;
  for (size_t pi = 0; pi < platforms.size(); ++pi) {
    std::vector<cl::Device> devices;
    try {
      platforms[pi].getDevices(CL_DEVICE_TYPE_ALL, &devices);
    } catch (const cl::Error&) {
      continue;  // a platform with no devices
    }
    for (size_t di = 0; di < devices.size(); ++di)
      out.push_back(query(platforms[pi], devices[di], int(pi), int(di)));
  }
  return out;
}

// What each platform answered when it gave no device ("platform 'Portable Computing
// Language' gives no device (clGetDeviceIDs: CL_DEVICE_NOT_FOUND)"); "" without platforms.
std::string platforms_without_devices() {
  std::vector<cl::Platform> platforms;
  try {
    cl::Platform::get(&platforms);
  } catch (const cl::Error&) {
    return "";
  }
  std::string text;
  for (const cl::Platform& platform : platforms) {
    std::string name = "?";
    try {
      name = platform.getInfo<CL_PLATFORM_NAME>();
    } catch (const cl::Error&) {
    }
    cl_uint count = 0;  // the C call: the C++ wrapper hides CL_DEVICE_NOT_FOUND
    const cl_int status = clGetDeviceIDs(platform(), CL_DEVICE_TYPE_ALL, 0, nullptr, &count);
    text += (text.empty() ? "" : "; ") + ("platform '" + name + "' gives no device (clGetDeviceIDs: " +
                                          cl_status_name(status) + ", " + std::to_string(count) + " devices)");
  }
  return text;
}

DeviceInfo select_device(const std::string& spec) {
  std::vector<DeviceInfo> devices = list_devices();
  const std::string platforms = devices.empty() ? platforms_without_devices() : "";
  if (devices.empty() && !platforms.empty())
    throw Error("no OpenCL device found: " + platforms + "; its driver could not start (see any "
                "message it printed above; PoCL, for one, needs a writable cache directory)");
  if (devices.empty())
    throw Error("no OpenCL device found: no OpenCL platform is installed: install a driver (e.g. "
                "pocl-opencl-icd for the CPU) or set OCL_ICD_VENDORS");
  if (spec.empty()) {
    for (const auto& d : devices) if (d.is_gpu) return d;
    for (const auto& d : devices) if (d.is_cpu) return d;
    return devices.front();
  }
  int p = -1, d = -1;
  char tail = 0;
  if (std::sscanf(spec.c_str(), "%d:%d%c", &p, &d, &tail) == 2) {
    for (const auto& dev : devices)
      if (dev.platform_index == p && dev.device_index == d) return dev;
  } else {
    for (const auto& dev : devices)
      if (lower(dev.name).find(lower(spec)) != std::string::npos ||
          lower(dev.platform_name).find(lower(spec)) != std::string::npos)
        return dev;
  }
  std::string names;
  for (const auto& dev : devices) names += (names.empty() ? "" : ", ") + dev.short_label();
  throw UsageError("--device '" + spec + "' matches no OpenCL device (have: " + names + ")");
}

std::string describe_devices(const std::vector<DeviceInfo>& devices) {
  std::ostringstream os;
  if (devices.empty()) os << "no OpenCL platforms/devices found\n";
  int last_platform = -1;
  for (const auto& d : devices) {
    if (d.platform_index != last_platform) {
      os << "platform " << d.platform_index << ": " << d.platform_name << "\n";
      last_platform = d.platform_index;
    }
    os << "  " << d.platform_index << ":" << d.device_index << "  " << d.name << "  [" << d.type_name()
       << "]\n"
       << "      version: " << d.version << ", driver " << d.driver_version << "\n"
       << "      compute units: " << d.compute_units << ", clock: " << d.clock_mhz << " MHz\n"
       << "      global memory: " << (d.global_mem_bytes >> 20) << " MiB, max allocation: "
       << (d.max_alloc_bytes >> 20) << " MiB, local memory: " << (d.local_mem_bytes >> 10)
       << " KiB\n"
       << "      max work-group: " << d.max_work_group_size << ", fp64: " << (d.fp64 ? "yes" : "no")
       << ", PCI bus id: " << (d.pci_bus_id.empty() ? "(not exposed)" : d.pci_bus_id) << "\n";
  }
  return os.str();
}

}  // namespace attnscope
