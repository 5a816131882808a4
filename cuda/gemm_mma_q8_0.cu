// The tensor-core GEMM kernels for Q8_0 weights (cuda/gemm_mma_kernel.cuh has the kernel and
// the Q8_0Tile policy): one instantiation per tile configuration, in a file of its own so the
// weight types compile in parallel.
#include "cuda/gemm_mma_kernel.cuh"

namespace anvil::cuda::gemm_detail {

void q8_0_specs(KernelSpec (&out)[kConfigCount]) { fill_specs<Q8_0Tile>(out); }

}  // namespace anvil::cuda::gemm_detail
