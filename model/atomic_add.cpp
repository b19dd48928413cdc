#include "model/atomic_add.hpp"

#include <cstring>

#include "host/runtime/error.hpp"

namespace attnscope {

namespace {

constexpr const char* kFile = "atomic_add.cl";
constexpr int kProbeSums = 8;  // atomic_add.cl's PROBE_SUMS

AtomicAddPath portable(const std::string& reason) { return {false, reason}; }

}  // namespace

std::vector<float> atomic_add_probe_sums(int items) {
  std::vector<float> sums(kProbeSums, 0.f);
  for (int id = 0; id < items; ++id) sums[id % kProbeSums] += 0.25f * float(id % 13 + 1);
  return sums;
}

std::string atomic_add_name(bool ptx) {
  return ptx ? "red.global.add.f32" : "compare-and-swap loop";
}

AtomicAddPath probe_atomic_add(Runtime& rt) {
  const DeviceInfo& d = rt.device();
  if (!d.is_gpu || !d.is_nvidia())
    return portable(d.name + " is not an NVIDIA GPU: compare-and-swap loop");
  const std::string options = "-DATOMIC_ADD_PTX=1";
  try {
    rt.program(kFile, options);
  } catch (const std::exception& e) {
    return portable("building atomic_add.cl with red.global.add.f32 failed on " + d.name + ": " +
                    first_log_line(e.what()));
  }
  const std::vector<float> want = atomic_add_probe_sums(kAtomicAddProbeItems);
  std::vector<float> got;
  try {
    DeviceBuffer sums = rt.alloc_floats(want.size(), "atomic add probe");
    rt.fill(sums, 0.f, want.size());
    cl::Kernel kernel = rt.kernel(kFile, "atomic_add_probe", options);
    set_args(kernel, sums.buffer());
    // Enqueued directly: the probe is no part of a run's kernel profile.
    rt.queue().enqueueNDRangeKernel(kernel, cl::NullRange, cl::NDRange(kAtomicAddProbeItems),
                                    cl::NullRange);
    got = rt.download_vector<float>(sums, want.size());
  } catch (const std::exception& e) {
    return portable("running atomic_add_probe on " + d.name + " failed: " + e.what());
  }
  for (size_t i = 0; i < want.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0)
      return portable("atomic_add_probe on " + d.name + ": sum " + std::to_string(i) + " is " +
                      std::to_string(got[i]) + ", not " + std::to_string(want[i]));
  return {true, ""};
}

}  // namespace attnscope
