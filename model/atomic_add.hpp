// The float atomics of the fused attention backward (cl_kernels/atomic_add.cl): which
// implementation of add_to_global a device gets. NVIDIA's red.global.add.f32 (inline PTX)
// only after a probe has proven it on the device; otherwise the portable compare-and-swap
// loop. The choice is recorded with the run (the attention kernels' description).
#pragma once
#include <string>
#include <vector>

#include "host/runtime/runtime.hpp"

namespace attnscope {

struct AtomicAddPath {
  bool ptx = false;    // red.global.add.f32 proven on this device
  std::string reason;  // why not, when ptx is false
};

// Checks, in order, and stops at the first failure: the device is an NVIDIA GPU (so no other
// compiler ever sees the asm); atomic_add.cl builds with ATOMIC_ADD_PTX=1; its
// atomic_add_probe kernel, kAtomicAddProbeItems work-items adding to a few sums at once,
// gives exactly atomic_add_probe_sums(). Never throws: a device that cannot gets the
// compare-and-swap loop, and the reason says why.
AtomicAddPath probe_atomic_add(Runtime& rt);

// How add_to_global adds, as runs report it: "red.global.add.f32" (ptx) or
// "compare-and-swap loop".
std::string atomic_add_name(bool ptx);

constexpr int kAtomicAddProbeItems = 4096;
// The sums atomic_add_probe must produce with `items` work-items (every order of the adds
// gives these exactly: the addends are small multiples of 1/4).
std::vector<float> atomic_add_probe_sums(int items);

}  // namespace attnscope
