// Weight binding: the tensors an architecture needs, checked by name, type and shape against the
// GGUF file, then bound to a backend (zero-copy on the CPU).
//
// Names follow llama.cpp's converter: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v,
// attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output (absent when the LM
// head is tied to token_embd); qwen2 adds attn_{q,k,v}.bias, qwen3 attn_{q,k}_norm, gemma3
// attn_{q,k}_norm, post_attention_norm and post_ffw_norm; qwen35 attn_{q,k}_norm and
// post_attention_norm on attention layers, and on Gated DeltaNet layers attn_qkv, attn_gate,
// ssm_conv1d, ssm_dt.bias, ssm_a, ssm_beta, ssm_alpha, ssm_norm, ssm_out.
#pragma once

#include <vector>

#include "core/backend.h"
#include "core/status.h"
#include "core/tensor.h"
#include "models/hparams.h"
#include "models/model.h"

namespace anvil::gguf {
class File;
}

namespace anvil::models {

// One transformer layer. Optional tensors are invalid() (no data) when the architecture has none.
struct LayerWeights {
  Weight attn_norm;                  // F32 [n_embd]
  Weight wq, wk, wv, wo;             // [q_dim, n_embd], [kv_dim, n_embd] x2, [n_embd, q_dim]
  Weight bq, bk, bv;                 // qwen2: F32 biases of q, k, v
  Weight q_norm, k_norm;             // qwen3, gemma3: F32 [head_dim], applied per head
  Weight post_attention_norm;        // gemma3: F32 [n_embd] on the attention output
  Weight ffn_norm;                   // F32 [n_embd]
  Weight ffn_gate, ffn_up, ffn_down; // [n_ff, n_embd] x2, [n_embd, n_ff]
  Weight post_ffw_norm;              // gemma3: F32 [n_embd] on the FFN output
  // qwen35: ffn_norm is bound to the file's post_attention_norm (the pre-FFN norm there);
  // attention layers' wq is [2 * q_dim, n_embd], per head [query rows; gate rows].
  // qwen35 Gated DeltaNet layers (no wq/wk/wv/wo):
  Weight ssm_qkv;                    // attn_qkv [conv_channels, n_embd]: q, k, v of the delta rule
  Weight ssm_z;                      // attn_gate [v_dim, n_embd]: the output gate z
  Weight ssm_conv1d;                 // F32 [conv_channels, conv_kernel]
  Weight ssm_dt, ssm_a;              // F32 [n_v_heads]: dt bias, -exp(A_log)
  Weight ssm_beta, ssm_alpha;        // [n_v_heads, n_embd]
  Weight ssm_norm;                   // F32 [d_v], applied per value head
  Weight ssm_out;                    // [n_embd, v_dim]
};

struct ModelWeights {
  Weight token_embd;   // [n_vocab, n_embd]
  Weight output_norm;  // F32 [n_embd]
  Weight output;       // [n_vocab, n_embd]; token_embd when tied
  bool tied = false;
  std::vector<LayerWeights> layers;
};

// Binds every tensor hp.arch needs. Errors (each naming the tensor): not_found for a missing
// tensor, invalid_argument for a wrong shape or for a norm/bias that is not F32, unsupported for
// a block type anvil cannot compute with, and invalid_argument for a tensor the architecture
// does not have (a file anvil would otherwise half-understand).
Expected<ModelWeights> bind_weights(const gguf::File& file, Backend& backend, const HParams& hp,
                                    const LoadOptions& options);

}  // namespace anvil::models
