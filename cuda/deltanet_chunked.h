// The chunked (WY / UT-transform) gated DeltaNet on CUDA (cuda/deltanet_chunked.cu). Called by
// gated_deltanet (cuda/deltanet.cu), which validates the arguments and decides which sequences
// take this path and which the recurrent kernel.
#pragma once

#include <cstdint>
#include <string>

#include "core/backend.h"
#include "cuda/deltanet_io.h"
#include "cuda/ops.h"

namespace anvil::cuda {

// Why the chunked kernels cannot run `p` on ctx's GPU, or "" when they can: they need d_k and
// d_v <= 128, chunk <= 64 and ~157 KiB of shared memory per block (sm_80 and sm_90 have it).
std::string deltanet_chunked_unsupported(const Context& ctx, const DeltaNetParams& p);

// The sequences the chunked kernels take: those with at least min_tokens tokens (>= 1); the
// kernels find them in the step's device arrays. n_seqs and n_chunks (chunks of p.chunk tokens,
// the last one of a sequence shorter) size the grids and must match the step.
struct DeltaNetChunkedPlan {
  int32_t min_tokens = 1;
  int32_t n_seqs = 0;
  int32_t n_chunks = 0;
};

// The op's tensors, head shape and step arrays as both DeltaNet kernels read them (defined in
// cuda/deltanet.cu).
DeltaNetIo deltanet_io(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                       const RecurrentLayer& state, const DeltaNetParams& p, const DeviceStep& step, Tensor out);

// Enqueues both kernels on ctx.stream, after taking ScratchSlot::deltanet (1288 bytes per token
// and value head): call it before enqueueing other kernels of the op. The arguments must have
// passed gated_deltanet's checks and deltanet_chunked_unsupported must be "".
Status gated_deltanet_chunked(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                              const Tensor& beta, const RecurrentLayer& state, const DeltaNetParams& p,
                              const DeviceStep& step, Tensor out, const DeltaNetChunkedPlan& plan);

}  // namespace anvil::cuda
