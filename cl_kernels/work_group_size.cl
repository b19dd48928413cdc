// work_group_size.cl — WORK_GROUP_SIZE(n): the 1-D work-group size a kernel is launched
// with, declared for the compiler (reqd_work_group_size) — unless the host caps the
// kernel's registers (REGISTER_CAP=1 beside -cl-nv-maxrregcount, NVIDIA builds): ptxas takes
// a declared size (.reqntid) as launch bounds, and launch bounds override -maxrregcount.
// Shared by matmul_tf32.cl and attention/flash.cl (#include "work_group_size.cl").

#ifndef REGISTER_CAP
#define REGISTER_CAP 0  // 1: the host caps registers (-cl-nv-maxrregcount)
#endif

#if REGISTER_CAP
#define WORK_GROUP_SIZE(n)
#else
#define WORK_GROUP_SIZE(n) __attribute__((reqd_work_group_size(n, 1, 1)))
#endif
