#include "host/runtime/runtime.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <cstdlib>

#include <fstream>
#include <functional>
#include <iostream>

#include "host/runtime/error.hpp"
#include "host/runtime/kernel_sources.hpp"

namespace attnscope {

void MemoryTracker::on_alloc(size_t bytes) {
  current_ += bytes;
  if (current_ > peak_) peak_ = current_;
}

void MemoryTracker::on_free(size_t bytes) { current_ -= bytes; }

DeviceBuffer::DeviceBuffer(cl::Buffer buffer, size_t bytes, MemoryTracker* tracker)
    : buffer_(std::move(buffer)), bytes_(bytes), tracker_(tracker) {
  if (tracker_) tracker_->on_alloc(bytes_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : buffer_(std::move(other.buffer_)), bytes_(other.bytes_), tracker_(other.tracker_) {
  other.bytes_ = 0;
  other.tracker_ = nullptr;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    buffer_ = std::move(other.buffer_);
    bytes_ = other.bytes_;
    tracker_ = other.tracker_;
    other.bytes_ = 0;
    other.tracker_ = nullptr;
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() { release(); }

void DeviceBuffer::release() {
  if (tracker_) tracker_->on_free(bytes_);
  tracker_ = nullptr;
  bytes_ = 0;
  buffer_ = cl::Buffer();
}

Runtime::Runtime(const std::string& device_spec, bool profiling)
    : device_(select_device(device_spec)), profiling_(profiling) {
  try {
    context_ = cl::Context(device_.device);
    cl::QueueProperties props = profiling ? cl::QueueProperties::Profiling : cl::QueueProperties::None;
    queue_ = cl::CommandQueue(context_, device_.device, props);
  } catch (const cl::Error& e) {
    rethrow_cl_error(e.err(), e.what(), "creating a context on " + device_.short_label());
  }
  profiler_.set_enabled(profiling);
}

const cl::Program& Runtime::program(const std::string& file, const std::string& options) {
  auto key = std::make_pair(file, options);
  auto it = programs_.find(key);
  if (it != programs_.end()) return it->second;
  cl::Program program(context_, expanded_kernel_source(file));
  std::string full_options = "-cl-std=CL1.2 " + options;
  try {
    program.build({device_.device}, full_options.c_str());
  } catch (const cl::Error&) {
    std::string log = program.getBuildInfo<CL_PROGRAM_BUILD_LOG>(device_.device);
    throw Error("building cl_kernels/" + file + " with options '" + full_options + "' failed on " +
                device_.short_label() + ":\n" + log);
  }
  // ATTNSCOPE_BUILD_LOG=1 shows the compiler's warnings of programs that did build.
  const char* show = std::getenv("ATTNSCOPE_BUILD_LOG");
  if (show && std::string(show) == "1") {
    std::string log = program.getBuildInfo<CL_PROGRAM_BUILD_LOG>(device_.device);
    if (log.find_first_not_of(" \n\r\t") != std::string::npos)
      std::fprintf(stderr, "build log of cl_kernels/%s (%s):\n%s\n", file.c_str(),
                   full_options.c_str(), log.c_str());
  }
  dump_binary(file, full_options, program);
  return programs_.emplace(key, std::move(program)).first->second;
}

// ATTNSCOPE_DUMP_BINARIES=DIR writes what the compiler produced for each program (PTX on
// NVIDIA: read it for spills and vector loads rather than guessing), named after the file
// and a hash of its options, with the options as the first line of a .txt beside it.
void Runtime::dump_binary(const std::string& file, const std::string& options,
                          const cl::Program& program) const {
  const char* dir = std::getenv("ATTNSCOPE_DUMP_BINARIES");
  if (!dir || !*dir) return;
  std::vector<std::vector<unsigned char>> binaries = program.getInfo<CL_PROGRAM_BINARIES>();
  if (binaries.empty()) return;
  std::string stem = file;
  for (char& c : stem)
    if (c == '/' || c == '.') c = '_';
  stem = std::string(dir) + "/" + stem + "_" + std::to_string(std::hash<std::string>{}(options) % 1000000);
  std::ofstream(stem + ".txt") << options << "\n";
  std::ofstream(stem + ".bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(binaries[0].data()), std::streamsize(binaries[0].size()));
}

cl::Kernel Runtime::kernel(const std::string& file, const std::string& name,
                           const std::string& options) {
  try {
    return cl::Kernel(program(file, options), name.c_str());
  } catch (const cl::Error& e) {
    rethrow_cl_error(e.err(), e.what(), "creating kernel " + name + " from " + file);
  }
}

cl::Kernel Runtime::shared_kernel(const std::string& file, const std::string& name,
                                  const std::string& options) {
  const std::string key = file + '\n' + options + '\n' + name;
  if (auto it = kernels_.find(key); it != kernels_.end()) return it->second;
  return kernels_[key] = kernel(file, name, options);
}

void Runtime::build_programs(const std::string& file, const std::vector<std::string>& option_sets) {
  std::vector<std::pair<std::string, cl::Program>> pending;
  const std::string source = expanded_kernel_source(file);
  for (const auto& options : option_sets)
    if (!programs_.count({file, options})) pending.emplace_back(options, cl::Program(context_, source));
  std::atomic<size_t> next{0};
  std::vector<char> built(pending.size(), 0);
  auto work = [&] {
    for (size_t i; (i = next++) < pending.size();) {
      const std::string full_options = "-cl-std=CL1.2 " + pending[i].first;
      try {
        pending[i].second.build({device_.device}, full_options.c_str());
        built[i] = 1;
      } catch (const cl::Error&) {  // left out of the cache; program() reports it
      }
    }
  };
  const size_t threads = std::min<size_t>(8, std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) pool.emplace_back(work);
  for (auto& thread : pool) thread.join();
  for (size_t i = 0; i < pending.size(); ++i)
    if (built[i]) programs_.emplace(std::make_pair(file, pending[i].first), pending[i].second);
}

DeviceBuffer Runtime::alloc(size_t bytes, const std::string& label) {
  if (bytes == 0) bytes = sizeof(float);  // OpenCL forbids empty buffers
  if (bytes > device_.max_alloc_bytes)
    throw DeviceOutOfMemory("allocating " + label + " (" + std::to_string(bytes >> 20) +
                            " MiB) exceeds the device's max allocation of " +
                            std::to_string(device_.max_alloc_bytes >> 20) + " MiB");
  try {
    return DeviceBuffer(cl::Buffer(context_, CL_MEM_READ_WRITE, bytes), bytes, &memory_);
  } catch (const cl::Error& e) {
    rethrow_cl_error(e.err(), e.what(), "allocating " + label);
  }
}

cl::Buffer Runtime::sub_buffer(const cl::Buffer& parent, size_t offset_bytes, size_t bytes) {
  cl_buffer_region region{offset_bytes, bytes};
  cl_int status = CL_SUCCESS;
  cl_mem mem = clCreateSubBuffer(parent(), CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION,
                                 &region, &status);
  if (status != CL_SUCCESS)
    rethrow_cl_error(status, "clCreateSubBuffer",
                     "sub-buffer at offset " + std::to_string(offset_bytes));
  return cl::Buffer(mem);
}

void Runtime::upload(const cl::Buffer& dst, const void* src, size_t bytes, size_t offset) {
  try {
    queue_.enqueueWriteBuffer(dst, CL_TRUE, offset, bytes, src);
  } catch (const cl::Error& e) {
    rethrow_cl_error(e.err(), e.what(), "uploading " + std::to_string(bytes) + " bytes");
  }
}

void Runtime::download(const cl::Buffer& src, void* dst, size_t bytes, size_t offset) {
  try {
    queue_.enqueueReadBuffer(src, CL_TRUE, offset, bytes, dst);
  } catch (const cl::Error& e) {
    rethrow_cl_error(e.err(), e.what(), "downloading " + std::to_string(bytes) + " bytes");
  }
}

void Runtime::fill(const cl::Buffer& dst, float value, size_t count, size_t offset_floats) {
  try {
    queue_.enqueueFillBuffer(dst, value, offset_floats * sizeof(float), count * sizeof(float));
  } catch (const cl::Error& e) {
    rethrow_cl_error(e.err(), e.what(), "filling a buffer");
  }
}

void Runtime::copy(const cl::Buffer& src, const cl::Buffer& dst, size_t bytes) {
  try {
    queue_.enqueueCopyBuffer(src, dst, 0, 0, bytes);
  } catch (const cl::Error& e) {
    rethrow_cl_error(e.err(), e.what(), "copying a buffer");
  }
}

void Runtime::launch(const cl::Kernel& kernel, const cl::NDRange& global, const cl::NDRange& local,
                     const KernelCost& cost, const std::string& profile_name) {
  const std::string name =
      profile_name.empty() ? kernel.getInfo<CL_KERNEL_FUNCTION_NAME>() : profile_name;
  cl::Event event;
  try {
    queue_.enqueueNDRangeKernel(kernel, cl::NullRange, global, local, nullptr,
                                profiling_ ? &event : nullptr);
  } catch (const cl::Error& e) {
    rethrow_cl_error(e.err(), e.what(), "launching kernel " + name);
  }
  if (profiling_) profiler_.record(name, event, cost);
  if (launch_log_) {
    const cl_program program = kernel.getInfo<CL_KERNEL_PROGRAM>()();
    for (const auto& [key, built] : programs_)
      if (built() == program)
        launch_log_->push_back({name, kernel.getInfo<CL_KERNEL_FUNCTION_NAME>(), key.first, key.second});
  }
}

void Runtime::finish() {
  try {
    queue_.finish();
  } catch (const cl::Error& e) {
    rethrow_cl_error(e.err(), e.what(), "waiting for the device (clFinish)");
  }
}

void Runtime::drain() noexcept {
  try {
    queue_.finish();
  } catch (...) {
  }
}

}  // namespace attnscope
