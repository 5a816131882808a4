// The Q4_K_M type mix: which type each tensor gets when a model is quantized "Q4_K_M", by
// tensor name and layer, matching the files llama.cpp's quantizer produces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace anvil::quant {

enum class FileType {
  F32,
  F16,
  BF16,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q8_0,
  Q4_K_M,
  Q4_K_S,
  Q5_K_M,
  Q6_K,
};

const char* file_type_name(FileType t);              // "Q4_K_M"
bool file_type_from_name(const std::string& name, FileType& out);  // case-insensitive
uint32_t file_type_gguf_id(FileType t);              // general.file_type value (llama_ftype)

// What the quantizer needs to know about the model as a whole. make_mix_context fills it from
// the tensor list; choose_type then needs no state (llama.cpp counts tensors as it goes, which
// comes to the same thing for files whose layers appear in order).
struct MixContext {
  std::string arch;             // general.architecture
  int n_layer = 0;              // block_count
  bool has_output = true;       // false when output.weight is absent (tied embeddings)
  int n_attn_v = 0;             // number of attn_v.weight tensors (attention layers)
  int n_ffn_down = 0;           // number of ffn_down.weight tensors
  // llama.cpp's n_attention_wv: attn_v + attn_qkv + attn_kv_b tensors. The "more bits" attn_v
  // layers are spread over this count (so on Qwen3.5, 24 GDN attn_qkv + 8 attn_v = 32).
  // 0: use n_attn_v.
  int n_attention_wv = 0;
  std::vector<int> attn_v_layers;    // ascending layer indices that have attn_v.weight
  std::vector<int> ffn_down_layers;  // ascending layer indices that have an ffn_down tensor
};

struct TensorDesc {
  std::string name;             // "blk.3.attn_v.weight"
  std::vector<uint64_t> dims;   // GGUF order
  DType src_type = DType::F32;
};

// Counts attention/ffn tensors of a model so the mix can place its "more bits" layers.
MixContext make_mix_context(const std::string& arch, int n_layer, const std::vector<TensorDesc>& tensors);

// The type tensor `t` gets under file type `ft`. Tensors that stay as they are (1-D norms,
// biases, ssm_conv1d, ...) return F32 (or their source type when it is F16/BF16 and ft keeps
// it). Falls back to a 32-block type when dims[0] is not a multiple of 256, as llama.cpp does.
DType choose_type(FileType ft, const MixContext& ctx, const TensorDesc& t);

}  // namespace anvil::quant
