// bench-kernels --backend cuda, the ops reached only through the Backend interface
// (cuda::make_backend): attention, gated DeltaNet, conv1d_silu, rms_norm and rope at Qwen3-4B /
// Qwen3.5-4B shapes, timed by time_backend (bench_kernels_cuda.cu describes the method; the
// harness, Arena and make_step included, is bench_kernels_cuda_harness.h).
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_kernels_cuda_harness.h"
#include "core/backend.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace anvil::bench::cuda_harness {

// ---------------------------------------------------------------------------- Backend ops
#define BENCH_TRY_ASSIGN(lhs, expr)    \
  auto lhs##_e = (expr);               \
  if (!lhs##_e) return lhs##_e.status(); \
  Tensor lhs = *lhs##_e

// ---- attention
namespace {

struct AttnShape {
  const char* model_key;
  const char* name;
  int32_t n_heads, n_kv, hd;
};

Status bench_attention_row(Bench& c, Backend& be, const AttnShape& a, const std::string& label,
                           const std::vector<SeqSpec>& seqs) {
  RowSpec spec{"attention", label, "cuda attention"};
  int32_t total_pages = 0;
  auto step = make_step(be, seqs, &total_pages);
  if (!step) return step.status();
  const int64_t T = step->n_tokens, kv_rows = int64_t(total_pages) * 16, kv_cols = int64_t(a.n_kv) * a.hd;
  const int64_t q_cols = int64_t(a.n_heads) * a.hd;
  double keys = 0, kv_tokens = 0;  // (query, key) pairs; cached positions read
  for (const SeqSpec& s : seqs) {
    kv_tokens += s.n_past + s.n_tokens;
    keys += double(s.n_tokens) * s.n_past + double(s.n_tokens) * (s.n_tokens + 1) / 2;
  }
  const double layer_bytes = 2.0 * double(kv_rows) * double(kv_cols) * 2;
  const int copies = copies_for(layer_bytes);
  Arena ar{be};
  std::vector<KvLayer> kv;
  for (int i = 0; i < copies; ++i) {
    BENCH_TRY_ASSIGN(k, ar.random(DType::F16, kv_rows, kv_cols, -1.f, 1.f, 100 + 2 * i));
    BENCH_TRY_ASSIGN(v, ar.random(DType::F16, kv_rows, kv_cols, -1.f, 1.f, 101 + 2 * i));
    kv.push_back({k, v});
  }
  BENCH_TRY_ASSIGN(q, ar.random(DType::F32, T, q_cols, -1.f, 1.f, 7));
  BENCH_TRY_ASSIGN(out, ar.tensor(DType::F32, T, q_cols));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  AttentionParams p;
  p.n_heads = a.n_heads;
  p.n_kv_heads = a.n_kv;
  p.head_dim = a.hd;
  p.scale = 1.f / std::sqrt(float(a.hd));
  const DeviceStep& st = *step;
  Timed t = time_backend(be, copies, c.opt.samples,
                         [&](int i) { return be.attention(q, kv[size_t(i % copies)], p, st, out); }, out);
  spec.bytes = kv_tokens * double(kv_cols) * 2 * 2 + double(T) * double(q_cols) * 4 * 2;
  spec.flops = 4.0 * a.n_heads * a.hd * keys;
  spec.note = backend_note(t, copies, "KV");
  c.add(spec, t);
  return Status::ok();
}

}  // namespace

void bench_attention(Bench& c, Backend& be) {
  const AttnShape shapes[] = {{"qwen3-4b", "Qwen3-4B 32/8x128", 32, 8, 128},
                              {"qwen35-4b", "Qwen3.5-4B 16/4x256", 16, 4, 256}};
  const std::vector<int32_t> contexts = c.opt.quick ? std::vector<int32_t>{4096} : std::vector<int32_t>{512, 4096, 16384};
  const std::vector<int32_t> pasts = c.opt.quick ? std::vector<int32_t>{4096} : std::vector<int32_t>{0, 4096};
  for (const AttnShape& a : shapes) {
    if (!c.model(a.model_key)) continue;
    auto run = [&](const std::string& label, const std::vector<SeqSpec>& seqs) {
      if (!c.wants("attention", label)) return;
      RowSpec spec{"attention", label, "cuda attention"};
      if (c.lost(spec)) return;
      if (Status s = bench_attention_row(c, be, a, label, seqs); !s) c.add_error(spec, s);
    };
    for (int32_t ctx : contexts)
      for (int32_t b : {1, 8})
        run(std::string(a.name) + " decode ctx " + std::to_string(ctx) + " B=" + std::to_string(b),
            std::vector<SeqSpec>(static_cast<size_t>(b), SeqSpec{1, ctx - 1}));
    for (int32_t np : pasts)
      run(std::string(a.name) + " prefill 512 @ n_past " + std::to_string(np), {SeqSpec{512, np}});
  }
}

// ---- gated DeltaNet (Qwen3.5-4B: 16 k heads, 32 v heads, d_k = d_v = 128, conv kernel 4)
namespace {

constexpr int32_t kGdnK = 16, kGdnV = 32, kGdnD = 128, kConvCh = 2 * kGdnK * kGdnD + kGdnV * kGdnD, kConvK = 4;

Status bench_deltanet_row(Bench& c, Backend& be, const std::string& label, const std::vector<SeqSpec>& seqs,
                          DeltaNetMode mode, const char* cand) {
  auto step = make_step(be, seqs, nullptr);
  if (!step) return step.status();
  const int64_t T = step->n_tokens, B = int64_t(seqs.size());
  const int64_t qk = int64_t(kGdnK) * kGdnD, vd = int64_t(kGdnV) * kGdnD;
  const double state_bytes = double(B) * kGdnV * kGdnD * kGdnD * 4;
  const int copies = copies_for(2 * state_bytes);
  Arena ar{be};
  std::vector<RecurrentLayer> states;
  for (int i = 0; i < copies; ++i) {
    BENCH_TRY_ASSIGN(conv, ar.random(DType::F32, B * (kConvK - 1), kConvCh, -1.f, 1.f, 200 + 2 * i));
    BENCH_TRY_ASSIGN(ssm, ar.random(DType::F32, B * kGdnV * kGdnD, kGdnD, -0.1f, 0.1f, 201 + 2 * i));
    states.push_back({conv, ssm});
  }
  // q | k | v as column views of one conv output row, as the model passes them; q and k of
  // about unit norm per head (uniform with variance 1 / d_k), as after l2_norm.
  const float a = std::sqrt(3.f / kGdnD);
  BENCH_TRY_ASSIGN(qkv, ar.random(DType::F32, T, kConvCh, -a, a, 9));
  BENCH_TRY_ASSIGN(g, ar.random(DType::F32, T, kGdnV, -0.5f, -0.02f, 10));
  BENCH_TRY_ASSIGN(beta, ar.random(DType::F32, T, kGdnV, 0.1f, 0.9f, 11));
  BENCH_TRY_ASSIGN(out, ar.tensor(DType::F32, T, vd));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  const Tensor q = qkv.slice_cols(0, qk), k = qkv.slice_cols(qk, qk), v = qkv.slice_cols(2 * qk, vd);
  DeltaNetParams p;
  p.n_k_heads = kGdnK;
  p.n_v_heads = kGdnV;
  p.d_k = kGdnD;
  p.d_v = kGdnD;
  p.q_scale = 1.f / std::sqrt(float(kGdnD));
  p.mode = mode;
  const DeviceStep& st = *step;
  Timed t = time_backend(be, copies, c.opt.samples, [&](int i) {
    return be.gated_deltanet(q, k, v, g, beta, states[size_t(i % copies)], p, st, out);
  }, out);
  RowSpec spec{"deltanet", label, cand};
  spec.bytes = 2 * state_bytes + double(T) * double(2 * qk + 2 * vd + 2 * kGdnV) * 4;
  spec.flops = 7.0 * kGdnD * kGdnD * kGdnV * double(T);
  spec.note = backend_note(t, copies, "state") + "; FLOPs: the recurrent form's 7 d_k d_v per token and v head";
  c.add(spec, t);
  return Status::ok();
}

}  // namespace

void bench_deltanet(Bench& c, Backend& be) {
  if (!c.model("qwen35-4b")) return;
  struct Size {
    std::string label;
    std::vector<SeqSpec> seqs;
  };
  const std::string base = "Qwen3.5-4B 16k/32v x128";
  std::vector<Size> sizes = {{base + " decode B=1 @ n_past 4096", {SeqSpec{1, 4096}}},
                             {base + " decode B=8 @ n_past 4096", std::vector<SeqSpec>(8, SeqSpec{1, 4096})},
                             {base + " prefill 64 @ n_past 512", {SeqSpec{64, 512}}},
                             {base + " prefill 128 @ n_past 512", {SeqSpec{128, 512}}},
                             {base + " prefill 512 @ n_past 512", {SeqSpec{512, 512}}}};
  const std::pair<DeltaNetMode, const char*> modes[] = {{DeltaNetMode::automatic, "mode=automatic"},
                                                        {DeltaNetMode::recurrent, "mode=recurrent"},
                                                        {DeltaNetMode::chunked, "mode=chunked"}};
  for (const Size& s : sizes) {
    if (!c.wants("deltanet", s.label)) continue;
    for (const auto& [mode, name] : modes) {
      if (c.opt.quick && mode != DeltaNetMode::automatic) continue;
      RowSpec spec{"deltanet", s.label, name};
      if (c.lost(spec)) continue;
      if (Status st = bench_deltanet_row(c, be, s.label, s.seqs, mode, name); !st) c.add_error(spec, st);
    }
  }
}

// ---- conv1d_silu (Qwen3.5-4B: 8192 channels, kernel 4)
namespace {

Status bench_conv_row(Bench& c, Backend& be, const std::string& label, const std::vector<SeqSpec>& seqs) {
  auto step = make_step(be, seqs, nullptr);
  if (!step) return step.status();
  const int64_t T = step->n_tokens, B = int64_t(seqs.size());
  Arena ar{be};
  std::vector<float> hw(size_t(kConvCh) * kConvK);
  for (size_t i = 0; i < hw.size(); ++i) hw[i] = 0.5f * std::sin(float(i) * 0.37f);
  auto w = be.upload("ssm_conv1d", DType::F32, kConvCh, kConvK, hw.data());
  if (!w) return w.status();
  BENCH_TRY_ASSIGN(conv_state, ar.random(DType::F32, B * (kConvK - 1), kConvCh, -1.f, 1.f, 300));
  BENCH_TRY_ASSIGN(x, ar.random(DType::F32, T, kConvCh, -1.f, 1.f, 301));
  BENCH_TRY_ASSIGN(out, ar.tensor(DType::F32, T, kConvCh));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  const RecurrentLayer state{conv_state, Tensor{}};
  const DeviceStep& st = *step;
  const Weight& wt = *w;
  Timed t = time_backend(be, 1, c.opt.samples, [&](int) { return be.conv1d_silu(x, wt, state, st, out); }, out);
  RowSpec spec{"conv1d_silu", label, "cuda conv1d_silu"};
  spec.bytes = double(T) * kConvCh * 4 * 2 + double(kConvCh) * kConvK * 4 + double(B) * (kConvK - 1) * kConvCh * 4 * 2;
  spec.note = backend_note(t, 1, "");
  c.add(spec, t);
  return Status::ok();
}

}  // namespace

void bench_conv(Bench& c, Backend& be) {
  if (!c.model("qwen35-4b")) return;
  const std::string base = "Qwen3.5-4B 8192 ch, kernel 4";
  const std::pair<std::string, std::vector<SeqSpec>> sizes[] = {
      {base + " decode B=1", {SeqSpec{1, 4096}}},
      {base + " decode B=8", std::vector<SeqSpec>(8, SeqSpec{1, 4096})},
      {base + " prefill 512 @ n_past 512", {SeqSpec{512, 512}}}};
  for (const auto& [label, seqs] : sizes) {
    if (!c.wants("conv1d_silu", label)) continue;
    RowSpec spec{"conv1d_silu", label, "cuda conv1d_silu"};
    if (c.lost(spec)) continue;
    if (Status s = bench_conv_row(c, be, label, seqs); !s) c.add_error(spec, s);
  }
}

// ---- rms_norm [n, 2560]
namespace {

Status bench_rms_norm_row(Bench& c, Backend& be, const std::string& label, int64_t n, int64_t d) {
  Arena ar{be};
  std::vector<float> hw(static_cast<size_t>(d));
  for (size_t i = 0; i < hw.size(); ++i) hw[i] = 1.f + 0.1f * std::cos(float(i));
  auto w = be.upload("norm", DType::F32, 1, d, hw.data());
  if (!w) return w.status();
  BENCH_TRY_ASSIGN(x, ar.random(DType::F32, n, d, -2.f, 2.f, 400));
  BENCH_TRY_ASSIGN(out, ar.tensor(DType::F32, n, d));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  const Weight& wt = *w;
  Timed t = time_backend(be, 1, c.opt.samples, [&](int) { return be.rms_norm(x, &wt, 1e-6f, out); }, out);
  RowSpec spec{"rms_norm", label, "cuda rms_norm"};
  spec.bytes = double(n) * d * 4 * 2 + double(d) * 4;
  spec.note = backend_note(t, 1, "");
  c.add(spec, t);
  return Status::ok();
}

}  // namespace

void bench_rms_norm(Bench& c, Backend& be) {
  const std::vector<int64_t> ns = c.opt.quick ? std::vector<int64_t>{1, 512} : std::vector<int64_t>{1, 8, 32, 512};
  for (int64_t n : ns) {
    const std::string label = "[" + std::to_string(n) + ", 2560]";
    if (!c.wants("rms_norm", label)) continue;
    RowSpec spec{"rms_norm", label, "cuda rms_norm"};
    if (c.lost(spec)) continue;
    if (Status s = bench_rms_norm_row(c, be, label, n, 2560); !s) c.add_error(spec, s);
  }
}

// ---- rope (NEOX, in place on q)
namespace {

struct RopeShape {
  const char* model_key;
  const char* name;
  int32_t n_heads, hd, rope_dims;
  float base;
};

Status bench_rope_row(Bench& c, Backend& be, const RopeShape& r, const std::string& label,
                      const std::vector<SeqSpec>& seqs) {
  auto step = make_step(be, seqs, nullptr);
  if (!step) return step.status();
  const int64_t T = step->n_tokens, cols = int64_t(r.n_heads) * r.hd;
  Arena ar{be};
  BENCH_TRY_ASSIGN(x, ar.random(DType::F32, T, cols, -1.f, 1.f, 500));
  ANVIL_RETURN_IF_ERROR(sync_fill());
  RopeParams p;
  p.n_heads = r.n_heads;
  p.head_dim = r.hd;
  p.rope_dims = r.rope_dims;
  p.freq_base = r.base;
  p.mode = RopeMode::neox;
  const DeviceStep& st = *step;
  Timed t = time_backend(be, 1, c.opt.samples, [&](int) { return be.rope(x, p, st); }, x);
  RowSpec spec{"rope", label, "cuda rope"};
  spec.bytes = double(T) * r.n_heads * r.rope_dims * 4 * 2;  // only the rotated dims must move
  spec.note = backend_note(t, 1, "") + "; bytes: the rotated dims, read + written";
  c.add(spec, t);
  return Status::ok();
}

}  // namespace

void bench_rope(Bench& c, Backend& be) {
  const RopeShape shapes[] = {{"qwen3-4b", "Qwen3-4B q 32x128, 128 dims", 32, 128, 128, 1e6f},
                              {"qwen35-4b", "Qwen3.5-4B q 16x256, 64 dims", 16, 256, 64, 1e7f}};
  for (const RopeShape& r : shapes) {
    if (!c.model(r.model_key)) continue;
    const std::pair<std::string, std::vector<SeqSpec>> sizes[] = {
        {"decode B=1", {SeqSpec{1, 4095}}},
        {"decode B=8", std::vector<SeqSpec>(8, SeqSpec{1, 4095})},
        {"prefill 512", {SeqSpec{512, 0}}}};
    for (const auto& [what, seqs] : sizes) {
      const std::string label = std::string(r.name) + " " + what;
      if (!c.wants("rope", label)) continue;
      RowSpec spec{"rope", label, "cuda rope"};
      if (c.lost(spec)) continue;
      if (Status s = bench_rope_row(c, be, r, label, seqs); !s) c.add_error(spec, s);
    }
  }
}

}  // namespace anvil::bench::cuda_harness
