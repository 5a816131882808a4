// Which of cuda::matmul_candidates() runs a weight shape at a token count.
//
// Opt-in for now: without ANVIL_CUDA_TUNE=1 the choice is the table order (the first candidate
// that supports the call) or the candidate ANVIL_FORCE_KERNEL=matmul:NAME names where it supports
// the call. Measurement stays off by default until the trial below has run on a GPU (it was
// written in a session without one).
//
// With ANVIL_CUDA_TUNE=1 it is measured on the device on first use and cached (core/registry.h's KernelTuner: each supported candidate's output is
// checked against an f64 reference on sampled rows, then timed with device events on fresh
// inputs with the weights evicted from L2; the fastest that agrees wins; choices persist in the
// tuning file per device). ANVIL_TUNE=off gives the table order (the first candidate that
// supports the call); ANVIL_FORCE_KERNEL=matmul:NAME forces a candidate where it supports the
// call (a CPU candidate name, as CPU tests set it, falls through to the usual choice).
//
// Tokens are bucketed to powers of two (1, 2, 4, ..., 1024+) as on the CPU: a prefill chunk of 37
// tokens reuses the choice measured at 64. Measuring synchronizes the stream and allocates trial
// buffers, so it happens only outside stream capture; the engine runs every decode shape eagerly
// once before capturing it, so captured graphs see measured choices (an unmeasured shape under
// capture gets the table order).
#pragma once

#include <cstdint>
#include <string>

#include "core/registry.h"
#include "core/tensor.h"
#include "cuda/matmul.h"

namespace anvil::cuda {

// The first candidate in table order that supports (w, n); null when none does.
const MatmulCandidate* heuristic_candidate(const Tensor& w, int64_t n);

// The chosen candidate for (w, n); null when none supports it.
const MatmulCandidate* tuned_candidate(Context& ctx, const Tensor& w, int64_t n);

// The shape key choices are cached under ("Q4_K 9728x2560 n<=8").
std::string matmul_tuning_key(const Tensor& w, int64_t n);

// The process-wide tuner of cuda::matmul (tests read measurements() and last_timings()).
KernelTuner& matmul_tuner();

}  // namespace anvil::cuda
