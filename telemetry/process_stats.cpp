#include "telemetry/process_stats.hpp"

#include <sys/resource.h>
#include <time.h>

namespace attnscope {
namespace {

double seconds(const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) * 1e-6; }

}  // namespace

ProcessUsage read_process_usage() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  ProcessUsage result;
  result.user_s = seconds(usage.ru_utime);
  result.system_s = seconds(usage.ru_stime);
  result.peak_rss_bytes = uint64_t(usage.ru_maxrss) * 1024;  // Linux reports KiB
  return result;
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

}  // namespace attnscope
