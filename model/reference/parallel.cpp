#include "model/reference/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace attnscope::reference {

namespace {

std::atomic<int> requested_threads{0};  // 0: the hardware's
thread_local bool inside_parallel_for = false;

}  // namespace

int reference_threads() {
  const int requested = requested_threads.load();
  if (requested > 0) return requested;
  return std::max(1u, std::thread::hardware_concurrency());
}

void set_reference_threads(int threads) { requested_threads = std::max(0, threads); }

void parallel_for(int count, const std::function<void(int)>& body) {
  const int threads = std::min(count, reference_threads());
  if (threads <= 1 || inside_parallel_for) {
    for (int i = 0; i < count; ++i) body(i);
    return;
  }
  std::atomic<int> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&] {
    inside_parallel_for = true;
    try {
      for (int i = next++; i < count; i = next++) body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = count;  // the others stop at their next index
    }
    inside_parallel_for = false;
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {  // no more threads: those running share the rest
      break;
    }
  }
  work();
  for (auto& thread : pool) thread.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace attnscope::reference
