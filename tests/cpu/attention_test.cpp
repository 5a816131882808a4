// Paged KV on the CPU backend: kv_store, attention and copy_page against dense naive attention
// over each sequence's whole K/V history (reference_ops.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "core/backend.h"
#include "core/fp16.h"
#include "cpu/backend.h"
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

// One layer's KV pool of n_pages pages, poisoned (NaN) so reading an unwritten slot shows.
struct KvPool {
  std::shared_ptr<DeviceBuffer> k_mem, v_mem;
  KvLayer layer;
};

KvPool make_pool(Backend& be, DType type, int64_t n_pages, int32_t page_size, int64_t cols) {
  KvPool p;
  const int64_t rows = n_pages * page_size;
  const size_t elem = type == DType::F32 ? 4 : 2;
  p.k_mem = be.alloc(size_t(rows * cols) * elem).value();
  p.v_mem = be.alloc(size_t(rows * cols) * elem).value();
  for (auto* m : {p.k_mem.get(), p.v_mem.get()}) {
    if (type == DType::F32)
      std::fill_n(static_cast<float*>(m->data()), rows * cols, std::numeric_limits<float>::quiet_NaN());
    else
      std::fill_n(static_cast<uint16_t*>(m->data()), rows * cols, uint16_t(0x7e00));  // f16 NaN
  }
  p.layer.k = p.k_mem->as_tensor(type, rows, cols);
  p.layer.v = p.v_mem->as_tensor(type, rows, cols);
  return p;
}

float kv_value(const Tensor& t, int64_t r, int64_t c) {
  return t.type == DType::F32 ? t.row<float>(r)[c] : fp16_to_fp32(t.row<uint16_t>(r)[c]);
}

struct AttnCase {
  int32_t page_size, group, window;
  float softcap;
  DType kv_type;
};

// Three sequences mixed in one step: a first prefill chunk, a decode token, and a later prefill
// chunk, over shuffled (non-contiguous) pages. Their history is written by an earlier step.
void run_attention_case(const AttnCase& c, uint32_t seed) {
  auto be = cpu::make_backend(2);
  std::mt19937 rng(seed);
  const int32_t n_kv = 2, n_heads = n_kv * c.group, hd = c.group == 1 ? 40 : (c.group == 2 ? 24 : 12);
  const int64_t kv_cols = int64_t(n_kv) * hd, q_cols = int64_t(n_heads) * hd;
  const int32_t ps = c.page_size;
  struct Seq {
    int32_t n_past, n_new;
    std::vector<int32_t> table;
    Mat k, v;  // whole history by position
  };
  std::vector<Seq> seqs = {{0, 7, {}, {}, {}}, {37, 1, {}, {}, {}}, {20, 5, {}, {}, {}}};
  int64_t pages_total = 0;
  for (auto& s : seqs) pages_total += (s.n_past + s.n_new + ps - 1) / ps + 1;  // one spare block each
  std::vector<int32_t> pages(size_t(pages_total + 3));
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), rng);
  size_t next_page = 0;
  for (auto& s : seqs) {
    const int32_t ctx = s.n_past + s.n_new;
    for (int32_t b = 0; b < (ctx + ps - 1) / ps + 1; ++b) s.table.push_back(pages[next_page++]);
    s.k = to_mat(random_values(rng, size_t(ctx * kv_cols)), ctx, kv_cols);
    s.v = to_mat(random_values(rng, size_t(ctx * kv_cols)), ctx, kv_cols);
  }
  KvPool pool = make_pool(*be, c.kv_type, int64_t(pages.size()), ps, kv_cols);

  // kv_store the rows [from, from + n) of every sequence's history as one step.
  const auto store = [&](bool history) {
    StepBatch b;
    b.page_size = ps;
    for (auto& s : seqs) {
      const int32_t from = history ? 0 : s.n_past, n = history ? s.n_past : s.n_new;
      b.add_sequence(std::vector<int32_t>(size_t(n), 1), from, s.table);
    }
    DeviceStep step = be->prepare_step(b).value();
    Buf k = alloc_f32(*be, b.n_tokens(), kv_cols), v = alloc_f32(*be, b.n_tokens(), kv_cols);
    for (int32_t t = 0; t < b.n_tokens(); ++t) {
      const Seq& s = seqs[size_t(b.token_seq[size_t(t)])];
      for (int64_t col = 0; col < kv_cols; ++col) {
        k.t.row<float>(t)[col] = float(s.k.at(b.positions[size_t(t)], col));
        v.t.row<float>(t)[col] = float(s.v.at(b.positions[size_t(t)], col));
      }
    }
    EXPECT_TRUE(be->kv_store(pool.layer, k.t, v.t, step).is_ok());
    return std::make_pair(b, step);
  };
  store(true);
  const auto [batch, step] = store(false);

  const auto qv = random_values(rng, size_t(batch.n_tokens() * q_cols));
  Buf q = alloc_f32(*be, batch.n_tokens(), q_cols), out = alloc_f32(*be, batch.n_tokens(), q_cols);
  fill(q.t, qv);
  const float scale = 1.0f / std::sqrt(float(hd));
  const AttentionParams p{n_heads, n_kv, hd, scale, c.window, c.softcap};
  ASSERT_TRUE(be->attention(q.t, pool.layer, p, step, out.t).is_ok());

  const double tol = c.kv_type == DType::F32 ? 1e-5 : 1e-2;
  for (size_t si = 0; si < seqs.size(); ++si) {
    const Seq& s = seqs[si];
    const int32_t first = batch.seqs[si].first_token;
    std::vector<int32_t> pos(size_t(s.n_new));
    std::iota(pos.begin(), pos.end(), s.n_past);
    const Mat ref = test_ref::attention(to_mat(std::vector<float>(qv.begin() + first * q_cols,
                                                                  qv.begin() + (first + s.n_new) * q_cols),
                                               s.n_new, q_cols),
                                        pos, s.k, s.v, n_heads, n_kv, hd, scale, c.window, c.softcap);
    EXPECT_LE(rel_error(out.t.slice_rows(first, s.n_new), ref), tol)
        << "sequence " << si << " page_size " << ps << " group " << c.group << " window " << c.window
        << " softcap " << c.softcap << " kv " << dtype_name(c.kv_type);
  }
}

TEST(CpuAttention, MixedBatchPagedMatchesDenseReference) {
  uint32_t seed = 100;
  for (int32_t ps : {16, 4})
    for (int32_t group : {1, 2, 4})
      for (int32_t window : {0, 6})
        for (float softcap : {0.f, 1.5f})
          for (DType kv : {DType::F32, DType::F16}) run_attention_case({ps, group, window, softcap, kv}, ++seed);
}

TEST(CpuAttention, KvStorePlacesRowsAtSlots) {
  auto be = cpu::make_backend(2);
  std::mt19937 rng(7);
  for (DType type : {DType::F32, DType::F16}) {
    KvPool pool = make_pool(*be, type, 6, 4, 10);
    StepBatch b;
    b.page_size = 4;
    b.add_sequence({1, 2, 3}, 2, {5, 1});  // positions 2,3 -> page 5; 4 -> page 1
    b.add_sequence({4}, 0, {3});
    const DeviceStep step = be->prepare_step(b).value();
    const auto kv = random_values(rng, 40), vv = random_values(rng, 40);
    Buf k = alloc_f32(*be, 4, 10), v = alloc_f32(*be, 4, 10);
    fill(k.t, kv);
    fill(v.t, vv);
    ASSERT_TRUE(be->kv_store(pool.layer, k.t, v.t, step).is_ok());
    const int64_t want_rows[] = {5 * 4 + 2, 5 * 4 + 3, 1 * 4 + 0, 3 * 4 + 0};
    for (int64_t r = 0; r < pool.layer.k.rows; ++r) {
      const int64_t* hit = std::find(std::begin(want_rows), std::end(want_rows), r);
      for (int64_t col = 0; col < 10; ++col) {
        if (hit == std::end(want_rows)) {
          EXPECT_TRUE(std::isnan(kv_value(pool.layer.k, r, col))) << "row " << r << " written";
          continue;
        }
        const size_t i = size_t((hit - std::begin(want_rows)) * 10 + col);
        const float ek = type == DType::F32 ? kv[i] : fp16_to_fp32(fp32_to_fp16(kv[i]));
        const float ev = type == DType::F32 ? vv[i] : fp16_to_fp32(fp32_to_fp16(vv[i]));
        EXPECT_EQ(kv_value(pool.layer.k, r, col), ek);
        EXPECT_EQ(kv_value(pool.layer.v, r, col), ev);
      }
    }
    Buf wrong = alloc_f32(*be, 4, 9);
    EXPECT_EQ(be->kv_store(pool.layer, wrong.t, wrong.t, step).code(), StatusCode::invalid_argument);
    StepBatch far;  // page 9 is past the layer's 6 pages
    far.page_size = 4;
    far.add_sequence({1}, 0, {9});
    Buf k1 = alloc_f32(*be, 1, 10);
    EXPECT_EQ(be->kv_store(pool.layer, k1.t, k1.t, be->prepare_step(far).value()).code(),
              StatusCode::invalid_argument);
  }
}

TEST(CpuAttention, CopyPageCopiesWholePagesOnly) {
  auto be = cpu::make_backend(2);
  std::mt19937 rng(9);
  for (DType type : {DType::F32, DType::F16}) {
    KvPool pool = make_pool(*be, type, 6, 4, 7);
    for (const Tensor* t : {&pool.layer.k, &pool.layer.v}) {  // random contents everywhere
      const auto vals = random_values(rng, size_t(t->rows * t->cols));
      for (int64_t r = 0; r < t->rows; ++r)
        for (int64_t col = 0; col < t->cols; ++col) {
          const float x = vals[size_t(r * t->cols + col)];
          if (type == DType::F32) t->row<float>(r)[col] = x;
          else t->row<uint16_t>(r)[col] = fp32_to_fp16(x);
        }
    }
    std::vector<float> before_k, before_v;
    for (int64_t r = 0; r < 24; ++r)
      for (int64_t col = 0; col < 7; ++col) {
        before_k.push_back(kv_value(pool.layer.k, r, col));
        before_v.push_back(kv_value(pool.layer.v, r, col));
      }
    ASSERT_TRUE(be->copy_page(pool.layer, 2, 5, 4).is_ok());
    for (int64_t r = 0; r < 24; ++r) {
      const int64_t src = r / 4 == 5 ? 2 * 4 + r % 4 : r;
      for (int64_t col = 0; col < 7; ++col) {
        EXPECT_EQ(kv_value(pool.layer.k, r, col), before_k[size_t(src * 7 + col)]) << "row " << r;
        EXPECT_EQ(kv_value(pool.layer.v, r, col), before_v[size_t(src * 7 + col)]) << "row " << r;
      }
    }
    EXPECT_EQ(be->copy_page(pool.layer, 2, 6, 4).code(), StatusCode::invalid_argument);
    EXPECT_EQ(be->copy_page(pool.layer, -1, 0, 4).code(), StatusCode::invalid_argument);
  }
}

TEST(CpuAttention, RejectsBadParamsAndMissingPages) {
  auto be = cpu::make_backend(2);
  std::mt19937 rng(11);
  KvPool pool = make_pool(*be, DType::F32, 4, 4, 16);  // 2 kv heads of 8
  StepBatch b;
  b.page_size = 4;
  b.add_sequence({1, 2}, 0, {2});
  const DeviceStep step = be->prepare_step(b).value();
  Buf k = alloc_f32(*be, 2, 16);
  fill(k.t, random_values(rng, 32));
  ASSERT_TRUE(be->kv_store(pool.layer, k.t, k.t, step).is_ok());
  Buf q = alloc_f32(*be, 2, 32), out = alloc_f32(*be, 2, 32);
  fill(q.t, random_values(rng, 64));
  const AttentionParams good{4, 2, 8, 0.35f, 0, 0.f};
  EXPECT_TRUE(be->attention(q.t, pool.layer, good, step, out.t).is_ok());
  AttentionParams p = good;
  p.n_kv_heads = 3;  // 4 % 3 != 0
  EXPECT_EQ(be->attention(q.t, pool.layer, p, step, out.t).code(), StatusCode::invalid_argument);
  p = good;
  p.scale = 0.f;
  EXPECT_EQ(be->attention(q.t, pool.layer, p, step, out.t).code(), StatusCode::invalid_argument);
  p = good;
  p.head_dim = 16;  // q has 32 columns, not 4 * 16
  EXPECT_EQ(be->attention(q.t, pool.layer, p, step, out.t).code(), StatusCode::invalid_argument);
  StepBatch far;  // page 7 is not in the 4-page layer
  far.page_size = 4;
  far.add_sequence({1, 2}, 0, {7});
  EXPECT_EQ(be->attention(q.t, pool.layer, good, be->prepare_step(far).value(), out.t).code(),
            StatusCode::invalid_argument);
}

}  // namespace
}  // namespace anvil
