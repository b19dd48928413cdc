// Runs tests/oclgrind/planted_race.cl on the first OpenCL device (under oclgrind, the
// simulator) with or without its barrier; with it, checks the sums (without it they are
// undefined: that is the race).
// Usage: planted_race KERNEL.cl SYNC(0|1). Exit 0 when it ran (and, with SYNC=1, the sums
// are right).
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "host/runtime/opencl.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: planted_race KERNEL.cl SYNC(0|1)\n");
    return 2;
  }
  std::ifstream file(argv[1]);
  const std::string source{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  if (source.empty()) {
    std::fprintf(stderr, "planted_race: cannot read %s\n", argv[1]);
    return 2;
  }
  constexpr int kItems = 64;
  try {
    cl::Context context(CL_DEVICE_TYPE_DEFAULT);
    const cl::Device device = context.getInfo<CL_CONTEXT_DEVICES>().front();
    cl::CommandQueue queue(context, device);
    cl::Program program(context, source);
    const std::string options = std::string("-DSYNC=") + argv[2];
    try {
      program.build({device}, options.c_str());
    } catch (const cl::Error&) {
      std::fprintf(stderr, "%s\n", program.getBuildInfo<CL_PROGRAM_BUILD_LOG>(device).c_str());
      return 1;
    }
    std::vector<float> in(kItems), out(kItems);
    for (int i = 0; i < kItems; ++i) in[i] = float(i);
    cl::Buffer in_buffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof(float) * kItems, in.data());
    cl::Buffer out_buffer(context, CL_MEM_WRITE_ONLY, sizeof(float) * kItems);
    cl::Kernel kernel(program, "neighbour_sum");
    kernel.setArg(0, out_buffer);
    kernel.setArg(1, in_buffer);
    queue.enqueueNDRangeKernel(kernel, cl::NullRange, cl::NDRange(kItems), cl::NDRange(kItems));
    queue.enqueueReadBuffer(out_buffer, CL_TRUE, 0, sizeof(float) * kItems, out.data());
    const bool sync = std::string(argv[2]) != "0";
    for (int i = 0; sync && i < kItems; ++i)
      if (out[i] != in[i] + in[(i + 1) % kItems]) {
        std::fprintf(stderr, "planted_race: out[%d] = %g, expected %g\n", i, out[i],
                     in[i] + in[(i + 1) % kItems]);
        return 1;
      }
  } catch (const cl::Error& e) {
    std::fprintf(stderr, "planted_race: %s failed (%d)\n", e.what(), e.err());
    return 1;
  }
  return 0;
}
