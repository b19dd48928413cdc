// sliding_window.cl — causal local attention (Beltagy et al. 2020; Jiang et al. 2023),
// forward and backward: exact softmax over the band i − w < j ≤ i, w = window (a kernel
// argument; the host passes min(w, T), and with w ≥ T this is flash). The kernels are
// flash.cl's tiled FlashAttention-2 core with the band mask compiled in (WINDOWED): the
// forward and dQ kernels visit only the key tiles that intersect their query block's
// band, [q0 − w + 1, q0 + rows), and the dK/dV kernel only the query tiles in
// [k0, k0 + rows − 1 + w), so the work is O(T·w·d) per head. Diagonal and band-edge tiles
// are masked element-wise.
// Kept for backward: the fused qkv (B,T,3C), O and the row log-sum-exp L (B,H,T).
#define WINDOWED 1
#define VARIANT_KERNEL(name) sliding_window_##name
#include "attention/flash.cl"
