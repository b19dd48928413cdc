// gqa_tf32.cl — gqa.cl's kernels with the forward on TF32 tensor cores (--precision tf32):
// flash_tf32.cl with query head h reading K/V head h / GROUP_SIZE; the host passes gqa's
// layouts as for gqa.cl. Kernels gqa_forward_tf32 and gqa.cl's gqa_backward_*.
#ifndef GROUP_SIZE
#error "gqa_tf32.cl needs GROUP_SIZE (query heads per K/V head, H/G) from the host"
#endif
#define VARIANT_KERNEL(name) gqa_##name
#include "attention/flash_tf32.cl"
