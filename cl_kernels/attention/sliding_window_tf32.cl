// sliding_window_tf32.cl — sliding_window.cl's kernels with the forward on TF32 tensor cores
// (--precision tf32): flash_tf32.cl with the band mask compiled in (WINDOWED); only key
// tiles that intersect a query block's band are visited. Kernels
// sliding_window_forward_tf32 and sliding_window.cl's sliding_window_backward_*.
#define WINDOWED 1
#define VARIANT_KERNEL(name) sliding_window_##name
#include "attention/flash_tf32.cl"
