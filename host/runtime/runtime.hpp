// The OpenCL runtime every layer uses: one context and in-order queue on one device,
// a program cache (each (file, build options) pair is compiled once per process),
// tracked buffer allocation (current and peak bytes) and profiled kernel launches.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host/runtime/device_info.hpp"
#include "host/runtime/opencl.hpp"
#include "host/runtime/profiler.hpp"

namespace attnscope {

class MemoryTracker {
 public:
  void on_alloc(size_t bytes);
  void on_free(size_t bytes);
  size_t current_bytes() const { return current_; }
  size_t peak_bytes() const { return peak_; }
  void reset_peak() { peak_ = current_; }

 private:
  size_t current_ = 0;
  size_t peak_ = 0;
};

// A device allocation whose size is counted by the runtime's MemoryTracker for as long
// as it lives. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(cl::Buffer buffer, size_t bytes, MemoryTracker* tracker);
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  const cl::Buffer& buffer() const { return buffer_; }
  cl::Buffer& buffer() { return buffer_; }
  operator const cl::Buffer&() const { return buffer_; }
  size_t bytes() const { return bytes_; }
  size_t floats() const { return bytes_ / sizeof(float); }
  bool empty() const { return bytes_ == 0; }

 private:
  void release();
  cl::Buffer buffer_;
  size_t bytes_ = 0;
  MemoryTracker* tracker_ = nullptr;
};

class Runtime {
 public:
  // device_spec as for select_device(). Profiling on: every launch records an event.
  explicit Runtime(const std::string& device_spec = "", bool profiling = true);

  const DeviceInfo& device() const { return device_; }
  cl::Context& context() { return context_; }
  cl::CommandQueue& queue() { return queue_; }

  // Compiled once per (file, options) per process. `file` is relative to cl_kernels/,
  // e.g. "gemm.cl" or "attention/baseline.cl". Build failure throws with the build log.
  const cl::Program& program(const std::string& file, const std::string& options = "");
  // A new kernel object of the program (its arguments unset).
  cl::Kernel kernel(const std::string& file, const std::string& name,
                    const std::string& options = "");
  // One kernel object per (file, options, name) for the process, for hot launches (the
  // GEMM: creating a kernel costs a driver call, setting arguments does not). The queue
  // captures arguments at enqueue, so reuse is safe when every launch sets every argument;
  // not for kernels with __local-size arguments, whose sizes would stay set and count in
  // CL_KERNEL_LOCAL_MEM_SIZE for the next user.
  cl::Kernel shared_kernel(const std::string& file, const std::string& name,
                           const std::string& options = "");
  // Compiles the programs of `file` with each of the option strings that are not cached
  // yet, on several threads at once (a tuner's hundreds of variants compile in the time of
  // tens). One that fails to build is left out of the cache: program() then builds it again
  // and reports its log.
  void build_programs(const std::string& file, const std::vector<std::string>& option_sets);

  // Tracked allocations. alloc() never returns uninitialised memory to a reader by
  // accident: use fill()/upload() before reading.
  DeviceBuffer alloc(size_t bytes, const std::string& label);
  DeviceBuffer alloc_floats(size_t count, const std::string& label) {
    return alloc(count * sizeof(float), label);
  }
  // A view of [offset, offset+bytes) of parent. offset must be a multiple of
  // device().base_addr_align_bytes. Not counted by the tracker (the parent is).
  cl::Buffer sub_buffer(const cl::Buffer& parent, size_t offset_bytes, size_t bytes);

  void upload(const cl::Buffer& dst, const void* src, size_t bytes, size_t offset = 0);
  void download(const cl::Buffer& src, void* dst, size_t bytes, size_t offset = 0);
  void fill(const cl::Buffer& dst, float value, size_t count, size_t offset_floats = 0);
  void copy(const cl::Buffer& src, const cl::Buffer& dst, size_t bytes);
  template <typename T>
  std::vector<T> download_vector(const cl::Buffer& src, size_t count) {
    std::vector<T> v(count);
    download(src, v.data(), count * sizeof(T));
    return v;
  }

  // Enqueues kernel over `global` (rounded up to a multiple of `local` by the caller).
  // `cost` feeds the per-kernel profile (GFLOP/s, GB/s) under `profile_name` (default:
  // the kernel's function name). local = cl::NullRange allowed.
  void launch(const cl::Kernel& kernel, const cl::NDRange& global, const cl::NDRange& local,
              const KernelCost& cost = {}, const std::string& profile_name = "");
  void finish();
  // finish() for a destructor or an error path: waits for the queue and ignores its
  // errors (a queue that failed has nothing left to wait for).
  void drain() noexcept;

  // What a launch ran: its profile name, its kernel function and its program's file and
  // build options (which carry the tiles). With a log set, every launch appends one;
  // `attnscope check` prints them so that its output shows the tiles and GEMM plans in use.
  struct LaunchRecord {
    std::string name, function, file, options;
  };
  void set_launch_log(std::vector<LaunchRecord>* log) { launch_log_ = log; }

  MemoryTracker& memory() { return memory_; }
  KernelProfiler& profiler() { return profiler_; }

 private:
  void dump_binary(const std::string& file, const std::string& options,
                   const cl::Program& program) const;

  DeviceInfo device_;
  cl::Context context_;
  cl::CommandQueue queue_;
  bool profiling_;
  std::map<std::pair<std::string, std::string>, cl::Program> programs_;
  std::map<std::string, cl::Kernel> kernels_;  // key: file, options and name
  MemoryTracker memory_;
  KernelProfiler profiler_;
  std::vector<LaunchRecord>* launch_log_ = nullptr;
};

// Round n up to a multiple of m.
inline size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

// Kernel arguments, set in order; a failure names the kernel and the argument index.
template <typename... Args>
void set_args(cl::Kernel& kernel, const Args&... args) {
  cl_uint index = 0;
  (kernel.setArg(index++, args), ...);
}

}  // namespace attnscope
