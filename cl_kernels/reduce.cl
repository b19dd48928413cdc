// reduce.cl — work-group reductions shared by several kernel files (#include "reduce.cl").
// Tree reductions in a fixed order over __local scratch of get_local_size(0) floats, so
// results are deterministic run to run. The local size must be a power of two; every
// work-item of the group must call them, and every work-item gets the result.

inline float work_group_sum(float value, __local float* scratch) {
  const int lid = get_local_id(0);
  scratch[lid] = value;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int active = get_local_size(0) / 2; active > 0; active /= 2) {
    if (lid < active) scratch[lid] += scratch[lid + active];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float total = scratch[0];
  barrier(CLK_LOCAL_MEM_FENCE);  // the caller may reuse scratch right away
  return total;
}
