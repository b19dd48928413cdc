// OpenCL C sources. They are embedded in the binary at build time (so attnscope runs
// from any directory); setting ATTNSCOPE_KERNEL_DIR makes the runtime read them from
// that directory instead, which lets a kernel be edited without rebuilding.
#pragma once
#include <string>

namespace attnscope {

// Source of `file` (relative to cl_kernels/). Throws Error if it does not exist.
std::string kernel_source(const std::string& file);
// Source of `file` with every line `#include "other.cl"` replaced by the (recursively
// expanded) text of cl_kernels/other.cl, so kernel files can share device functions and a
// family of kernels (e.g. exact tiled attention) can be specialised by #defines. Each
// file is inlined at most once per program.
std::string expanded_kernel_source(const std::string& file);

// " -DREGISTER_CAP=1 -cl-nv-maxrregcount=<registers>": the build options that cap a
// kernel's registers on NVIDIA, for kernels that declare their size with
// work_group_size.cl's WORK_GROUP_SIZE (left undeclared then, or ptxas ignores the cap).
// kRegisterCapOptions is its fixed prefix.
extern const char* const kRegisterCapOptions;
std::string register_cap_options(int registers);

}  // namespace attnscope
