// The Backend interface's fused sequences as every backend without its own kernels runs them
// (core/backend.cpp's defaults, here on the CPU backend): add_rms_norm, qk_norm_rope_store and
// matmul_group, against the naive double references of tests/cpu/reference_ops.h (norm, then
// RoPE with HF's f32 angles, then the K/V rows at the tokens' slots), and their argument checks.
// The CUDA kernels are compared with these defaults in tests/cuda/fused_ops_test.cpp.
#include <cstring>
#include <string>
#include <vector>

#include "cpu/backend.h"
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

class CpuFused : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = cpu::make_backend(2);
  std::mt19937 rng{77};

  Weight f32_weight(const std::string& name, const std::vector<float>& v) {
    keep_.push_back(v);
    return be->upload(name, DType::F32, 1, int64_t(v.size()), keep_.back().data()).value();
  }
  // One sequence of n tokens at positions n_past.. with the identity block table: slot = position.
  DeviceStep step(int32_t n, int32_t n_past) {
    StepBatch b;
    std::vector<int32_t> table;
    for (int32_t p = 0; p * 16 < n_past + n; ++p) table.push_back(p);
    b.add_sequence(std::vector<int32_t>(size_t(n), 0), n_past, table);
    return be->prepare_step(b).value();
  }

 private:
  std::vector<std::vector<float>> keep_;  // upload() binds host memory on the CPU
};

TEST_F(CpuFused, AddRmsNormIsTheSumThenItsNorm) {
  for (int64_t cols : {7, 256, 2560}) {
    const int64_t rows = 3;
    const auto xv = random_values(rng, size_t(rows * cols)), hv = random_values(rng, size_t(rows * cols));
    const auto wv = random_values(rng, size_t(cols), 0.5f, 1.5f);
    const Weight w = f32_weight("norm", wv);
    Buf x = alloc_f32(*be, rows, cols), h = alloc_f32(*be, rows, cols);
    fill(x.t, xv);
    fill(h.t, hv);
    ASSERT_TRUE(be->add_rms_norm(x.t, h.t, &w, 1e-6f, h.t).is_ok());  // out over h, as the models run it
    Mat sum(rows, cols);
    for (int64_t i = 0; i < rows * cols; ++i) sum.v[size_t(i)] = double(xv[size_t(i)]) + double(hv[size_t(i)]);
    EXPECT_LE(rel_error(x.t, sum), 1e-7) << cols;
    EXPECT_LE(rel_error(h.t, test_ref::rms_norm(sum, &wv, 1e-6)), 1e-5) << cols;
  }
}

struct QkCase {
  const char* name;
  int32_t n_q, n_kv, head_dim, rope_dims;
  bool neox, q_norm, k_norm, halves;
};

TEST_F(CpuFused, QkNormRopeStoreIsNormThenRopeThenStore) {
  const QkCase cases[] = {
      {"qwen3", 4, 2, 64, 64, true, true, true, false},
      {"llama (no norms)", 4, 1, 32, 32, false, false, false, false},
      {"partial rotary, k norm only", 2, 2, 48, 16, false, false, true, false},
      {"qwen3.5 query halves", 2, 1, 64, 32, true, true, true, true},
  };
  for (const QkCase& c : cases) {
    const int32_t n = 5, n_past = 30, hd = c.head_dim;
    const int64_t qc = int64_t(c.n_q) * hd, kc = int64_t(c.n_kv) * hd;
    const DeviceStep st = step(n, n_past);
    std::vector<int32_t> pos;
    for (int32_t i = 0; i < n; ++i) pos.push_back(n_past + i);
    // q's source: q itself, or the query halves of [query; gate] per head (row stride 2 heads).
    const int64_t src_cols = c.halves ? 2 * qc : qc;
    const auto qv = random_values(rng, size_t(n * src_cols)), kv_ = random_values(rng, size_t(n * kc)),
               vv = random_values(rng, size_t(n * kc));
    const auto qw = random_values(rng, size_t(hd), 0.5f, 1.5f), kw = random_values(rng, size_t(hd), 0.5f, 1.5f);
    const Weight q_norm = f32_weight("q_norm", qw), k_norm = f32_weight("k_norm", kw);
    Buf qg = alloc_f32(*be, n, src_cols), k = alloc_f32(*be, n, kc), v = alloc_f32(*be, n, kc);
    fill(qg.t, qv);
    fill(k.t, kv_);
    fill(v.t, vv);
    Buf q = c.halves ? alloc_f32(*be, n, qc) : qg;
    Tensor src = q.t.reshape_cols(hd);
    if (c.halves) {
      src = qg.t;
      src.rows = int64_t(n) * c.n_q;
      src.cols = hd;
      src.row_stride = size_t(2 * hd) * sizeof(float);
    }
    Buf pk = alloc_f32(*be, 64, kc), pv = alloc_f32(*be, 64, kc);  // 4 pages of 16
    const KvLayer layer{pk.t, pv.t};
    const RopeParams rq{c.n_q, hd, c.rope_dims, 1e6f, 1.f, c.neox ? RopeMode::neox : RopeMode::normal};
    RopeParams rk = rq;
    rk.n_heads = c.n_kv;
    const QkNormRope p{c.q_norm ? &q_norm : nullptr, c.k_norm ? &k_norm : nullptr, 1e-6f, rq, rk};
    ASSERT_TRUE(be->qk_norm_rope_store(src, q.t, k.t, v.t, p, layer, st).is_ok()) << c.name;

    // The reference: per-head norm (rows of head_dim), back to token rows, then RoPE.
    // Head h of token t starts at t * stride + h * head_step (head_step 2 hd for the halves).
    auto heads = [&](const std::vector<float>& x, int64_t stride, int64_t head_step, int32_t n_heads) {
      Mat m(int64_t(n) * n_heads, hd);
      for (int64_t t = 0; t < n; ++t)
        for (int32_t h = 0; h < n_heads; ++h)
          for (int32_t e = 0; e < hd; ++e) m.at(t * n_heads + h, e) = x[size_t(t * stride + h * head_step + e)];
      return m;
    };
    auto rows_of = [&](const Mat& m, int32_t n_heads) {
      Mat r(n, int64_t(n_heads) * hd);
      for (int64_t i = 0; i < int64_t(r.v.size()); ++i) r.v[size_t(i)] = m.v[size_t(i)];
      return r;
    };
    Mat qh = heads(qv, src_cols, c.halves ? 2 * hd : hd, c.n_q), kh = heads(kv_, kc, hd, c.n_kv);
    if (c.q_norm) qh = test_ref::rms_norm(qh, &qw, 1e-6);
    if (c.k_norm) kh = test_ref::rms_norm(kh, &kw, 1e-6);
    const Mat q_ref = test_ref::rope(rows_of(qh, c.n_q), pos, c.n_q, hd, c.rope_dims, 1e6, 1.0, c.neox, true);
    const Mat k_ref = test_ref::rope(rows_of(kh, c.n_kv), pos, c.n_kv, hd, c.rope_dims, 1e6, 1.0, c.neox, true);
    EXPECT_LE(rel_error(q.t, q_ref), 1e-5) << c.name << ": q";
    EXPECT_LE(rel_error(k.t, k_ref), 1e-5) << c.name << ": k";
    if (c.halves) EXPECT_LE(rel_error(qg.t, to_mat(qv, n, src_cols)), 0.0) << c.name << ": q_src is read only";
    // The pages: token t at slot n_past + t holds k (roped) and v (as given).
    Tensor k_rows = pk.t, v_rows = pv.t;
    k_rows.data = pk.t.row<float>(n_past);
    v_rows.data = pv.t.row<float>(n_past);
    k_rows.rows = v_rows.rows = n;
    EXPECT_LE(rel_error(k_rows, k_ref), 1e-5) << c.name << ": K pages";
    EXPECT_LE(rel_error(v_rows, to_mat(vv, n, kc)), 0.0) << c.name << ": V pages";
  }
}

TEST_F(CpuFused, QkNormRopeStoreRefusesMismatchedArguments) {
  const int32_t n = 2, hd = 16;
  const DeviceStep st = step(n, 0);
  Buf q = alloc_f32(*be, n, 2 * hd), k = alloc_f32(*be, n, hd), v = alloc_f32(*be, n, hd), other = alloc_f32(*be, 2 * n, hd);
  Buf pk = alloc_f32(*be, 16, hd), pv = alloc_f32(*be, 16, hd);
  const KvLayer layer{pk.t, pv.t};
  const RopeParams rq{2, hd, hd, 1e4f, 1.f, RopeMode::normal};
  RopeParams rk = rq;
  rk.n_heads = 1;
  auto code = [&](const Tensor& src, const QkNormRope& p) {
    return be->qk_norm_rope_store(src, q.t, k.t, v.t, p, layer, st).code();
  };
  EXPECT_EQ(code(q.t.reshape_cols(hd), {nullptr, nullptr, 1e-6f, rq, rk}), StatusCode::ok);
  // Without a q norm nothing would move q_src into q: it must be q's own heads.
  EXPECT_EQ(code(other.t, {nullptr, nullptr, 1e-6f, rq, rk}), StatusCode::invalid_argument);
  RopeParams two = rk;
  two.n_heads = 2;  // k holds one head
  EXPECT_EQ(code(q.t.reshape_cols(hd), {nullptr, nullptr, 1e-6f, rq, two}), StatusCode::invalid_argument);
  RopeParams wide = rk;
  wide.head_dim = 2 * hd;
  EXPECT_EQ(code(q.t.reshape_cols(hd), {nullptr, nullptr, 1e-6f, rq, wide}), StatusCode::invalid_argument);
  const Weight short_norm = f32_weight("q_norm", std::vector<float>(size_t(hd - 1), 1.f));
  EXPECT_EQ(code(q.t.reshape_cols(hd), {&short_norm, nullptr, 1e-6f, rq, rk}), StatusCode::invalid_argument);
}

TEST_F(CpuFused, MatmulGroupIsEachMatmul) {
  const int64_t in = 64, n = 3;
  const auto xv = random_values(rng, size_t(n * in));
  Buf x = alloc_f32(*be, n, in);
  fill(x.t, xv);
  std::vector<std::vector<float>> wv = {random_values(rng, size_t(8 * in)), random_values(rng, size_t(5 * in))};
  std::vector<float> bv = random_values(rng, 5);
  std::vector<Weight> w;
  for (size_t i = 0; i < wv.size(); ++i)
    w.push_back(be->upload("w" + std::to_string(i), DType::F32, int64_t(wv[i].size()) / in, in, wv[i].data()).value());
  const Weight bias = f32_weight("b", bv);
  Buf g0 = alloc_f32(*be, n, 8), g1 = alloc_f32(*be, n, 5), a0 = alloc_f32(*be, n, 8), a1 = alloc_f32(*be, n, 5);
  const MatmulTarget targets[] = {{&w[0], g0.t}, {&w[1], g1.t, &bias}};
  ASSERT_TRUE(be->matmul_group(x.t, targets).is_ok());
  ASSERT_TRUE(be->matmul(w[0], x.t, a0.t).is_ok());
  ASSERT_TRUE(be->matmul(w[1], x.t, a1.t, &bias).is_ok());
  EXPECT_EQ(0, std::memcmp(g0.t.data, a0.t.data, size_t(n * 8) * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(g1.t.data, a1.t.data, size_t(n * 5) * sizeof(float)));
  const MatmulTarget no_weight[] = {{nullptr, g0.t}};
  EXPECT_EQ(be->matmul_group(x.t, no_weight).code(), StatusCode::invalid_argument);
}

}  // namespace
}  // namespace anvil
