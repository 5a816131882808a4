// What both gated DeltaNet kernels on CUDA read and write (cuda/deltanet.cu's recurrent kernel,
// cuda/deltanet_chunked.cuh's chunked ones): the op's tensors as row pointers and byte strides,
// the head shape, and the step's device arrays. Each kernel's argument struct derives from it;
// deltanet_io (cuda/deltanet_chunked.h) fills it. Plain C++: the chunked kernels' header is also
// compiled on the host (its emulation).
#pragma once

#include <cstddef>
#include <cstdint>

namespace anvil::cuda {

struct DeltaNetIo {
  const char* q;  // [n_tokens, n_k_heads * d_k] F32 (column view: row strides in bytes)
  const char* k;
  const char* v;  // [n_tokens, n_v_heads * d_v]
  const char* g;  // [n_tokens, n_v_heads]
  const char* beta;
  char* out;  // [n_tokens, n_v_heads * d_v]
  char* ssm;  // [n_slots * n_v_heads * d_k, d_v]
  size_t q_stride, k_stride, v_stride, g_stride, beta_stride, out_stride, ssm_stride;
  int32_t n_k_heads, n_v_heads, d_k, d_v;
  float q_scale;
  const int32_t* seq_first_token;  // the step's device arrays
  const int32_t* seq_n_tokens;
  const int32_t* context_lens;
  const int32_t* state_slots;
};

}  // namespace anvil::cuda
