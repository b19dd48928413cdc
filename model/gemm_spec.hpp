// Checks on an Ops::GemmSpec that both GEMM kernels (matmul.cl, matmul_tf32.cl) share.
#pragma once
#include "host/runtime/opencl.hpp"
#include "model/ops.hpp"

namespace attnscope {

// Throws Error, naming `kernel`, for a negative dimension or a batch below 1, an operand of
// 2^31 elements or more (the kernels index with 32-bit ints), or an operand whose slices
// (offset + (batch-1)·stride + rows·cols floats) reach past its buffer.
void check_gemm_operands(const char* kernel, const Ops::GemmSpec& spec, const cl::Buffer& A,
                         const cl::Buffer& B, const cl::Buffer& C);

// Every row of A, B and C of every slice starts on a 16-byte boundary (leading dimensions,
// offsets and strides multiples of 4 floats; buffers themselves are aligned far beyond
// that): the kernels may then use 128-bit accesses (VECTOR_IO).
bool gemm_rows_aligned(const Ops::GemmSpec& spec);

}  // namespace attnscope
