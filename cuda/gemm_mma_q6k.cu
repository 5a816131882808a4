// The tensor-core GEMM kernels for Q6_K weights (cuda/gemm_mma_kernel.cuh has the kernel and
// the Q6KTile policy): one instantiation per tile configuration, in a file of its own so the
// weight types compile in parallel.
#include "cuda/gemm_mma_kernel.cuh"

namespace anvil::cuda::gemm_detail {

void q6k_specs(KernelSpec (&out)[kConfigCount]) { fill_specs<Q6KTile>(out); }

}  // namespace anvil::cuda::gemm_detail
