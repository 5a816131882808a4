// Programmatic dependent launch (PDL, sm_90+), device side. A kernel launched by launch_pdl
// (cuda/pdl.h) may start while the kernel before it on the stream is still running, so it must:
//   - call pdl_wait() before it reads anything an earlier kernel wrote and before its first
//     global write (an earlier kernel may still be reading that memory); only data no kernel
//     writes may be read before it: the weights, and a step's DeviceStep arrays (positions,
//     sequence ranges, block tables), which the host uploads before the step's first kernel;
//   - call pdl_wait() in every thread that goes on to read or write (a grid that never waits
//     could finish before its predecessor, and the kernel after it would see stale memory).
// pdl_allow_dependents() lets the next kernel's blocks be scheduled (they then wait in their own
// pdl_wait); it says nothing about this kernel's memory. Both are no-ops without PDL and on
// older GPUs.
#pragma once

namespace anvil::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// For kernels with nothing to do before their inputs are ready: let the next kernel be
// scheduled, then wait for this one's inputs.
__device__ __forceinline__ void pdl_begin() {
  pdl_allow_dependents();
  pdl_wait();
}

// Asks L2 to fetch the 128-byte line holding p (weights a kernel will read after pdl_wait).
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

}  // namespace anvil::cuda
