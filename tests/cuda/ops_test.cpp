// The simple CUDA op families against the CPU backend (tests/cuda/op_test_util.h): rms_norm,
// l2_norm, add, scale, glu, gather_logit_rows, deltanet_gates and rope, on odd shapes, strided
// and aliased views (slice_cols of fused projections, per-head reshape_cols, Qwen3.5's
// head_halves), with and without weights, every activation, both rope modes, partial rotary and
// large positions; and the invalid shapes both backends must refuse with invalid_argument.
//
// The CPU is the oracle: each case runs the same op on both backends and compares normwise
// (max |gpu - cpu| / max |cpu|) at 1e-5, outputs NaN-poisoned first so an unwritten element fails.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tests/cuda/op_test_util.h"

namespace anvil {
namespace {

using test_cuda::random_values;
using test_cuda::read;
using test_cuda::Twin;
using test_cuda::TwinBackends;
using test_cuda::TwinSteps;
using test_cuda::TwinWeight;

constexpr double kTol = 1e-5;

const int64_t kRows[] = {1, 3, 17};
const int64_t kCols[] = {1, 7, 33, 128, 2560, 4100};

// The same view of both sides of a twin (the memory stays shared with `t`).
template <typename F>
Twin view(const Twin& t, F&& f) {
  Twin v = t;
  v.cpu = f(t.cpu);
  v.gpu = f(t.gpu);
  return v;
}

// models/qwen35.cpp's view: every head_dim-wide half of a [query; gate] pair per head, rows
// n_tokens * n_heads, row_stride two heads.
Tensor head_halves(const Tensor& qg, int64_t n_heads, int64_t head_dim, bool gate) {
  Tensor t;
  t.data = qg.row<float>(0) + (gate ? head_dim : 0);
  t.type = DType::F32;
  t.rows = qg.rows * n_heads;
  t.cols = head_dim;
  t.row_stride = size_t(2 * head_dim) * sizeof(float);
  return t;
}

std::string shape(int64_t rows, int64_t cols) { return std::to_string(rows) + "x" + std::to_string(cols); }

// ---- rms_norm

TEST(CudaSimpleOps, RmsNormShapesWeightsAndInPlace) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(1);
  for (int64_t rows : kRows)
    for (int64_t cols : kCols)
      for (bool with_weight : {true, false}) {
        const std::string what = shape(rows, cols) + (with_weight ? " weight" : " no weight");
        Twin x = be.tensor(rows, cols, random_values(rng, size_t(rows * cols)));
        TwinWeight w = be.weight_f32("norm.weight", 1, cols, random_values(rng, size_t(cols)));
        Twin y = be.poisoned(rows, cols);
        ASSERT_OK(be.cpu->rms_norm(x.cpu, with_weight ? &w.cpu : nullptr, 1e-6f, y.cpu));
        ASSERT_OK(be.gpu->rms_norm(x.gpu, with_weight ? &w.gpu : nullptr, 1e-6f, y.gpu));
        EXPECT_LE(be.rel_error(y), kTol) << what;
        // In place (x and out alias).
        ASSERT_OK(be.cpu->rms_norm(x.cpu, with_weight ? &w.cpu : nullptr, 1e-5f, x.cpu));
        ASSERT_OK(be.gpu->rms_norm(x.gpu, with_weight ? &w.gpu : nullptr, 1e-5f, x.gpu));
        EXPECT_LE(be.rel_error(x), kTol) << what << " in place";
      }
}

TEST(CudaSimpleOps, RmsNormEpsMattersForSmallRows) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(2);
  // mean(x^2) ~ 1e-6, comparable with eps: a kernel that drops or misplaces eps fails.
  Twin x = be.tensor(4, 96, random_values(rng, 4 * 96, 0.5e-3f, 1.5e-3f));
  for (float eps : {1e-6f, 0.f}) {
    Twin y = be.poisoned(4, 96);
    ASSERT_OK(be.cpu->rms_norm(x.cpu, nullptr, eps, y.cpu));
    ASSERT_OK(be.gpu->rms_norm(x.gpu, nullptr, eps, y.gpu));
    EXPECT_LE(be.rel_error(y), kTol) << "eps " << eps;
  }
}

TEST(CudaSimpleOps, RmsNormPerHeadAndHeadHalvesViews) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(3);
  const int64_t n_tokens = 3, n_heads = 4;
  // 24 and 128: the float4 path; 30: not a multiple of 4 (the scalar path).
  for (int64_t hd : {24, 30, 128}) {
    const std::string what = "head_dim " + std::to_string(hd);
    TwinWeight w = be.weight_f32("q_norm", 1, hd, random_values(rng, size_t(hd)));
    // Qwen3.5's q norm: strided query halves of [q; gate] -> contiguous per-head rows of q.
    Twin qg = be.tensor(n_tokens, 2 * n_heads * hd, random_values(rng, size_t(n_tokens * 2 * n_heads * hd)));
    Twin q = be.poisoned(n_tokens, n_heads * hd);
    ASSERT_OK(be.cpu->rms_norm(head_halves(qg.cpu, n_heads, hd, false), &w.cpu, 1e-6f, q.cpu.reshape_cols(hd)));
    ASSERT_OK(be.gpu->rms_norm(head_halves(qg.gpu, n_heads, hd, false), &w.gpu, 1e-6f, q.gpu.reshape_cols(hd)));
    EXPECT_LE(be.rel_error(q), kTol) << what;
    // ... and the gate halves, normalised in place within the strided view (query halves untouched).
    ASSERT_OK(be.cpu->rms_norm(head_halves(qg.cpu, n_heads, hd, true), nullptr, 1e-6f,
                               head_halves(qg.cpu, n_heads, hd, true)));
    ASSERT_OK(be.gpu->rms_norm(head_halves(qg.gpu, n_heads, hd, true), nullptr, 1e-6f,
                               head_halves(qg.gpu, n_heads, hd, true)));
    EXPECT_LE(be.rel_error(qg), kTol) << what << " gate halves in place";
    // The per-head k norm: reshape_cols in place.
    Twin k = be.tensor(n_tokens, 2 * hd, random_values(rng, size_t(n_tokens * 2 * hd)));
    ASSERT_OK(be.cpu->rms_norm(k.cpu.reshape_cols(hd), &w.cpu, 1e-6f, k.cpu.reshape_cols(hd)));
    ASSERT_OK(be.gpu->rms_norm(k.gpu.reshape_cols(hd), &w.gpu, 1e-6f, k.gpu.reshape_cols(hd)));
    EXPECT_LE(be.rel_error(k), kTol) << what << " k per head";
  }
}

TEST(CudaSimpleOps, RmsNormOnColumnSliceLeavesTheRestAlone) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(4);
  for (int64_t first : {3, 4}) {  // misaligned and aligned slice starts
    const int64_t rows = 5, wide = 70, cols = 64;
    const auto values = random_values(rng, size_t(rows * wide));
    Twin all = be.tensor(rows, wide, values);
    Twin x = view(all, [&](const Tensor& t) { return t.slice_cols(first, cols); });
    TwinWeight w = be.weight_f32("norm", cols, 1, random_values(rng, size_t(cols)));  // [n, 1] is accepted too
    ASSERT_OK(be.cpu->rms_norm(x.cpu, &w.cpu, 1e-6f, x.cpu));
    ASSERT_OK(be.gpu->rms_norm(x.gpu, &w.gpu, 1e-6f, x.gpu));
    EXPECT_LE(be.rel_error(x), kTol) << "slice at " << first;
    const auto back = read(*be.gpu, all.gpu);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < wide; ++c)
        if (c < first || c >= first + cols) EXPECT_EQ(back[size_t(r * wide + c)], values[size_t(r * wide + c)]);
  }
}

// ---- l2_norm

TEST(CudaSimpleOps, L2NormShapesAndInPlace) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(5);
  struct Case {
    int64_t cols;
    int32_t head_dim;
  };
  const Case cases[] = {{1, 1}, {7, 7}, {33, 11}, {128, 128}, {2560, 128}, {4100, 100}, {4100, 4100}, {96, 16}};
  for (int64_t rows : kRows)
    for (const Case& c : cases) {
      const std::string what = shape(rows, c.cols) + " head_dim " + std::to_string(c.head_dim);
      // Small values, where eps (1e-6) matters against sum(x^2).
      Twin x = be.tensor(rows, c.cols, random_values(rng, size_t(rows * c.cols), 1e-4f, 2e-3f));
      Twin y = be.poisoned(rows, c.cols);
      ASSERT_OK(be.cpu->l2_norm(x.cpu, c.head_dim, 1e-6f, y.cpu));
      ASSERT_OK(be.gpu->l2_norm(x.gpu, c.head_dim, 1e-6f, y.gpu));
      EXPECT_LE(be.rel_error(y), kTol) << what;
      ASSERT_OK(be.cpu->l2_norm(x.cpu, c.head_dim, 0.f, x.cpu));
      ASSERT_OK(be.gpu->l2_norm(x.gpu, c.head_dim, 0.f, x.gpu));
      EXPECT_LE(be.rel_error(x), kTol) << what << " in place";
    }
}

TEST(CudaSimpleOps, L2NormOnConvOutputSlices) {
  // Qwen3.5: q and k are column slices of the conv output, normalised in place per d_k head.
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(6);
  for (int64_t dk : {16, 128, 13}) {
    const int64_t rows = 6, qk = 2 * dk, v = 3 * dk, wide = 2 * qk + v;
    Twin conv = be.tensor(rows, wide, random_values(rng, size_t(rows * wide), 0.001f, 0.1f));
    for (int64_t first : {int64_t(0), qk}) {
      Twin x = view(conv, [&](const Tensor& t) { return t.slice_cols(first, qk); });
      ASSERT_OK(be.cpu->l2_norm(x.cpu, int32_t(dk), 1e-6f, x.cpu));
      ASSERT_OK(be.gpu->l2_norm(x.gpu, int32_t(dk), 1e-6f, x.gpu));
    }
    EXPECT_LE(be.rel_error(conv), kTol) << "d_k " << dk;  // v columns: untouched on both
  }
}

// ---- add, scale, glu

TEST(CudaSimpleOps, AddScaleGluOnStridedViews) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(7);
  for (int64_t rows : kRows)
    for (int64_t cols : kCols)
      for (int64_t pad : {3, 4}) {  // b's start: 4-byte aligned only, or 16-byte aligned when cols % 4 == 0
        const std::string what = shape(rows, cols) + " pad " + std::to_string(pad);
        // a, b (gate, up) are column slices of a fused projection's rows.
        const int64_t wide = 2 * cols + pad;
        Twin fused = be.tensor(rows, wide, random_values(rng, size_t(rows * wide)));
        Twin a = view(fused, [&](const Tensor& t) { return t.slice_cols(0, cols); });
        Twin b = view(fused, [&](const Tensor& t) { return t.slice_cols(cols + pad, cols); });
        Twin out = be.poisoned(rows, cols);
        ASSERT_OK(be.cpu->add(a.cpu, b.cpu, out.cpu));
        ASSERT_OK(be.gpu->add(a.gpu, b.gpu, out.gpu));
        EXPECT_LE(be.rel_error(out), kTol) << what << " add";
        ASSERT_OK(be.cpu->scale(out.cpu, 0.37f));
        ASSERT_OK(be.gpu->scale(out.gpu, 0.37f));
        EXPECT_LE(be.rel_error(out), kTol) << what << " scale";
        // scale on a strided view
        ASSERT_OK(be.cpu->scale(b.cpu, -1.5f));
        ASSERT_OK(be.gpu->scale(b.gpu, -1.5f));
        EXPECT_LE(be.rel_error(fused), kTol) << what << " scale strided";
        for (Activation act : {Activation::silu, Activation::gelu_tanh, Activation::sigmoid}) {
          be.poison(out);
          ASSERT_OK(be.cpu->glu(a.cpu, b.cpu, act, out.cpu));
          ASSERT_OK(be.gpu->glu(a.gpu, b.gpu, act, out.gpu));
          EXPECT_LE(be.rel_error(out), kTol) << what << " glu " << int(act);
        }
      }
}

TEST(CudaSimpleOps, AddAndGluInPlace) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(8);
  for (int64_t rows : kRows)
    for (int64_t cols : kCols) {
      const std::string what = shape(rows, cols);
      Twin a = be.tensor(rows, cols, random_values(rng, size_t(rows * cols)));
      Twin b = be.tensor(rows, cols, random_values(rng, size_t(rows * cols)));
      ASSERT_OK(be.cpu->add(a.cpu, b.cpu, a.cpu));  // the residual add: out = a
      ASSERT_OK(be.gpu->add(a.gpu, b.gpu, a.gpu));
      EXPECT_LE(be.rel_error(a), kTol) << what << " add in place";
      ASSERT_OK(be.cpu->glu(a.cpu, b.cpu, Activation::silu, a.cpu));  // out = gate (the MLP)
      ASSERT_OK(be.gpu->glu(a.gpu, b.gpu, Activation::silu, a.gpu));
      EXPECT_LE(be.rel_error(a), kTol) << what << " glu out = gate";
      ASSERT_OK(be.cpu->glu(a.cpu, b.cpu, Activation::sigmoid, b.cpu));  // out = up (the attention gate)
      ASSERT_OK(be.gpu->glu(a.gpu, b.gpu, Activation::sigmoid, b.gpu));
      EXPECT_LE(be.rel_error(b), kTol) << what << " glu out = up";
    }
}

TEST(CudaSimpleOps, GluHeadHalvesGate) {
  // Qwen3.5's attention output gate: glu(head_halves(qg, gate), heads, sigmoid, heads).
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(9);
  const int64_t n_tokens = 5, n_heads = 3;
  for (int64_t hd : {30, 64}) {
    Twin qg = be.tensor(n_tokens, 2 * n_heads * hd, random_values(rng, size_t(n_tokens * 2 * n_heads * hd)));
    Twin attn = be.tensor(n_tokens, n_heads * hd, random_values(rng, size_t(n_tokens * n_heads * hd)));
    Twin heads = view(attn, [&](const Tensor& t) { return t.reshape_cols(hd); });
    ASSERT_OK(be.cpu->glu(head_halves(qg.cpu, n_heads, hd, true), heads.cpu, Activation::sigmoid, heads.cpu));
    ASSERT_OK(be.gpu->glu(head_halves(qg.gpu, n_heads, hd, true), heads.gpu, Activation::sigmoid, heads.gpu));
    EXPECT_LE(be.rel_error(attn), kTol) << "head_dim " << hd;
  }
}

TEST(CudaSimpleOps, GluExtremeGatesStayFinite) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  const std::vector<float> g = {-200.f, -88.f, -30.f, -5.f, -1e-3f, 0.f, 1e-3f, 5.f, 30.f, 88.f, 200.f};
  const std::vector<float> u = {1.5f, -2.f, 0.5f, 1.25f, -1.f, 3.f, 2.f, -0.5f, 0.75f, 1.f, -3.f};
  const int64_t n = int64_t(g.size());
  Twin gt = be.tensor(1, n, g), ut = be.tensor(1, n, u);
  for (Activation act : {Activation::silu, Activation::gelu_tanh, Activation::sigmoid}) {
    Twin out = be.poisoned(1, n);
    ASSERT_OK(be.cpu->glu(gt.cpu, ut.cpu, act, out.cpu));
    ASSERT_OK(be.gpu->glu(gt.gpu, ut.gpu, act, out.gpu));
    // Elementwise, not normwise: the saturated ends must match as well as the large values.
    const auto got = read(*be.gpu, out.gpu), want = read(*be.cpu, out.cpu);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(std::isfinite(got[i])) << "act " << int(act) << " g " << g[i];
      EXPECT_NEAR(got[i], want[i], 1e-5 * std::abs(want[i]) + 1e-30) << "act " << int(act) << " g " << g[i];
    }
  }
}

// ---- gather_logit_rows

TEST(CudaSimpleOps, GatherLogitRows) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(10);
  StepBatch mixed;
  mixed.add_sequence({1, 2, 3, 4}, 0, {0});                  // last only -> row 3
  mixed.add_sequence({5}, 9, {1});                           // decode -> row 4
  mixed.add_sequence({6, 7, 8}, 2, {2}, /*logits_all=*/true);  // rows 5, 6, 7
  StepBatch decode;  // 8 one-token sequences: every row, the captured-graph case
  for (int32_t s = 0; s < 8; ++s) decode.add_sequence({s}, 3 * s, {2 * s, 2 * s + 1});
  for (const StepBatch* batch : {&mixed, &decode}) {
    const TwinSteps step = be.step(*batch);
    const int64_t n_out = step.cpu.n_logit_rows;
    for (int64_t cols : {1, 13, 64, 4100}) {
      const std::string what = std::to_string(n_out) + " rows of " + std::to_string(cols);
      Twin x = be.tensor(8, cols, random_values(rng, size_t(8 * cols)));
      Twin out = be.poisoned(n_out, cols);
      ASSERT_OK(be.cpu->gather_logit_rows(x.cpu, step.cpu, out.cpu));
      ASSERT_OK(be.gpu->gather_logit_rows(x.gpu, step.gpu, out.gpu));
      EXPECT_EQ(be.rel_error(out), 0.0) << what;  // a copy: exact
      // From a strided view into a strided view.
      Twin xw = be.tensor(8, cols + 5, random_values(rng, size_t(8 * (cols + 5))));
      Twin ow = be.poisoned(n_out, cols + 2);
      Twin xs = view(xw, [&](const Tensor& t) { return t.slice_cols(5, cols); });
      Twin os = view(ow, [&](const Tensor& t) { return t.slice_cols(1, cols); });
      ASSERT_OK(be.cpu->gather_logit_rows(xs.cpu, step.cpu, os.cpu));
      ASSERT_OK(be.gpu->gather_logit_rows(xs.gpu, step.gpu, os.gpu));
      EXPECT_EQ(be.rel_error(os), 0.0) << what << " strided";
    }
  }
  const TwinSteps step = be.step(mixed);
  Twin x = be.tensor(8, 13, random_values(rng, 8 * 13));
  Twin wrong = be.poisoned(4, 13);
  EXPECT_EQ(be.gpu->gather_logit_rows(x.gpu, step.gpu, wrong.gpu).code(), StatusCode::invalid_argument);
  Twin few = be.tensor(3, 13, random_values(rng, 3 * 13));  // row 7 is outside x
  Twin out = be.poisoned(5, 13);
  EXPECT_EQ(be.gpu->gather_logit_rows(few.gpu, step.gpu, out.gpu).code(), StatusCode::invalid_argument);
  // The CUDA gather is not in place (the CPU's row-by-row memmove is): an overlapping out is refused.
  EXPECT_EQ(be.gpu->gather_logit_rows(x.gpu, step.gpu, x.gpu.slice_rows(0, 5)).code(), StatusCode::invalid_argument);
}

// ---- deltanet_gates

TEST(CudaSimpleOps, DeltaNetGates) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(11);
  for (int64_t rows : kRows)
    for (int64_t heads : {1, 4, 32, 33}) {
      const std::string what = shape(rows, heads);
      // alpha and b are slices of one fused projection row, with large |alpha| (softplus's tails).
      const int64_t wide = 2 * heads + 1;
      auto values = random_values(rng, size_t(rows * wide), 0.01f, 40.f);
      Twin fused = be.tensor(rows, wide, values);
      Twin alpha = view(fused, [&](const Tensor& t) { return t.slice_cols(0, heads); });
      Twin b = view(fused, [&](const Tensor& t) { return t.slice_cols(heads + 1, heads); });
      TwinWeight dt = be.weight_f32("ssm_dt", 1, heads, random_values(rng, size_t(heads)));
      auto av = random_values(rng, size_t(heads), 0.01f, 8.f);
      for (float& v : av) v = -std::abs(v);  // ssm_a = -exp(A_log) < 0
      TwinWeight a = be.weight_f32("ssm_a", heads, 1, av);
      Twin g = be.poisoned(rows, heads), beta = be.poisoned(rows, heads);
      ASSERT_OK(be.cpu->deltanet_gates(alpha.cpu, b.cpu, dt.cpu, a.cpu, g.cpu, beta.cpu));
      ASSERT_OK(be.gpu->deltanet_gates(alpha.gpu, b.gpu, dt.gpu, a.gpu, g.gpu, beta.gpu));
      EXPECT_LE(be.rel_error(g), kTol) << what << " g";
      EXPECT_LE(be.rel_error(beta), kTol) << what << " beta";
      // In place: g over alpha, beta over b.
      ASSERT_OK(be.cpu->deltanet_gates(alpha.cpu, b.cpu, dt.cpu, a.cpu, alpha.cpu, b.cpu));
      ASSERT_OK(be.gpu->deltanet_gates(alpha.gpu, b.gpu, dt.gpu, a.gpu, alpha.gpu, b.gpu));
      EXPECT_LE(be.rel_error(fused), kTol) << what << " in place";
    }
}

// ---- rope

// A step whose tokens sit at the wanted positions: a prefill chunk at chunk_start.. (if
// chunk_len > 0), then one decode sequence per entry of `decode`. Pages of 4096 keep block
// tables short at large positions.
StepBatch rope_batch(int32_t chunk_start, int32_t chunk_len, const std::vector<int32_t>& decode) {
  constexpr int32_t kPage = 4096;
  StepBatch b;
  b.page_size = kPage;
  auto pages = [&](int32_t context) {
    std::vector<int32_t> t;
    for (int32_t i = 0; i * kPage < context; ++i) t.push_back(i);
    return t;
  };
  if (chunk_len > 0) b.add_sequence(std::vector<int32_t>(size_t(chunk_len), 0), chunk_start,
                                    pages(chunk_start + chunk_len));
  for (int32_t pos : decode) b.add_sequence({0}, pos, pages(pos + 1));
  return b;
}

TEST(CudaSimpleOps, RopeModesPartialRotaryAndLargePositions) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(12);
  struct Case {
    int32_t n_heads, head_dim, rope_dims;
    float base, scale;
  };
  const Case cases[] = {{4, 64, 64, 10000.f, 1.f},   {3, 128, 128, 1e6f, 1.f},     {2, 64, 32, 10000.f, 1.f},
                        {5, 80, 20, 500000.f, 0.25f}, {1, 256, 64, 1e7f, 1.f},     {2, 6, 2, 10000.f, 1.f},
                        {32, 128, 128, 1e6f, 1.f},    {2, 256, 256, 1e4f, 0.125f}, {1, 1040, 1040, 1e4f, 1.f}};
  struct Positions {
    const char* name;
    int32_t chunk_start, chunk_len;
    std::vector<int32_t> decode;
  };
  const std::vector<Positions> positions = {
      {"near", 0, 7, {}},
      {"4096", 4087, 9, {}},
      {"32k", 32760, 8, {}},
      {"decode", 0, 0, {0, 1, 4095, 32767, 65535, 131071}},
      {"mixed", 30000, 5, {2, 100000}},
  };
  for (const Case& c : cases)
    for (RopeMode mode : {RopeMode::normal, RopeMode::neox})
      for (const Positions& pos : positions) {
        // The fallback (rope_dims > 512 computes inv_freq on the device) matches to inv_freq's
        // rounding only, which grows with the position: tested near the start only.
        if (c.rope_dims > 512 && std::string(pos.name) != "near") continue;
        const RopeParams p{c.n_heads, c.head_dim, c.rope_dims, c.base, c.scale, mode};
        const std::string what = "heads " + std::to_string(c.n_heads) + " hd " + std::to_string(c.head_dim) +
                                 " rope_dims " + std::to_string(c.rope_dims) +
                                 (mode == RopeMode::neox ? " neox " : " normal ") + pos.name;
        const TwinSteps step = be.step(rope_batch(pos.chunk_start, pos.chunk_len, pos.decode));
        const int64_t n = step.cpu.n_tokens, cols = int64_t(c.n_heads) * c.head_dim;
        Twin x = be.tensor(n, cols, random_values(rng, size_t(n * cols)));
        ASSERT_OK(be.cpu->rope(x.cpu, p, step.cpu));
        ASSERT_OK(be.gpu->rope(x.gpu, p, step.gpu));
        EXPECT_LE(be.rel_error(x), kTol) << what;
      }
}

TEST(CudaSimpleOps, RopeOnFusedQkvSlices) {
  // q and k roped in place as column slices of a fused QKV output (row_stride > the row); v and
  // the non-rotary dims stay as they were on both backends.
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(13);
  const int32_t n_heads = 4, n_kv = 2, hd = 64;
  for (int32_t rope_dims : {64, 16})
    for (RopeMode mode : {RopeMode::normal, RopeMode::neox}) {
      const TwinSteps step = be.step(rope_batch(32700, 3, {5, 32767}));
      const int64_t n = step.cpu.n_tokens, qc = n_heads * hd, kc = n_kv * hd, wide = qc + 2 * kc;
      Twin qkv = be.tensor(n, wide, random_values(rng, size_t(n * wide)));
      Twin q = view(qkv, [&](const Tensor& t) { return t.slice_cols(0, qc); });
      Twin k = view(qkv, [&](const Tensor& t) { return t.slice_cols(qc, kc); });
      const RopeParams pq{n_heads, hd, rope_dims, 1e6f, 1.f, mode}, pk{n_kv, hd, rope_dims, 1e6f, 1.f, mode};
      ASSERT_OK(be.cpu->rope(q.cpu, pq, step.cpu));
      ASSERT_OK(be.gpu->rope(q.gpu, pq, step.gpu));
      ASSERT_OK(be.cpu->rope(k.cpu, pk, step.cpu));
      ASSERT_OK(be.gpu->rope(k.gpu, pk, step.gpu));
      EXPECT_LE(be.rel_error(qkv), kTol) << "rope_dims " << rope_dims << (mode == RopeMode::neox ? " neox" : "");
    }
}

TEST(CudaSimpleOps, RopeSameShapeNewPositions) {
  // Two decode steps of the same shape with different positions (what a replayed CUDA graph
  // sees): each result matches its own step's positions.
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(14);
  const RopeParams p{8, 128, 128, 1e6f, 1.f, RopeMode::neox};
  for (const std::vector<int32_t>& decode : {std::vector<int32_t>{10, 20, 30}, std::vector<int32_t>{31000, 7, 4096}}) {
    const TwinSteps step = be.step(rope_batch(0, 0, decode));
    Twin x = be.tensor(3, 8 * 128, random_values(rng, 3 * 8 * 128));
    ASSERT_OK(be.cpu->rope(x.cpu, p, step.cpu));
    ASSERT_OK(be.gpu->rope(x.gpu, p, step.gpu));
    EXPECT_LE(be.rel_error(x), kTol) << decode[0];
  }
}

// ---- invalid arguments: both backends refuse, nothing crashes, the GPU works afterwards

TEST(CudaSimpleOps, BadShapesAreInvalidArgument) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(15);
  Twin a = be.tensor(3, 8, random_values(rng, 24)), b = be.tensor(3, 9, random_values(rng, 27)),
       c = be.tensor(2, 8, random_values(rng, 16)), g4 = be.tensor(3, 4, random_values(rng, 12));
  TwinWeight w9 = be.weight_f32("w9", 1, 9, random_values(rng, 9));
  TwinWeight w4 = be.weight_f32("w4", 1, 4, random_values(rng, 4));
  const TwinSteps step = be.step(rope_batch(0, 3, {}));
  const TwinSteps two = be.step(rope_batch(0, 1, {4}));  // two logit rows
  for (bool on_gpu : {false, true}) {
    Backend& bk = on_gpu ? *be.gpu : *be.cpu;
    auto T = [&](const Twin& t) { return on_gpu ? t.gpu : t.cpu; };
    auto W = [&](const TwinWeight& w) { return on_gpu ? &w.gpu : &w.cpu; };
    const DeviceStep& st = on_gpu ? step.gpu : step.cpu;
    const DeviceStep& st2 = on_gpu ? two.gpu : two.cpu;
    const char* side = on_gpu ? "cuda" : "cpu";
    const auto bad = StatusCode::invalid_argument;
    EXPECT_EQ(bk.rms_norm(T(a), nullptr, 1e-6f, T(b)).code(), bad) << side;  // shapes differ
    EXPECT_EQ(bk.rms_norm(T(a), W(w9), 1e-6f, T(a)).code(), bad) << side;    // weight 9 != 8 cols
    EXPECT_EQ(bk.rms_norm(T(a), nullptr, -1.f, T(a)).code(), bad) << side;   // eps < 0
    EXPECT_EQ(bk.rms_norm(T(a), nullptr, NAN, T(a)).code(), bad) << side;
    EXPECT_EQ(bk.l2_norm(T(a), 3, 1e-6f, T(a)).code(), bad) << side;  // 3 does not divide 8
    EXPECT_EQ(bk.l2_norm(T(a), 0, 1e-6f, T(a)).code(), bad) << side;
    EXPECT_EQ(bk.l2_norm(T(a), 4, -1.f, T(a)).code(), bad) << side;
    EXPECT_EQ(bk.l2_norm(T(a), 4, 1e-6f, T(c)).code(), bad) << side;
    EXPECT_EQ(bk.add(T(a), T(b), T(a)).code(), bad) << side;
    EXPECT_EQ(bk.add(T(a), T(a), T(c)).code(), bad) << side;
    EXPECT_EQ(bk.glu(T(a), T(c), Activation::silu, T(a)).code(), bad) << side;
    EXPECT_EQ(bk.glu(T(a), T(a), Activation(42), T(a)).code(), bad) << side;
    Tensor f16 = T(a);
    f16.type = DType::F16;
    EXPECT_EQ(bk.scale(f16, 2.f).code(), bad) << side;
    EXPECT_EQ(bk.add(f16, T(a), T(a)).code(), bad) << side;
    Tensor short_stride = T(a);
    short_stride.row_stride = 4;
    EXPECT_EQ(bk.scale(short_stride, 2.f).code(), bad) << side;

    RopeParams rp{2, 4, 6, 10000.f, 1.f, RopeMode::normal};  // rope_dims > head_dim
    EXPECT_EQ(bk.rope(T(a), rp, st).code(), bad) << side;
    rp.rope_dims = 3;  // odd
    EXPECT_EQ(bk.rope(T(a), rp, st).code(), bad) << side;
    rp = {2, 4, 4, 0.f, 1.f, RopeMode::normal};  // base 0
    EXPECT_EQ(bk.rope(T(a), rp, st).code(), bad) << side;
    rp = {2, 4, 4, 10000.f, 1.f, RopeMode(7)};
    EXPECT_EQ(bk.rope(T(a), rp, st).code(), bad) << side;
    rp = {2, 4, 4, 10000.f, 1.f, RopeMode::normal};
    EXPECT_EQ(bk.rope(T(c), rp, st).code(), bad) << side;  // 2 rows, 3 tokens
    rp.n_heads = 3;
    EXPECT_EQ(bk.rope(T(a), rp, st).code(), bad) << side;  // 3 * 4 != 8 cols

    EXPECT_EQ(bk.gather_logit_rows(T(a), st2, T(c).slice_rows(0, 1)).code(), bad) << side;  // 1 row, want 2
    EXPECT_EQ(bk.gather_logit_rows(T(a), st2, T(g4).slice_rows(0, 2)).code(), bad) << side;  // cols differ

    EXPECT_EQ(bk.deltanet_gates(T(g4), T(g4), *W(w9), *W(w4), T(g4), T(g4)).code(), bad) << side;  // dt_bias 9
    EXPECT_EQ(bk.deltanet_gates(T(g4), T(a), *W(w4), *W(w4), T(g4), T(g4)).code(), bad) << side;  // b shape
  }
  // Still healthy after the refusals.
  RopeParams rp{2, 4, 4, 10000.f, 1.f, RopeMode::normal};
  ASSERT_OK(be.cpu->rope(a.cpu, rp, step.cpu));
  ASSERT_OK(be.gpu->rope(a.gpu, rp, step.gpu));
  EXPECT_LE(be.rel_error(a), kTol);
  ASSERT_OK(be.gpu->synchronize());
}

TEST(CudaSimpleOps, EmptyShapesAreNoOps) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  Twin e = be.poisoned(0, 8), z = be.poisoned(3, 0);
  ASSERT_OK(be.gpu->rms_norm(e.gpu, nullptr, 1e-6f, e.gpu));
  ASSERT_OK(be.gpu->rms_norm(z.gpu, nullptr, 1e-6f, z.gpu));
  ASSERT_OK(be.gpu->l2_norm(e.gpu, 4, 1e-6f, e.gpu));
  ASSERT_OK(be.gpu->l2_norm(z.gpu, 4, 1e-6f, z.gpu));
  ASSERT_OK(be.gpu->add(e.gpu, e.gpu, e.gpu));
  ASSERT_OK(be.gpu->scale(z.gpu, 2.f));
  ASSERT_OK(be.gpu->glu(z.gpu, z.gpu, Activation::gelu_tanh, z.gpu));
  ASSERT_OK(be.gpu->synchronize());
}

}  // namespace
}  // namespace anvil
