#include "model/atomic_add.hpp"

#include <cstring>

#include "host/runtime/error.hpp"

namespace attnscope {

namespace {

constexpr const char* kFile = "atomic_add.cl";
constexpr int kProbeSums = 8;  // atomic_add.cl's PROBE_SUMS

// Per AtomicAdd, in its order: how runs name it, and atomic_add.cl's level.
struct AtomicAddForm {
  const char* name;
  const char* options;
};
constexpr AtomicAddForm kForms[] = {{"compare-and-swap loop", "-DATOMIC_ADD_PTX=0"},
                                    {"red.global.add.f32", "-DATOMIC_ADD_PTX=1"},
                                    {"red.global.add.v4.f32", "-DATOMIC_ADD_PTX=2"}};

float probe_value(int id) { return 0.25f * float(id % 13 + 1); }

// Builds atomic_add.cl at `kind`'s level and runs its probe: "" when the sums are exact,
// else why not.
std::string run_probe(Runtime& rt, AtomicAdd kind) {
  const DeviceInfo& d = rt.device();
  const std::string options = atomic_add_options(kind), name = atomic_add_name(kind);
  try {
    rt.program(kFile, options);
  } catch (const std::exception& e) {
    return "building atomic_add.cl with " + name + " failed on " + d.name + ": " +
           first_log_line(e.what());
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
    return "running atomic_add_probe with " + name + " on " + d.name + " failed: " + e.what();
  }
  for (size_t i = 0; i < want.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0)
      return "atomic_add_probe with " + name + " on " + d.name + ": sum " + std::to_string(i) +
             " is " + std::to_string(got[i]) + ", not " + std::to_string(want[i]);
  return "";
}

}  // namespace

std::vector<float> atomic_add_probe_sums(int items) {
  std::vector<float> sums(2 * kProbeSums, 0.f);
  for (int id = 0; id < items; ++id) {
    sums[id % kProbeSums] += probe_value(id);
    float* group = &sums[kProbeSums + 4 * (id % (kProbeSums / 4))];  // add4_to_global's
    for (int c = 0; c < 4; ++c) group[c] += probe_value(id + c);
  }
  return sums;
}

std::string atomic_add_name(AtomicAdd kind) { return kForms[int(kind)].name; }

std::string atomic_add_options(AtomicAdd kind) { return kForms[int(kind)].options; }

std::string atomics_probe_result(const AtomicAddPath& path) {
  if (!path.ptx()) return path.reason;
  const std::string passed = atomic_add_name(path.kind) + " passed";
  return path.reason.empty() ? passed : passed + " (" + path.reason + ")";
}

AtomicAddPath probe_atomic_add(Runtime& rt) {
  const DeviceInfo& d = rt.device();
  if (!d.is_gpu || !d.is_nvidia())
    return {AtomicAdd::compare_and_swap, d.name + " is not an NVIDIA GPU: compare-and-swap loop"};
  const std::string vector_failure = run_probe(rt, AtomicAdd::red_v4_f32);
  if (vector_failure.empty()) return {AtomicAdd::red_v4_f32, ""};
  const std::string scalar_failure = run_probe(rt, AtomicAdd::red_f32);
  if (scalar_failure.empty()) return {AtomicAdd::red_f32, vector_failure};
  return {AtomicAdd::compare_and_swap, vector_failure + "; " + scalar_failure};
}

}  // namespace attnscope
