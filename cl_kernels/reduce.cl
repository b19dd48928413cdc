// reduce.cl — work-group reductions shared by several kernel files (#include "reduce.cl").
// Tree reductions in a fixed order over __local scratch of get_local_size(0) floats, so
// results are deterministic run to run. Any local size (a head's d channels, say); for a
// power of two the halving is the classic one. Every work-item of the group must call
// them, and every work-item gets the result.

inline float work_group_sum(float value, __local float* scratch) {
  const int lid = get_local_id(0);
  scratch[lid] = value;
  barrier(CLK_LOCAL_MEM_FENCE);
  // n values remain; the upper half (rounded down) folds onto the lower.
  for (int n = get_local_size(0); n > 1;) {
    const int upper = (n + 1) / 2;
    if (lid < n - upper) scratch[lid] += scratch[lid + upper];
    barrier(CLK_LOCAL_MEM_FENCE);
    n = upper;
  }
  const float total = scratch[0];
  barrier(CLK_LOCAL_MEM_FENCE);  // the caller may reuse scratch right away
  return total;
}
