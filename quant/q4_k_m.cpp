// Type mixes of the llama.cpp file types, after llama-quantize's llama_tensor_get_type
// (src/llama-quant.cpp) as it stood when the Qwen3.5 GGUFs were made:
//
//   output.weight, or token_embd.weight when there is no output (tied): Q6_K (Q8_0 when its
//     width is not a whole number of the file type's blocks, or for falcon);
//   attn_v.weight: Q6_K in the "more bits" layers under Q4_K_M / Q5_K_M (use_more_bits over
//     the attn_v ordinal and n_attention_wv); Q5_K in the first four under Q4_K_S;
//   ffn_down: Q6_K in the "more bits" layers under Q4_K_M / Q5_K_M; Q5_K in the first
//     n_layer/8 under Q4_K_S;
//   attn_qkv.weight (fused QKV; Qwen3.5's Gated DeltaNet layers): Q5_K under Q4_K_M, Q6_K
//     under Q5_K_M;
//   every other 2-D+ ".weight" tensor: the file type's base type. 1-D tensors, norms, biases,
//     ssm_conv1d, ssm_a, ssm_dt and the other names llama.cpp never quantizes keep their type.
//   K types on a width that is not a multiple of 256 fall back to Q5_0 / Q5_1 / Q8_0 (for
//     Q4_K / Q5_K / Q6_K), and anything still not a whole number of blocks to F16.
//
// Newer llama.cpp (after its tensor-category refactor) routes attn_qkv through the attn_v rule
// instead (Q6_K in "more bits" layers, else Q4_K); the published Qwen3.5 Q4_K_M files have
// attn_qkv in Q5_K, which is what this follows. Not modelled: MoE rules (n_expert == 8), the
// LLaMA-70B attn_v bump, imatrix-only rules, user overrides.
#include "quant/q4_k_m.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace anvil::quant {
namespace {

struct FileTypeInfo {
  FileType ft;
  const char* name;
  uint32_t gguf_id;  // llama_ftype (gguf-py LlamaFileType)
  DType base;        // llama_ftype_get_default_type
};

constexpr FileTypeInfo kFileTypes[] = {
    {FileType::F32, "F32", 0, DType::F32},        {FileType::F16, "F16", 1, DType::F16},
    {FileType::BF16, "BF16", 32, DType::BF16},    {FileType::Q4_0, "Q4_0", 2, DType::Q4_0},
    {FileType::Q4_1, "Q4_1", 3, DType::Q4_1},     {FileType::Q5_0, "Q5_0", 8, DType::Q5_0},
    {FileType::Q5_1, "Q5_1", 9, DType::Q5_1},     {FileType::Q8_0, "Q8_0", 7, DType::Q8_0},
    {FileType::Q4_K_M, "Q4_K_M", 15, DType::Q4_K}, {FileType::Q4_K_S, "Q4_K_S", 14, DType::Q4_K},
    {FileType::Q5_K_M, "Q5_K_M", 17, DType::Q5_K}, {FileType::Q6_K, "Q6_K", 18, DType::Q6_K},
};

const FileTypeInfo& info(FileType ft) {
  for (const auto& i : kFileTypes)
    if (i.ft == ft) return i;
  return kFileTypes[0];
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool ends_with(const std::string& s, const char* suffix) {
  const std::string suf(suffix);
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Layer index of "blk.N.xxx", or -1.
int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// Dimensions counted as ggml does: trailing 1s do not count ([4096, 1] is 1-D).
int n_dims(const std::vector<uint64_t>& dims) {
  int n = 1;
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] > 1) n = int(i) + 1;
  return n;
}

// llama.cpp's tensor_allows_quantization, for the names the architectures anvil runs can have
// (plus the common exclusions of other families, so re-quantizing their files is harmless).
bool allows_quantization(const TensorDesc& t) {
  if (n_dims(t.dims) < 2) return false;
  const std::string& n = t.name;
  if (!ends_with(n, "weight")) return false;
  static const char* const kNever[] = {
      "_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj",
      "ssm_conv1d", "shortconv.conv.weight", "attn_rel_b.weight", "time_mix_first.weight",
      "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight",
      "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
      "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
      "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
  };
  for (const char* part : kNever)
    if (contains(n, part)) return false;
  if (n == "position_embd.weight" || n == "token_types.weight") return false;
  return true;
}

bool is_quantized(DType t) { return traits(t).quantized; }

// use_more_bits: the first and last eighth of the layers, and every third one in between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// Position of `layer` in an ascending list, or `layer` itself when the list is empty.
int ordinal(const std::vector<int>& layers, int layer) {
  if (layers.empty()) return layer;
  return int(std::lower_bound(layers.begin(), layers.end(), layer) - layers.begin());
}

// tensor_type_fallback: a K type on a width that is not a multiple of 256.
DType fallback(DType t, uint64_t ncols) {
  if (ncols % traits(t).block_size == 0) return t;
  switch (t) {
    case DType::Q4_K: t = DType::Q5_0; break;
    case DType::Q5_K: t = DType::Q5_1; break;
    case DType::Q6_K: t = DType::Q8_0; break;
    default: break;
  }
  if (ncols % traits(t).block_size != 0) t = DType::F16;  // not even 32-aligned
  return t;
}

}  // namespace

const char* file_type_name(FileType t) { return info(t).name; }

bool file_type_from_name(const std::string& name, FileType& out) {
  std::string up;
  for (char c : name) up += char(std::toupper((unsigned char)c));
  if (up == "Q4_K") up = "Q4_K_M";  // llama-quantize's alias
  for (const auto& i : kFileTypes) {
    if (up == i.name) {
      out = i.ft;
      return true;
    }
  }
  return false;
}

uint32_t file_type_gguf_id(FileType t) { return info(t).gguf_id; }

MixContext make_mix_context(const std::string& arch, int n_layer, const std::vector<TensorDesc>& tensors) {
  MixContext ctx;
  ctx.arch = arch;
  ctx.n_layer = n_layer;
  ctx.has_output = false;
  for (const auto& t : tensors) {
    const int layer = layer_of(t.name);
    if (t.name == "output.weight") ctx.has_output = true;
    if (contains(t.name, "attn_v.weight")) {
      ++ctx.n_attn_v;
      if (layer >= 0) ctx.attn_v_layers.push_back(layer);
    }
    if (contains(t.name, "attn_v.weight") || contains(t.name, "attn_qkv.weight") ||
        contains(t.name, "attn_kv_b.weight")) {
      ++ctx.n_attention_wv;
    }
    if (contains(t.name, "ffn_down")) {
      ++ctx.n_ffn_down;
      if (layer >= 0) ctx.ffn_down_layers.push_back(layer);
    }
  }
  for (auto* v : {&ctx.attn_v_layers, &ctx.ffn_down_layers}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  return ctx;
}

DType choose_type(FileType ft, const MixContext& ctx, const TensorDesc& t) {
  if (!allows_quantization(t)) return t.src_type;
  const DType base = info(ft).base;
  if (!is_quantized(base)) return base;  // F32 / F16 / BF16 files: no mix

  const std::string& name = t.name;
  const uint64_t ncols = t.dims.empty() ? 0 : t.dims[0];
  const bool falcon = ctx.arch == "falcon";
  const int layer = layer_of(name);
  DType type = base;

  if (name == "output.weight" || (!ctx.has_output && name == "token_embd.weight")) {
    if (falcon || ncols % traits(base).block_size != 0) {
      type = DType::Q8_0;
    } else if (type != DType::Q8_0) {
      type = DType::Q6_K;
    }
  } else if (name == "token_embd.weight") {
    // untied embeddings keep the base type
  } else if (contains(name, "attn_v.weight")) {
    const int i = ordinal(ctx.attn_v_layers, layer);
    const int n = ctx.n_attention_wv > 0 ? ctx.n_attention_wv : ctx.n_attn_v;
    if ((ft == FileType::Q4_K_M || ft == FileType::Q5_K_M) && use_more_bits(i, n)) {
      type = DType::Q6_K;
    } else if (ft == FileType::Q4_K_S && i < 4) {
      type = DType::Q5_K;
    }
  } else if (contains(name, "ffn_down")) {
    const int i = ordinal(ctx.ffn_down_layers, layer);
    const int n = ctx.n_layer > 0 ? ctx.n_layer : ctx.n_ffn_down;
    if (ft == FileType::Q4_K_M) {
      if (falcon) {
        type = i < n / 16 ? DType::Q6_K : use_more_bits(i, n) ? DType::Q5_K : DType::Q4_K;
      } else if (use_more_bits(i, n)) {
        type = DType::Q6_K;
      }
    } else if (ft == FileType::Q5_K_M && use_more_bits(i, n)) {
      type = DType::Q6_K;
    } else if (ft == FileType::Q4_K_S && !falcon && i < n / 8) {
      type = DType::Q5_K;
    }
  } else if (contains(name, "attn_qkv.weight")) {
    if (ft == FileType::Q4_K_M) type = DType::Q5_K;
    else if (ft == FileType::Q5_K_M) type = DType::Q6_K;
  }
  return fallback(type, ncols);
}

}  // namespace anvil::quant
