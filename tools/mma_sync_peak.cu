// mma_sync_peak.cu — the ceiling of the instruction attnscope's tf32 GEMM is built on:
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, issued back to back from registers
// (no memory traffic), on this GPU. Prints TFLOP/s for several warps per multiprocessor.
// A measuring tool for the GPU machine (CUDA, not part of attnscope's build):
//   nvcc -O3 -arch=sm_90 tools/mma_sync_peak.cu -o /tmp/mma_sync_peak && /tmp/mma_sync_peak
#include <cstdio>
#include <cuda_runtime.h>

constexpr int kChains = 8;  // independent accumulators per warp: more than the mma latency needs

__global__ void mma_loop(float* out, int iterations) {
  unsigned a[4], b[2];
  for (int i = 0; i < 4; ++i) a[i] = 0x3f800000u + threadIdx.x + i;  // ≈ 1.0: no inf or NaN
  for (int i = 0; i < 2; ++i) b[i] = 0x3f000000u + threadIdx.x + i;
  float c[kChains][4] = {};
  for (int it = 0; it < iterations; ++it)
#pragma unroll
    for (int j = 0; j < kChains; ++j)
      asm volatile(
          "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
          "{%8,%9}, {%0,%1,%2,%3};"
          : "+f"(c[j][0]), "+f"(c[j][1]), "+f"(c[j][2]), "+f"(c[j][3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  float sum = 0.f;
  for (int j = 0; j < kChains; ++j) sum += c[j][0] + c[j][1] + c[j][2] + c[j][3];
  out[blockIdx.x * blockDim.x + threadIdx.x] = sum;  // keeps the work alive
}

int main() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("%s, %d SMs\n", prop.name, sms);
  const int iterations = 4096;
  float* out = nullptr;
  cudaMalloc(&out, size_t(sms) * 8 * 1024 * sizeof(float));
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::printf("warps/SM  blocks  TFLOP/s\n");
  for (int warps_per_block : {4, 8})
    for (int blocks_per_sm : {1, 2, 4}) {
      const int blocks = sms * blocks_per_sm, threads = 32 * warps_per_block;
      mma_loop<<<blocks, threads>>>(out, iterations);  // warm-up
      cudaEventRecord(start);
      mma_loop<<<blocks, threads>>>(out, iterations);
      cudaEventRecord(stop);
      cudaEventSynchronize(stop);
      float ms = 0.f;
      cudaEventElapsedTime(&ms, start, stop);
      const double flops = double(blocks) * warps_per_block * iterations * kChains * 2.0 * 16 * 8 * 8;
      std::printf("%8d  %6d  %7.1f\n", warps_per_block * blocks_per_sm, blocks, flops / ms / 1e9);
    }
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    std::fprintf(stderr, "CUDA error: %s\n", cudaGetErrorString(err));
    return 1;
  }
  return 0;
}
