// CPU time and memory of this process, from getrusage. CPU utilization over an interval
// is defined as process CPU seconds (user + system, all threads) divided by wall
// seconds: the average number of cores kept busy (1.0 = one core fully busy). The
// telemetry sampler's own thread is part of the process and so of these figures; its
// share is reported separately (SamplerStats).
#pragma once
#include <cstdint>

namespace attnscope {

struct ProcessUsage {
  double user_s = 0;
  double system_s = 0;
  uint64_t peak_rss_bytes = 0;  // the process's largest resident set so far
};

ProcessUsage read_process_usage();

// CPU time consumed so far by the calling thread.
double thread_cpu_seconds();

}  // namespace attnscope
