// A deliberate local-memory race, to prove that the oclgrind tests catch one
// (tests/oclgrind/planted_race.cpp runs it): each work-item writes its slot of a local
// array and then reads its neighbour's. With SYNC=1 a barrier orders every write before
// every read; with SYNC=0 nothing does, and the neighbour's write may come before or after
// the read. PoCL runs a work-group's items one after another, so it gives the same sums
// either way; a GPU would not.
#ifndef SYNC
#define SYNC 1
#endif

#define GROUP 64

__kernel void neighbour_sum(__global float* out, __global const float* in) {
  __local float slots[GROUP];
  const int i = get_local_id(0);
  slots[i] = in[get_global_id(0)];
#if SYNC
  barrier(CLK_LOCAL_MEM_FENCE);
#endif
  out[get_global_id(0)] = slots[i] + slots[(i + 1) % GROUP];
}
