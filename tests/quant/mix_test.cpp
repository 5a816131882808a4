// The Q4_K_M type mix (and the other file types) on the shapes of the models anvil runs,
// against expectations written out by hand from llama.cpp's rules (llama_tensor_get_type):
// the "more bits" layer lists below are spelled out, not computed, so a wrong use_more_bits
// or a wrong attn_v ordinal shows up here.
//
// Shapes follow shared/tools/synth_gguf.py (GGUF dims: dims[0] is the row length).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "quant/q4_k_m.h"

namespace anvil::quant {
namespace {

struct Shape {
  int n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, vocab;
  bool tied, qkv_bias;
  bool qwen35 = false;  // Gated DeltaNet layers except every 4th
  int ssm_state = 128, ssm_k_heads = 16, ssm_v_heads = 32, conv = 4;
};

constexpr Shape kQwen3_4B{36, 2560, 9728, 32, 8, 128, 151936, true, false};
constexpr Shape kQwen25_7B{28, 3584, 18944, 28, 4, 128, 152064, false, true};
constexpr Shape kQwen35_4B{32, 2560, 9216, 16, 4, 256, 248320, true, false, true};
constexpr Shape kGemma3_270M{18, 640, 2048, 4, 1, 256, 262144, true, false};

using U = uint64_t;

std::vector<TensorDesc> tensors_of(const Shape& s) {
  std::vector<TensorDesc> t;
  auto add = [&](std::string name, std::vector<U> dims) { t.push_back({std::move(name), std::move(dims), DType::F16}); };
  add("token_embd.weight", {U(s.n_embd), U(s.vocab)});
  const U E = U(s.n_embd);
  for (int i = 0; i < s.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", {E});
    if (s.qwen35 && (i + 1) % 4 != 0) {
      const U key = U(s.ssm_state * s.ssm_k_heads), val = U(s.ssm_state * s.ssm_v_heads);
      add(b + "attn_qkv.weight", {E, 2 * key + val});
      add(b + "attn_gate.weight", {E, val});
      add(b + "ssm_conv1d.weight", {U(s.conv), 2 * key + val});
      add(b + "ssm_dt.bias", {U(s.ssm_v_heads)});
      add(b + "ssm_a", {U(s.ssm_v_heads)});
      add(b + "ssm_beta.weight", {E, U(s.ssm_v_heads)});
      add(b + "ssm_alpha.weight", {E, U(s.ssm_v_heads)});
      add(b + "ssm_norm.weight", {U(s.ssm_state)});
      add(b + "ssm_out.weight", {val, E});
    } else {
      const U q = U(s.n_head * s.head_dim), kv = U(s.n_head_kv * s.head_dim);
      add(b + "attn_q.weight", {E, s.qwen35 ? 2 * q : q});
      add(b + "attn_k.weight", {E, kv});
      add(b + "attn_v.weight", {E, kv});
      if (s.qkv_bias) {
        add(b + "attn_q.bias", {q});
        add(b + "attn_k.bias", {kv});
        add(b + "attn_v.bias", {kv});
      }
      add(b + "attn_output.weight", {q, E});
      add(b + "attn_q_norm.weight", {U(s.head_dim)});
      add(b + "attn_k_norm.weight", {U(s.head_dim)});
    }
    add(b + (s.qwen35 ? "post_attention_norm.weight" : "ffn_norm.weight"), {E});
    add(b + "ffn_gate.weight", {E, U(s.n_ff)});
    add(b + "ffn_up.weight", {E, U(s.n_ff)});
    add(b + "ffn_down.weight", {U(s.n_ff), E});
  }
  add("output_norm.weight", {E});
  if (!s.tied) add("output.weight", {E, U(s.vocab)});
  for (auto& d : t)
    if (d.dims.size() == 1) d.src_type = DType::F32;
  return t;
}

std::map<std::string, DType> mix(FileType ft, const std::string& arch, const Shape& s) {
  const auto t = tensors_of(s);
  const MixContext ctx = make_mix_context(arch, s.n_layer, t);
  std::map<std::string, DType> out;
  for (const auto& d : t) out[d.name] = choose_type(ft, ctx, d);
  return out;
}

std::string blk(int i, const char* what) { return "blk." + std::to_string(i) + "." + what; }

// Checks one role across all layers: `more` layers get `hi`, the others `lo`.
void expect_layers(const std::map<std::string, DType>& m, const char* role, const std::vector<int>& layers,
                   const std::set<int>& more, DType hi, DType lo) {
  for (int i : layers) {
    const auto it = m.find(blk(i, role));
    ASSERT_NE(it, m.end()) << blk(i, role);
    EXPECT_EQ(dtype_name(it->second), dtype_name(more.count(i) ? hi : lo)) << blk(i, role);
  }
}

std::vector<int> range(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}

TEST(Q4KMMix, Qwen3_4B) {
  const auto m = mix(FileType::Q4_K_M, "qwen3", kQwen3_4B);
  // use_more_bits(i, 36): i < 4, i >= 31, or (i - 4) % 3 == 2 -> 18 layers
  const std::set<int> more = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31, 32, 33, 34, 35};
  expect_layers(m, "attn_v.weight", range(36), more, DType::Q6_K, DType::Q4_K);
  expect_layers(m, "ffn_down.weight", range(36), more, DType::Q6_K, DType::Q4_K);
  for (const char* r : {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight"})
    expect_layers(m, r, range(36), {}, DType::Q4_K, DType::Q4_K);
  for (const char* r : {"attn_norm.weight", "ffn_norm.weight", "attn_q_norm.weight", "attn_k_norm.weight"})
    expect_layers(m, r, range(36), {}, DType::F32, DType::F32);
  EXPECT_EQ(m.at("token_embd.weight"), DType::Q6_K);  // tied: takes the output's type
  EXPECT_EQ(m.at("output_norm.weight"), DType::F32);
  EXPECT_EQ(m.count("output.weight"), 0u);
}

TEST(Q4KMMix, Qwen25_7B_Untied) {
  const auto m = mix(FileType::Q4_K_M, "qwen2", kQwen25_7B);
  // use_more_bits(i, 28): i < 3, i >= 24, or (i - 3) % 3 == 2 -> 14 layers
  const std::set<int> more = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27};
  expect_layers(m, "attn_v.weight", range(28), more, DType::Q6_K, DType::Q4_K);
  expect_layers(m, "ffn_down.weight", range(28), more, DType::Q6_K, DType::Q4_K);
  for (const char* r : {"attn_q.bias", "attn_k.bias", "attn_v.bias"})
    expect_layers(m, r, range(28), {}, DType::F32, DType::F32);
  EXPECT_EQ(m.at("output.weight"), DType::Q6_K);
  EXPECT_EQ(m.at("token_embd.weight"), DType::Q4_K);  // untied embeddings keep the base type
}

TEST(Q4KMMix, Qwen35_4B_GatedDeltaNet) {
  const auto m = mix(FileType::Q4_K_M, "qwen35", kQwen35_4B);
  const std::vector<int> attn = {3, 7, 11, 15, 19, 23, 27, 31};
  std::vector<int> gdn;
  for (int i = 0; i < 32; ++i)
    if ((i + 1) % 4 != 0) gdn.push_back(i);
  // attn_v ordinals 0..7 over n_attention_wv = 24 attn_qkv + 8 attn_v = 32:
  // use_more_bits(i, 32) holds for ordinals 0, 1, 2, 3, 6 -> layers 3, 7, 11, 15, 27
  expect_layers(m, "attn_v.weight", attn, {3, 7, 11, 15, 27}, DType::Q6_K, DType::Q4_K);
  for (const char* r : {"attn_q.weight", "attn_k.weight", "attn_output.weight"})
    expect_layers(m, r, attn, {}, DType::Q4_K, DType::Q4_K);
  expect_layers(m, "attn_qkv.weight", gdn, {}, DType::Q5_K, DType::Q5_K);
  for (const char* r : {"attn_gate.weight", "ssm_out.weight", "ssm_alpha.weight", "ssm_beta.weight"})
    expect_layers(m, r, gdn, {}, DType::Q4_K, DType::Q4_K);
  // never quantized: kept as stored (the source file has ssm_conv1d in F16, the 1-D ones in F32)
  expect_layers(m, "ssm_conv1d.weight", gdn, {}, DType::F16, DType::F16);
  for (const char* r : {"ssm_dt.bias", "ssm_a", "ssm_norm.weight"})
    expect_layers(m, r, gdn, {}, DType::F32, DType::F32);
  // use_more_bits(i, 32) over all 32 ffn_down: i < 4, i >= 28, (i - 4) % 3 == 2 -> 16 layers
  expect_layers(m, "ffn_down.weight", range(32), {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31},
                DType::Q6_K, DType::Q4_K);
  expect_layers(m, "post_attention_norm.weight", range(32), {}, DType::F32, DType::F32);
  EXPECT_EQ(m.at("token_embd.weight"), DType::Q6_K);
}

TEST(Q4KMMix, Gemma3_270M_FallbacksOnWidth640) {
  // n_embd 640 is not a multiple of 256: K types on rows of 640 fall back to 32-block types
  const auto m = mix(FileType::Q4_K_M, "gemma3", kGemma3_270M);
  EXPECT_EQ(m.at("token_embd.weight"), DType::Q8_0);  // tied output rule: 640 % 256 != 0 -> Q8_0
  // use_more_bits(i, 18): i < 2, i >= 15, (i - 2) % 3 == 2 -> 0 1 4 7 10 13 15 16 17
  const std::set<int> more = {0, 1, 4, 7, 10, 13, 15, 16, 17};
  expect_layers(m, "attn_v.weight", range(18), more, DType::Q8_0, DType::Q5_0);   // Q6_K->Q8_0, Q4_K->Q5_0
  expect_layers(m, "ffn_down.weight", range(18), more, DType::Q6_K, DType::Q4_K);  // rows of 2048: fine
  for (const char* r : {"attn_q.weight", "attn_k.weight", "ffn_gate.weight", "ffn_up.weight"})
    expect_layers(m, r, range(18), {}, DType::Q5_0, DType::Q5_0);
  expect_layers(m, "attn_output.weight", range(18), {}, DType::Q4_K, DType::Q4_K);  // rows of 1024
}

TEST(Q4KMMix, FallbackTable) {
  MixContext ctx;
  ctx.n_layer = 1;
  auto type_of = [&](FileType ft, const char* name, U width) {
    return choose_type(ft, ctx, TensorDesc{name, {width, 64}, DType::F32});
  };
  EXPECT_EQ(type_of(FileType::Q4_K_M, "blk.0.ffn_up.weight", 640), DType::Q5_0);
  EXPECT_EQ(type_of(FileType::Q5_K_M, "blk.0.ffn_up.weight", 640), DType::Q5_1);
  EXPECT_EQ(type_of(FileType::Q6_K, "blk.0.ffn_up.weight", 640), DType::Q8_0);
  EXPECT_EQ(type_of(FileType::Q6_K, "blk.0.ffn_up.weight", 100), DType::F16);  // not even 32-aligned
  EXPECT_EQ(type_of(FileType::Q8_0, "blk.0.ffn_up.weight", 100), DType::F16);
  EXPECT_EQ(type_of(FileType::Q4_K_M, "blk.0.ffn_up.weight", 512), DType::Q4_K);
}

TEST(Q4KMMix, OtherFileTypes) {
  const auto q8 = mix(FileType::Q8_0, "qwen3", kQwen3_4B);
  EXPECT_EQ(q8.at("token_embd.weight"), DType::Q8_0);
  expect_layers(q8, "attn_v.weight", range(36), {}, DType::Q8_0, DType::Q8_0);
  expect_layers(q8, "attn_norm.weight", range(36), {}, DType::F32, DType::F32);

  const auto q40 = mix(FileType::Q4_0, "qwen2", kQwen25_7B);
  EXPECT_EQ(q40.at("output.weight"), DType::Q6_K);  // llama.cpp gives legacy files a Q6_K output
  EXPECT_EQ(q40.at("token_embd.weight"), DType::Q4_0);
  expect_layers(q40, "ffn_down.weight", range(28), {}, DType::Q4_0, DType::Q4_0);

  const auto f16 = mix(FileType::F16, "qwen3", kQwen3_4B);
  EXPECT_EQ(f16.at("token_embd.weight"), DType::F16);
  expect_layers(f16, "attn_norm.weight", range(36), {}, DType::F32, DType::F32);
  const auto bf16 = mix(FileType::BF16, "qwen3", kQwen3_4B);
  expect_layers(bf16, "attn_q.weight", range(36), {}, DType::BF16, DType::BF16);
  const auto f32 = mix(FileType::F32, "qwen3", kQwen3_4B);
  expect_layers(f32, "attn_q.weight", range(36), {}, DType::F32, DType::F32);

  const auto ks = mix(FileType::Q4_K_S, "qwen3", kQwen3_4B);
  expect_layers(ks, "attn_v.weight", range(36), {0, 1, 2, 3}, DType::Q5_K, DType::Q4_K);
  expect_layers(ks, "ffn_down.weight", range(36), {0, 1, 2, 3}, DType::Q5_K, DType::Q4_K);  // i < 36/8
  EXPECT_EQ(ks.at("token_embd.weight"), DType::Q6_K);

  const auto k5 = mix(FileType::Q5_K_M, "qwen35", kQwen35_4B);
  expect_layers(k5, "attn_v.weight", {3, 7, 11, 15, 19, 23, 27, 31}, {3, 7, 11, 15, 27}, DType::Q6_K, DType::Q5_K);
  expect_layers(k5, "attn_qkv.weight", {0, 1, 2, 4}, {}, DType::Q6_K, DType::Q6_K);
  expect_layers(k5, "ffn_gate.weight", range(32), {}, DType::Q5_K, DType::Q5_K);

  const auto k6 = mix(FileType::Q6_K, "qwen3", kQwen3_4B);
  expect_layers(k6, "attn_v.weight", range(36), {}, DType::Q6_K, DType::Q6_K);
  EXPECT_EQ(k6.at("token_embd.weight"), DType::Q6_K);
}

TEST(Q4KMMix, FileTypeNamesAndIds) {
  const std::pair<FileType, uint32_t> ids[] = {
      {FileType::F32, 0},   {FileType::F16, 1},   {FileType::Q4_0, 2},   {FileType::Q4_1, 3},
      {FileType::Q8_0, 7},  {FileType::Q5_0, 8},  {FileType::Q5_1, 9},   {FileType::Q4_K_S, 14},
      {FileType::Q4_K_M, 15}, {FileType::Q5_K_M, 17}, {FileType::Q6_K, 18}, {FileType::BF16, 32},
  };
  for (auto [ft, id] : ids) {
    EXPECT_EQ(file_type_gguf_id(ft), id) << file_type_name(ft);
    FileType back;
    ASSERT_TRUE(file_type_from_name(file_type_name(ft), back));
    EXPECT_EQ(back, ft);
  }
  FileType ft;
  EXPECT_TRUE(file_type_from_name("q4_k_m", ft));
  EXPECT_EQ(ft, FileType::Q4_K_M);
  EXPECT_FALSE(file_type_from_name("Q3_K_M", ft));
  EXPECT_STREQ(file_type_name(FileType::Q4_K_M), "Q4_K_M");
}

TEST(Q4KMMix, ContextCountsLikeLlamaCpp) {
  const auto t = tensors_of(kQwen35_4B);
  const MixContext ctx = make_mix_context("qwen35", 32, t);
  EXPECT_FALSE(ctx.has_output);
  EXPECT_EQ(ctx.n_attn_v, 8);
  EXPECT_EQ(ctx.n_attention_wv, 32);
  EXPECT_EQ(ctx.n_ffn_down, 32);
  EXPECT_EQ(ctx.attn_v_layers, (std::vector<int>{3, 7, 11, 15, 19, 23, 27, 31}));
  const MixContext c2 = make_mix_context("qwen2", 28, tensors_of(kQwen25_7B));
  EXPECT_TRUE(c2.has_output);
  EXPECT_EQ(c2.n_attention_wv, 28);
}

}  // namespace
}  // namespace anvil::quant
