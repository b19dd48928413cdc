// mla_tf32.cl — mla.cl's attention core with the forward on TF32 tensor cores
// (--precision tf32): flash_tf32.cl reading Q (B,T,C) and K|V in place in the (B,T,2C)
// up-projection, as mla.cl. Kernels mla_forward_tf32 and mla.cl's mla_backward_*.
#define VARIANT_KERNEL(name) mla_##name
#include "attention/flash_tf32.cl"
