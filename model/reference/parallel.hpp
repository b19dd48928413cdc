// The CPU reference's loops over independent outputs, spread over the machine's hardware
// threads: single-threaded, `check --shape 1,4096,768,12` spent minutes of a GPU session per
// variant in the reference. Each index is one whole output (a row of a product, a head of
// attention) computed by one thread in the same order as a serial loop would, so results
// are bitwise the same whatever the number of threads.
#pragma once
#include <functional>

namespace attnscope::reference {

// body(i) for every i in [0, count), each exactly once, on up to reference_threads()
// threads taking indices as they free up (rows of a causal triangle differ in cost). A call
// made from inside body runs serially on its thread. The first exception a body throws is
// rethrown after every thread has stopped.
void parallel_for(int count, const std::function<void(int)>& body);

// Threads parallel_for uses: the hardware's by default; a test sets 1 to hold results
// bitwise equal across thread counts. threads < 1 restores the default.
int reference_threads();
void set_reference_threads(int threads);

}  // namespace attnscope::reference
