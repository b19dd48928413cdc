// Per-kernel profile from OpenCL profiling events: calls, device time, FLOPs, bytes.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "host/runtime/opencl.hpp"

namespace attnscope {

// Analytic cost of one launch: FLOPs executed (2 per multiply-add) and bytes moved
// through global memory (each input read once, each output written once).
struct KernelCost {
  double flops = 0;
  double bytes = 0;
};

struct KernelStats {
  std::string name;
  uint64_t calls = 0;
  double total_ns = 0;
  double flops = 0;
  double bytes = 0;
};

class KernelProfiler {
 public:
  void record(const std::string& name, cl::Event event, const KernelCost& cost);
  // Reads the finished events' timestamps (call after clFinish) and folds them into the
  // per-kernel totals. Returns the summed device time of the collected launches, ns.
  double collect();
  // Totals since the last reset, sorted by total time, descending.
  std::vector<KernelStats> stats() const;
  // Drops the totals and any launches not yet collected.
  void reset() {
    totals_.clear();
    pending_.clear();
  }
  // While off, record() drops launches: the benchmark profiles only measured steps.
  void set_enabled(bool on) { enabled_ = on; }
  // Drops the launches not collected yet (a step that failed before its clFinish).
  void discard_pending() { pending_.clear(); }

 private:
  struct Pending {
    std::string name;
    cl::Event event;
    KernelCost cost;
  };
  bool enabled_ = true;
  std::vector<Pending> pending_;
  std::map<std::string, KernelStats> totals_;
};

// Profiling on (or off) for as long as this object lives (RAII); on leaving the scope,
// normally or by an exception, profiling is off and uncollected launches are dropped.
class ScopedProfiling {
 public:
  ScopedProfiling(KernelProfiler& profiler, bool on) : profiler_(profiler) { profiler_.set_enabled(on); }
  ~ScopedProfiling() {
    profiler_.set_enabled(false);
    profiler_.discard_pending();
  }
  ScopedProfiling(const ScopedProfiling&) = delete;
  ScopedProfiling& operator=(const ScopedProfiling&) = delete;

 private:
  KernelProfiler& profiler_;
};

}  // namespace attnscope
