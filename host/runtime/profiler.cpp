#include "host/runtime/profiler.hpp"

#include <algorithm>

namespace attnscope {

void KernelProfiler::record(const std::string& name, cl::Event event, const KernelCost& cost) {
  if (enabled_) pending_.push_back({name, std::move(event), cost});
}

double KernelProfiler::collect() {
  double sum_ns = 0;
  for (auto& p : pending_) {
    cl_ulong start = p.event.getProfilingInfo<CL_PROFILING_COMMAND_START>();
    cl_ulong end = p.event.getProfilingInfo<CL_PROFILING_COMMAND_END>();
    double ns = end > start ? double(end - start) : 0.0;
    KernelStats& s = totals_[p.name];
    s.name = p.name;
    s.calls += 1;
    s.total_ns += ns;
    s.flops += p.cost.flops;
    s.bytes += p.cost.bytes;
    sum_ns += ns;
  }
  pending_.clear();
  return sum_ns;
}

std::vector<KernelStats> KernelProfiler::stats() const {
  std::vector<KernelStats> out;
  for (const auto& kv : totals_) out.push_back(kv.second);
  std::sort(out.begin(), out.end(),
            [](const KernelStats& a, const KernelStats& b) { return a.total_ns > b.total_ns; });
  return out;
}

}  // namespace attnscope
