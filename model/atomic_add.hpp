// The float atomics of the fused attention backward (cl_kernels/atomic_add.cl): which
// implementation of add_to_global / add4_to_global a device gets. NVIDIA's reductions
// (inline PTX) only after a probe has proven them on the device: the vector form
// red.global.add.v4.f32 (sm_90) where it passes, else the scalar red.global.add.f32;
// otherwise the portable compare-and-swap loop. The choice is recorded with the run (the
// attention kernels' description).
#pragma once
#include <string>
#include <vector>

#include "host/runtime/runtime.hpp"

namespace attnscope {

// atomic_add.cl's ATOMIC_ADD_PTX levels 0, 1, 2.
enum class AtomicAdd { compare_and_swap, red_f32, red_v4_f32 };

struct AtomicAddPath {
  AtomicAdd kind = AtomicAdd::compare_and_swap;
  std::string reason;  // why not the vector reduction, when kind is anything else
  bool ptx() const { return kind != AtomicAdd::compare_and_swap; }
};

// Checks, in order, and stops at the first success: the device is an NVIDIA GPU (so no other
// compiler ever sees the asm); then, for red_v4_f32 and failing that red_f32, atomic_add.cl
// builds with that level and its atomic_add_probe kernel, kAtomicAddProbeItems work-items
// adding to a few sums at once, gives exactly atomic_add_probe_sums(). Never throws: a
// device that cannot gets the compare-and-swap loop, and the reason says why.
AtomicAddPath probe_atomic_add(Runtime& rt);

// How the adds are made, as runs report it: "red.global.add.v4.f32", "red.global.add.f32" or
// "compare-and-swap loop".
std::string atomic_add_name(AtomicAdd kind);
// What the probe found, as the manifest and `check` report it: "<name> passed", with why not
// the vector form when the scalar one passed, or why neither did.
std::string atomics_probe_result(const AtomicAddPath& path);
// The build option that selects it in atomic_add.cl (and the files that include it):
// -DATOMIC_ADD_PTX=0, 1 or 2.
std::string atomic_add_options(AtomicAdd kind);

constexpr int kAtomicAddProbeItems = 4096;
// The sums atomic_add_probe must produce with `items` work-items (every order of the adds
// gives these exactly: the addends are small multiples of 1/4): PROBE_SUMS scalar sums, then
// PROBE_SUMS vector-added ones.
std::vector<float> atomic_add_probe_sums(int items);

}  // namespace attnscope
