#include "model/gemm_spec.hpp"

#include <climits>
#include <string>

#include "host/runtime/error.hpp"

namespace attnscope {
namespace {

void check_operand(const char* kernel, const char* name, const cl::Buffer& buffer, size_t offset,
                   size_t stride, int batch, size_t elements) {
  const std::string operand = std::string(kernel) + ": operand " + name;
  if (elements > size_t(INT_MAX))
    throw Error(operand + " has " + std::to_string(elements) +
                " elements, more than the kernel's 32-bit indexing allows");
  const size_t needed = offset + size_t(batch - 1) * stride + elements;
  const size_t have = buffer.getInfo<CL_MEM_SIZE>() / sizeof(float);
  if (needed > have)
    throw Error(operand + " needs " + std::to_string(needed) + " floats but its buffer holds " +
                std::to_string(have));
}

}  // namespace

void check_gemm_operands(const char* kernel, const Ops::GemmSpec& s, const cl::Buffer& A,
                         const cl::Buffer& B, const cl::Buffer& C) {
  if (s.M < 0 || s.N < 0 || s.K < 0 || s.batch < 1)
    throw Error(std::string(kernel) + ": bad shape M=" + std::to_string(s.M) +
                " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
                " batch=" + std::to_string(s.batch));
  check_operand(kernel, "A", A, s.offset_a, s.stride_a, s.batch, size_t(s.M) * s.K);
  check_operand(kernel, "B", B, s.offset_b, s.stride_b, s.batch, size_t(s.K) * s.N);
  check_operand(kernel, "C", C, s.offset_c, s.stride_c, s.batch, size_t(s.M) * s.N);
}

bool gemm_rows_aligned(const Ops::GemmSpec& s) {
  const size_t lda = s.trans_a ? s.M : s.K, ldb = s.trans_b ? s.K : s.N;
  for (size_t v : {lda, ldb, size_t(s.N), s.offset_a, s.offset_b, s.offset_c, s.stride_a,
                   s.stride_b, s.stride_c})
    if (v % 4) return false;
  return true;
}

}  // namespace attnscope
