// CPU backend ops against the naive references in reference_ops.h: rms_norm, add, scale, glu,
// rope, embed, gather_logit_rows, plus memory, prepare_step and error handling.
// (Paged KV and attention: attention_test.cpp.)
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/backend.h"
#include "cpu/backend.h"
#include "quant/quant.h"
#include "tests/cpu/reference_ops.h"
#include "tests/cpu/test_util.h"

namespace anvil {
namespace {

using test_cpu::alloc_f32;
using test_cpu::Buf;
using test_cpu::fill;
using test_cpu::random_values;
using test_cpu::rel_error;
using test_cpu::to_mat;
using test_ref::Mat;

constexpr double kTolF32 = 1e-5;

struct Shape {
  int64_t rows, cols;
};
const Shape kShapes[] = {{1, 1}, {1, 7}, {5, 64}, {3, 4096}, {17, 1000}, {64, 33}};

class CpuOps : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = cpu::make_backend(2);
  std::mt19937 rng{1234};
};

// A one-sequence step of n tokens at positions n_past.., enough pages of 16.
DeviceStep step_of(Backend& be, const std::vector<int32_t>& ids, int32_t n_past = 0) {
  StepBatch b;
  std::vector<int32_t> table;
  for (int32_t p = 0; p * 16 < n_past + int32_t(ids.size()); ++p) table.push_back(p);
  b.add_sequence(ids, n_past, table);
  return be.prepare_step(b).value();
}

TEST_F(CpuOps, RmsNormMatchesReference) {
  for (const Shape& s : kShapes) {
    for (bool with_weight : {true, false}) {
      for (float eps : {1e-6f, 1e-5f}) {
        const auto xv = random_values(rng, size_t(s.rows * s.cols));
        const auto wv = random_values(rng, size_t(s.cols));
        Buf x = alloc_f32(*be, s.rows, s.cols), out = alloc_f32(*be, s.rows, s.cols);
        fill(x.t, xv);
        Weight w = be->upload("norm.weight", DType::F32, 1, s.cols, wv.data()).value();
        ASSERT_TRUE(be->rms_norm(x.t, with_weight ? &w : nullptr, eps, out.t).is_ok());
        const Mat ref = test_ref::rms_norm(to_mat(xv, s.rows, s.cols), with_weight ? &wv : nullptr, eps);
        EXPECT_LE(rel_error(out.t, ref), kTolF32) << s.rows << "x" << s.cols << " weight " << with_weight;
        // In place (x and out alias) gives the same.
        ASSERT_TRUE(be->rms_norm(x.t, with_weight ? &w : nullptr, eps, x.t).is_ok());
        EXPECT_LE(rel_error(x.t, ref), kTolF32);
      }
    }
  }
}

TEST_F(CpuOps, RmsNormEpsMattersForSmallRows) {
  // mean(x^2) ~ 1e-6, comparable with eps: a kernel that drops or misplaces eps fails.
  const auto xv = random_values(rng, 4 * 96, 0.5e-3f, 1.5e-3f);
  Buf x = alloc_f32(*be, 4, 96), out = alloc_f32(*be, 4, 96);
  fill(x.t, xv);
  ASSERT_TRUE(be->rms_norm(x.t, nullptr, 1e-6f, out.t).is_ok());
  EXPECT_LE(rel_error(out.t, test_ref::rms_norm(to_mat(xv, 4, 96), nullptr, 1e-6)), kTolF32);
  EXPECT_GT(rel_error(out.t, test_ref::rms_norm(to_mat(xv, 4, 96), nullptr, 0.0)), 1e-2);
}

TEST_F(CpuOps, RmsNormPerHeadView) {
  // Per-head norms pass x.reshape_cols(head_dim): 3 tokens x 4 heads of 24.
  const auto xv = random_values(rng, 3 * 96);
  const auto wv = random_values(rng, 24);
  Buf x = alloc_f32(*be, 3, 96), out = alloc_f32(*be, 3, 96);
  fill(x.t, xv);
  Weight w = be->upload("q_norm", DType::F32, 1, 24, wv.data()).value();
  ASSERT_TRUE(be->rms_norm(x.t.reshape_cols(24), &w, 1e-6f, out.t.reshape_cols(24)).is_ok());
  EXPECT_LE(rel_error(out.t.reshape_cols(24), test_ref::rms_norm(to_mat(xv, 12, 24), &wv, 1e-6)), kTolF32);
}

TEST_F(CpuOps, AddScaleGluOnStridedViews) {
  for (const Shape& s : kShapes) {
    // a, b and gate/up are column slices of wider rows (as of a fused QKV / gate_up output).
    const int64_t wide = 2 * s.cols + 3;
    Buf fused = alloc_f32(*be, s.rows, wide);
    const auto fv = random_values(rng, size_t(s.rows * wide));
    fill(fused.t, fv);
    const Tensor a = fused.t.slice_cols(0, s.cols), b = fused.t.slice_cols(s.cols + 3, s.cols);
    const Mat fm = to_mat(fv, s.rows, wide);
    Mat ref_sum(s.rows, s.cols), ref_silu(s.rows, s.cols), ref_gelu(s.rows, s.cols), ref_scaled(s.rows, s.cols);
    for (int64_t r = 0; r < s.rows; ++r)
      for (int64_t c = 0; c < s.cols; ++c) {
        const double g = fm.at(r, c), u = fm.at(r, s.cols + 3 + c);
        ref_sum.at(r, c) = g + u;
        ref_silu.at(r, c) = test_ref::silu(g) * u;
        ref_gelu.at(r, c) = test_ref::gelu_tanh(g) * u;
        ref_scaled.at(r, c) = (g + u) * 0.37;
      }
    Buf out = alloc_f32(*be, s.rows, s.cols);
    ASSERT_TRUE(be->add(a, b, out.t).is_ok());
    EXPECT_LE(rel_error(out.t, ref_sum), kTolF32);
    ASSERT_TRUE(be->scale(out.t, 0.37f).is_ok());
    EXPECT_LE(rel_error(out.t, ref_scaled), kTolF32);
    test_cpu::poison(out.t);
    ASSERT_TRUE(be->glu(a, b, Activation::silu, out.t).is_ok());
    EXPECT_LE(rel_error(out.t, ref_silu), kTolF32) << s.rows << "x" << s.cols;
    test_cpu::poison(out.t);
    ASSERT_TRUE(be->glu(a, b, Activation::gelu_tanh, out.t).is_ok());
    EXPECT_LE(rel_error(out.t, ref_gelu), kTolF32) << s.rows << "x" << s.cols;
  }
}

TEST_F(CpuOps, GluExtremeGatesStayFinite) {
  // Large |g|: silu/gelu must not produce NaN (exp overflow) and must saturate correctly.
  const std::vector<float> g = {-200.f, -30.f, -5.f, 5.f, 30.f, 200.f};
  const std::vector<float> u = {1.5f, -2.f, 0.5f, 1.25f, -1.f, 3.f};
  Buf gt = alloc_f32(*be, 1, 6), ut = alloc_f32(*be, 1, 6), out = alloc_f32(*be, 1, 6);
  fill(gt.t, g);
  fill(ut.t, u);
  for (Activation act : {Activation::silu, Activation::gelu_tanh}) {
    test_cpu::poison(out.t);
    ASSERT_TRUE(be->glu(gt.t, ut.t, act, out.t).is_ok());
    for (int i = 0; i < 6; ++i) {
      const double ref = (act == Activation::silu ? test_ref::silu(g[size_t(i)]) : test_ref::gelu_tanh(g[size_t(i)])) *
                         u[size_t(i)];
      EXPECT_NEAR(out.t.row<float>(0)[i], ref, 1e-5 * std::abs(ref) + 1e-12) << "g " << g[size_t(i)];
    }
  }
}

// RoPE over tokens at the given positions; returns {error vs HF's f32 angle, vs exact angle}.
std::pair<double, double> rope_errors(Backend& be, std::mt19937& rng, const std::vector<int32_t>& positions,
                                      const RopeParams& p) {
  const int64_t n = int64_t(positions.size()), cols = int64_t(p.n_heads) * p.head_dim;
  StepBatch batch;  // one sequence whose tokens carry the wanted positions
  StepSequence seq;
  seq.n_tokens = int32_t(n);
  seq.n_past = *std::max_element(positions.begin(), positions.end()) + 1 - int32_t(n);
  for (int32_t i = 0; i * 16 < seq.context_len(); ++i) seq.block_table.push_back(i);
  batch.seqs.push_back(seq);
  batch.positions = positions;
  batch.tokens.assign(size_t(n), 0);
  batch.token_seq.assign(size_t(n), 0);
  const DeviceStep step = be.prepare_step(batch).value();
  const auto xv = random_values(rng, size_t(n * cols));
  Buf x = alloc_f32(be, n, cols);
  fill(x.t, xv);
  EXPECT_TRUE(be.rope(x.t, p, step).is_ok());
  const bool neox = p.mode == RopeMode::neox;
  const Mat xm = to_mat(xv, n, cols);
  const auto ref = [&](bool hf) {
    return test_ref::rope(xm, positions, p.n_heads, p.head_dim, p.rope_dims, p.freq_base, p.freq_scale, neox, hf);
  };
  return {rel_error(x.t, ref(true)), rel_error(x.t, ref(false))};
}

TEST_F(CpuOps, RopeBothModesPartialRotaryLongPositions) {
  struct Case {
    int32_t n_heads, head_dim, rope_dims;
    float base, scale;
  };
  const Case cases[] = {{4, 64, 64, 10000.f, 1.f},    {3, 128, 128, 1e6f, 1.f},  {2, 64, 32, 10000.f, 1.f},
                        {5, 80, 20, 500000.f, 0.25f}, {1, 256, 64, 1e7f, 1.f},   {2, 6, 2, 10000.f, 1.f}};
  std::vector<int32_t> far;  // a prefill chunk far into the context, and scattered large positions
  for (int32_t i = 0; i < 9; ++i) far.push_back(4088 + i - 1);
  for (const Case& c : cases) {
    for (RopeMode mode : {RopeMode::normal, RopeMode::neox}) {
      RopeParams p{c.n_heads, c.head_dim, c.rope_dims, c.base, c.scale, mode};
      const std::string what = "heads " + std::to_string(c.n_heads) + " hd " + std::to_string(c.head_dim) +
                               " rope_dims " + std::to_string(c.rope_dims) +
                               (mode == RopeMode::neox ? " neox" : " normal");
      // Near positions: the f32 angle's rounding is far below 1e-5, so the exact formula holds.
      const auto [near_hf, near_exact] = rope_errors(*be, rng, {0, 1, 2, 3, 5, 8, 13}, p);
      EXPECT_LE(near_hf, kTolF32) << what;
      EXPECT_LE(near_exact, kTolF32) << what;
      // Up to 4096: matches HF's f32 angle to 1e-5; the exact angle differs only by that angle's
      // rounding (|theta| * ~3 ulp ~ 1e-3 rad at 4096), which the looser bound admits.
      const auto [far_hf, far_exact] = rope_errors(*be, rng, far, p);
      EXPECT_LE(far_hf, kTolF32) << what;
      EXPECT_LE(far_exact, 2e-3) << what;
    }
  }
}

TEST_F(CpuOps, RopeLeavesNonRotaryDimsUntouched) {
  RopeParams p{2, 16, 8, 10000.f, 1.f, RopeMode::neox};
  const DeviceStep step = step_of(*be, {1, 2, 3}, 40);
  const auto xv = random_values(rng, 3 * 32);
  Buf x = alloc_f32(*be, 3, 32);
  fill(x.t, xv);
  ASSERT_TRUE(be->rope(x.t, p, step).is_ok());
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t c = 0; c < 32; ++c) {
      if (c % 16 < 8) continue;
      EXPECT_EQ(x.t.row<float>(t)[c], xv[size_t(t * 32 + c)]);
    }
}

TEST_F(CpuOps, EmbedDequantizesRowsOfAnyType) {
  const int64_t vocab = 37, dim = 512;
  const auto table_f32 = random_values(rng, size_t(vocab * dim));
  const std::vector<int32_t> ids = {0, 36, 5, 5, 17, 1};
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    std::vector<uint8_t> bytes(size_t(*row_bytes(type, dim) * vocab));
    ASSERT_TRUE(quant::quantize_rows(type, table_f32.data(), bytes.data(), dim, vocab, 1).is_ok());
    std::vector<float> deq(size_t(vocab * dim));
    ASSERT_TRUE(quant::dequantize_rows(type, bytes.data(), deq.data(), dim, vocab, 1).is_ok());
    Weight table = be->upload("token_embd.weight", type, vocab, dim, bytes.data()).value();
    const DeviceStep step = step_of(*be, ids);
    Buf out = alloc_f32(*be, int64_t(ids.size()), dim);
    ASSERT_TRUE(be->embed(table, step, out.t).is_ok()) << dtype_name(type);
    for (size_t t = 0; t < ids.size(); ++t)
      ASSERT_EQ(0, std::memcmp(out.t.row<float>(int64_t(t)), &deq[size_t(ids[t] * dim)], dim * sizeof(float)))
          << dtype_name(type) << " token " << t;
  }
}

TEST_F(CpuOps, EmbedRejectsOutOfRangeIdsWithoutWriting) {
  const auto tv = random_values(rng, 10 * 8);
  Weight table = be->upload("token_embd.weight", DType::F32, 10, 8, tv.data()).value();
  for (int32_t bad : {10, -1, 1 << 30}) {
    const DeviceStep step = step_of(*be, {3, bad, 4});
    Buf out = alloc_f32(*be, 3, 8);
    const Status s = be->embed(table, step, out.t);
    EXPECT_EQ(s.code(), StatusCode::invalid_argument);
    EXPECT_NE(s.message().find(std::to_string(bad)), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("vocab size 10"), std::string::npos) << s.message();
    EXPECT_TRUE(std::isnan(out.t.row<float>(0)[0])) << "embed wrote before rejecting";
  }
}

TEST_F(CpuOps, GatherLogitRows) {
  StepBatch b;
  b.add_sequence({1, 2, 3, 4}, 0, {0});                 // last only -> row 3
  b.add_sequence({5}, 9, {1});                          // decode -> row 4
  b.add_sequence({6, 7, 8}, 2, {2}, /*logits_all=*/true);  // rows 5, 6, 7
  const DeviceStep step = be->prepare_step(b).value();
  ASSERT_EQ(step.n_logit_rows, 5);
  const auto xv = random_values(rng, 8 * 13);
  Buf x = alloc_f32(*be, 8, 13), out = alloc_f32(*be, 5, 13);
  fill(x.t, xv);
  ASSERT_TRUE(be->gather_logit_rows(x.t, step, out.t).is_ok());
  const int want[] = {3, 4, 5, 6, 7};
  for (int i = 0; i < 5; ++i)
    for (int c = 0; c < 13; ++c) EXPECT_EQ(out.t.row<float>(i)[c], xv[size_t(want[i] * 13 + c)]);
  Buf wrong = alloc_f32(*be, 4, 13);
  EXPECT_EQ(be->gather_logit_rows(x.t, step, wrong.t).code(), StatusCode::invalid_argument);
}

TEST_F(CpuOps, MemoryAlignedZeroCopyAndStridedCopies) {
  for (size_t bytes : {size_t(1), size_t(100), size_t(4096), size_t(1) << 20}) {
    auto buf = be->alloc(bytes).value();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->data()) % 64, 0u);
    EXPECT_EQ(buf->size(), bytes);
  }
  std::vector<uint8_t> q4k(size_t(*row_bytes(DType::Q4_K, 512) * 3), 7);
  Weight w = be->upload("w", DType::Q4_K, 3, 512, q4k.data()).value();
  EXPECT_EQ(w.t.data, q4k.data());  // the mmap'd bytes are used in place
  EXPECT_EQ(be->upload("w", DType::Q4_K, 3, 100, q4k.data()).status().code(), StatusCode::invalid_argument);
  EXPECT_EQ(be->upload("w", DType::F32, 3, 4, nullptr).status().code(), StatusCode::invalid_argument);

  Buf wide = alloc_f32(*be, 4, 10);
  const Tensor view = wide.t.slice_cols(2, 5);  // strided
  const auto src = random_values(rng, 20);
  ASSERT_TRUE(be->copy_from_host(view, src.data()).is_ok());
  std::vector<float> back(20);
  ASSERT_TRUE(be->copy_to_host(back.data(), view).is_ok());
  EXPECT_EQ(back, src);
  EXPECT_TRUE(std::isnan(wide.t.row<float>(0)[0]));  // outside the view: untouched
  EXPECT_TRUE(std::isnan(wide.t.row<float>(3)[9]));
}

TEST_F(CpuOps, PrepareStepBuildsPaddedArrays) {
  StepBatch b;
  b.page_size = 4;
  b.add_sequence({10, 11, 12}, 5, {7, 2, 9});  // positions 5..7 -> pages 2 (5,6,7)
  b.add_sequence({13}, 0, {4});
  b.add_sequence({14, 15}, 10, {0, 1, 3, 6, 8}, true);
  const DeviceStep d = be->prepare_step(b).value();
  EXPECT_EQ(d.n_tokens, 6);
  EXPECT_EQ(d.n_seqs, 3);
  EXPECT_EQ(d.page_size, 4);
  EXPECT_EQ(d.max_blocks, 5);
  EXPECT_EQ(d.max_context, 12);
  const std::vector<int32_t> slots = b.kv_slots();
  for (int t = 0; t < 6; ++t) {
    EXPECT_EQ(d.tokens[t], b.tokens[size_t(t)]);
    EXPECT_EQ(d.positions[t], b.positions[size_t(t)]);
    EXPECT_EQ(d.token_seq[t], b.token_seq[size_t(t)]);
    EXPECT_EQ(d.kv_slots[t], slots[size_t(t)]);
  }
  EXPECT_EQ(d.kv_slots[0], 2 * 4 + 1);  // position 5 -> block 1 -> page 2, offset 1
  const std::vector<int32_t> tables = {7, 2, 9, -1, -1, 4, -1, -1, -1, -1, 0, 1, 3, 6, 8};
  EXPECT_EQ(std::vector<int32_t>(d.block_tables, d.block_tables + 15), tables);
  EXPECT_EQ(std::vector<int32_t>(d.context_lens, d.context_lens + 3), (std::vector<int32_t>{8, 1, 12}));
  EXPECT_EQ(std::vector<int32_t>(d.seq_first_token, d.seq_first_token + 3), (std::vector<int32_t>{0, 3, 4}));
  EXPECT_EQ(std::vector<int32_t>(d.seq_n_tokens, d.seq_n_tokens + 3), (std::vector<int32_t>{3, 1, 2}));
  EXPECT_EQ(std::vector<int32_t>(d.logit_rows, d.logit_rows + d.n_logit_rows), (std::vector<int32_t>{2, 3, 4, 5}));
}

TEST_F(CpuOps, PrepareStepRejectsInconsistentBatches) {
  StepBatch good;
  good.page_size = 4;
  good.add_sequence({1, 2, 3}, 0, {0});
  good.add_sequence({4}, 6, {1, 2});
  ASSERT_TRUE(be->prepare_step(good).has_value());

  StepBatch short_table = good;
  short_table.seqs[1].block_table = {1};  // 7 positions need 2 pages of 4
  const Status s = be->prepare_step(short_table).status();
  EXPECT_EQ(s.code(), StatusCode::invalid_argument);
  EXPECT_NE(s.message().find("sequence 1"), std::string::npos) << s.message();

  StepBatch bad_sizes = good;
  bad_sizes.positions.pop_back();
  EXPECT_EQ(be->prepare_step(bad_sizes).status().code(), StatusCode::invalid_argument);
  StepBatch bad_seq = good;
  bad_seq.token_seq[0] = 5;
  EXPECT_EQ(be->prepare_step(bad_seq).status().code(), StatusCode::invalid_argument);
  StepBatch bad_pos = good;
  bad_pos.positions[3] = 7;  // context is 7: positions 0..6
  EXPECT_EQ(be->prepare_step(bad_pos).status().code(), StatusCode::invalid_argument);
  StepBatch hole = good;
  hole.seqs[1].block_table = {1, -1};
  EXPECT_EQ(be->prepare_step(hole).status().code(), StatusCode::invalid_argument);
  StepBatch bad_page = good;
  bad_page.page_size = 0;
  EXPECT_EQ(be->prepare_step(bad_page).status().code(), StatusCode::invalid_argument);
}

TEST_F(CpuOps, MatmulDispatchAddsBiasOnStridedRows) {
  // The candidates have their own tests; this checks the backend's seam: shapes through,
  // strided x/y, bias applied once.
  const int64_t n = 5, in = 64, out_f = 7;
  const auto wv = random_values(rng, size_t(out_f * in)), bv = random_values(rng, size_t(out_f));
  const auto xv = random_values(rng, size_t(n * in));
  Weight w = be->upload("w", DType::F32, out_f, in, wv.data()).value();
  Weight bias = be->upload("b", DType::F32, 1, out_f, bv.data()).value();
  Buf xb = alloc_f32(*be, n, in + 3), yb = alloc_f32(*be, n, out_f + 2);
  const Tensor x = xb.t.slice_cols(3, in), y = yb.t.slice_cols(1, out_f);
  fill(x, xv);
  const Status s = be->matmul(w, x, y, &bias);
  if (s.code() == StatusCode::unsupported && s.message().find("stub") != std::string::npos)
    GTEST_SKIP() << "cpu/matmul.cpp not built yet: " << s.message();
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  Mat ref(n, out_f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t o = 0; o < out_f; ++o) {
      double acc = bv[size_t(o)];
      for (int64_t i = 0; i < in; ++i) acc += double(xv[size_t(t * in + i)]) * wv[size_t(o * in + i)];
      ref.at(t, o) = acc;
    }
  EXPECT_LE(rel_error(y, ref), kTolF32);
  EXPECT_TRUE(std::isnan(yb.t.row<float>(0)[0]));  // outside the view: untouched
}

TEST_F(CpuOps, BadShapesAreInvalidArgument) {
  Buf a = alloc_f32(*be, 3, 8), b = alloc_f32(*be, 3, 9), c = alloc_f32(*be, 2, 8);
  const auto wv = random_values(rng, 9);
  Weight w9 = be->upload("w", DType::F32, 1, 9, wv.data()).value();
  EXPECT_EQ(be->rms_norm(a.t, nullptr, 1e-6f, b.t).code(), StatusCode::invalid_argument);
  EXPECT_EQ(be->rms_norm(a.t, &w9, 1e-6f, a.t).code(), StatusCode::invalid_argument);
  EXPECT_EQ(be->add(a.t, b.t, a.t).code(), StatusCode::invalid_argument);
  EXPECT_EQ(be->add(a.t, a.t, c.t).code(), StatusCode::invalid_argument);
  EXPECT_EQ(be->glu(a.t, c.t, Activation::silu, a.t).code(), StatusCode::invalid_argument);
  Tensor f16 = a.t;
  f16.type = DType::F16;
  EXPECT_EQ(be->scale(f16, 2.f).code(), StatusCode::invalid_argument);

  const std::vector<float> wm(8 * 5, 0.5f);
  Weight w = be->upload("w", DType::F32, 5, 8, wm.data()).value();  // [out 5, in 8]
  EXPECT_EQ(be->matmul(w, b.t, a.t).code(), StatusCode::invalid_argument);  // x cols 9 != 8
  EXPECT_EQ(be->matmul(w, a.t, a.t).code(), StatusCode::invalid_argument);  // y cols 8 != 5
  EXPECT_EQ(be->matmul(w, a.t, c.t.slice_cols(0, 5)).code(), StatusCode::invalid_argument);  // rows differ
  Buf y = alloc_f32(*be, 3, 5);
  EXPECT_EQ(be->matmul(w, a.t, y.t, &w9).code(), StatusCode::invalid_argument);  // bias 9 != 5

  const DeviceStep step = step_of(*be, {1, 2, 3});
  RopeParams rp{2, 4, 6, 10000.f, 1.f, RopeMode::normal};  // rope_dims > head_dim
  EXPECT_EQ(be->rope(a.t, rp, step).code(), StatusCode::invalid_argument);
  rp.rope_dims = 3;  // odd
  EXPECT_EQ(be->rope(a.t, rp, step).code(), StatusCode::invalid_argument);
  rp = {2, 4, 4, 10000.f, 1.f, RopeMode::normal};
  EXPECT_EQ(be->rope(c.t, rp, step).code(), StatusCode::invalid_argument);  // 2 rows, 3 tokens
  EXPECT_TRUE(be->rope(a.t, rp, step).is_ok());
}

}  // namespace
}  // namespace anvil
