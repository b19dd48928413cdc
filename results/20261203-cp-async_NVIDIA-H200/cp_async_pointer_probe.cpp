// Throwaway device experiment: does cp.async into __local work through NVIDIA's OpenCL?
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
static const char* kSrc = R"CLC(
#if VARIANT == 0
#define DST_OP "r"((uint)(ulong)dst)
#define ASM_COPY "cp.async.cg.shared.global [%0], [%1], 16, %2;"
#elif VARIANT == 1
#define DST_OP "l"((ulong)dst)
#define ASM_COPY "cp.async.cg.shared.global [%0], [%1], 16, %2;"
#else
#define DST_OP "l"((ulong)dst)
#define ASM_COPY "{ .reg .u64 s; cvta.to.shared.u64 s, %0; cp.async.cg.shared.global [s], [%1], 16, %2; }"
#endif
inline void copy16(__local float* dst, const __global float* src, int bytes) {
  asm volatile(ASM_COPY :: DST_OP, "l"(src), "r"(bytes) : "memory");
}
__kernel void k(const __global float* in, __global float* out, __global ulong* addr) {
  __local float4 buf[128];
  __local float* b = (__local float*)buf;
  const int i = get_local_id(0);
  b[4*i] = -1.f; b[4*i+1] = -1.f; b[4*i+2] = -1.f; b[4*i+3] = -1.f;
  barrier(CLK_LOCAL_MEM_FENCE);
  copy16(b + 4 * (127 - i), in + 4 * i, (i % 3 == 0) ? 0 : 16);
  asm volatile("cp.async.commit_group;" ::: "memory");
  asm volatile("cp.async.wait_group 0;" ::: "memory");
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int j = 0; j < 4; ++j) out[4*i+j] = b[4*i+j];
  if (i == 0) addr[0] = (ulong)b;
}
)CLC";
#define CHECK(x) do { cl_int e_ = (x); if (e_ != CL_SUCCESS) { std::printf("FAIL %s = %d\n", #x, e_); return 1; } } while (0)
int main(int argc, char** argv) {
  const int variant = argc > 1 ? std::atoi(argv[1]) : 0;
  cl_platform_id p; cl_device_id d; cl_int err;
  CHECK(clGetPlatformIDs(1, &p, nullptr));
  CHECK(clGetDeviceIDs(p, CL_DEVICE_TYPE_GPU, 1, &d, nullptr));
  cl_context ctx = clCreateContext(nullptr, 1, &d, nullptr, nullptr, &err); CHECK(err);
  cl_command_queue q = clCreateCommandQueue(ctx, d, 0, &err); CHECK(err);
  cl_program prog = clCreateProgramWithSource(ctx, 1, &kSrc, nullptr, &err); CHECK(err);
  std::string opts = "-DVARIANT=" + std::to_string(variant);
  err = clBuildProgram(prog, 1, &d, opts.c_str(), nullptr, nullptr);
  size_t n = 0; clGetProgramBuildInfo(prog, d, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
  std::string log(n, 0); clGetProgramBuildInfo(prog, d, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
  if (err != CL_SUCCESS) { std::printf("variant %d build failed %d: %s\n", variant, err, log.c_str()); return 1; }
  size_t bs = 0; CHECK(clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof bs, &bs, nullptr));
  std::vector<unsigned char> bin(bs); unsigned char* bp = bin.data();
  CHECK(clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bp, &bp, nullptr));
  std::string ptx(bin.begin(), bin.end());
  std::printf("---- variant %d PTX (shared/cp.async lines)\n", variant);
  size_t pos = 0;
  while (pos < ptx.size()) { size_t e = ptx.find('\n', pos); if (e == std::string::npos) e = ptx.size();
    std::string line = ptx.substr(pos, e - pos);
    if (line.find("shared") != std::string::npos || line.find("cp.async") != std::string::npos || line.find("cvta") != std::string::npos) std::printf("%s\n", line.c_str());
    pos = e + 1; }
  cl_kernel k = clCreateKernel(prog, "k", &err); CHECK(err);
  std::vector<float> in(512), out(512, 7.f); for (int i = 0; i < 512; ++i) in[i] = float(i) + 0.5f;
  cl_mem bi = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, 2048, in.data(), &err); CHECK(err);
  cl_mem bo = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 2048, nullptr, &err); CHECK(err);
  cl_mem ba = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 8, nullptr, &err); CHECK(err);
  CHECK(clSetKernelArg(k, 0, sizeof bi, &bi)); CHECK(clSetKernelArg(k, 1, sizeof bo, &bo)); CHECK(clSetKernelArg(k, 2, sizeof ba, &ba));
  size_t g = 128, l = 128;
  CHECK(clEnqueueNDRangeKernel(q, k, 1, nullptr, &g, &l, 0, nullptr, nullptr));
  CHECK(clFinish(q));
  CHECK(clEnqueueReadBuffer(q, bo, CL_TRUE, 0, 2048, out.data(), 0, nullptr, nullptr));
  unsigned long long a = 0; CHECK(clEnqueueReadBuffer(q, ba, CL_TRUE, 0, 8, &a, 0, nullptr, nullptr));
  int bad = 0;
  for (int i = 0; i < 128; ++i) { int src = 127 - i; for (int j = 0; j < 4; ++j) {
    float want = (src % 3 == 0) ? 0.f : in[4 * src + j];
    if (out[4 * i + j] != want) { if (bad < 5) std::printf("out[%d] = %g want %g\n", 4*i+j, out[4*i+j], want); ++bad; } } }
  std::printf("variant %d: local pointer as integer 0x%llx; %s (%d bad)\n", variant, a, bad ? "WRONG" : "EXACT", bad);
  return bad ? 1 : 0;
}
