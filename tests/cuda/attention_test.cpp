// CUDA paged attention, kv_store and copy_page against the CPU backend (tests/cuda/op_test_util.h).
//
// Every attention case builds one KV pool per backend from shuffled (non-contiguous) pages,
// writes each sequence's history with kv_store in one step and this step's K/V in the next (so
// kv_store is exercised before every attention), then runs attention on both backends with the
// output NaN-poisoned. Cases cover decode steps (contexts 1, 15, 16, 17, ..., 4096: split-K with
// many, few and empty splits), prefill chunks with n_past > 0 across several tiles, mixed steps
// (decode, few-token and prefill sequences interleaved), GQA 1/2/4/7/8/16, head dims 4..256,
// page sizes 1/4/5/16, sliding window, softcap, F32 and F16 KV.
//
// Tolerance 1e-5 normwise wherever the kernels compute in f32 (decode, and prefill on F32 KV or
// odd head dims): both backends read the same stored values (kv_store rounds to F16 identically,
// checked bit for bit below), so the only difference is f32 vs the CPU's double accumulation
// (~1e-6 estimated for context 4096, head_dim 256). The tensor-core prefill (F16 KV, head_dim
// 64/128/256) rounds q and the softmax weights to f16 (unit roundoff 2^-11 = 4.9e-4 each): each
// score moves by ~1e-4..1e-3, each weight by as much relatively, and the output's normwise error
// lands near 1e-3 at worst (3e-4..4e-4 in a CPU emulation of the kernel); such cases are held
// to 5e-3.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tests/cuda/op_test_util.h"

namespace anvil {
namespace {

using test_cuda::random_values;
using test_cuda::Twin;
using test_cuda::TwinBackends;
using test_cuda::TwinSteps;

constexpr double kTol = 1e-5;
constexpr double kTolF16Mma = 5e-3;
constexpr int32_t kDecodeMaxTokens = 4;  // cuda/attention.cu: longer sequences take the prefill kernels

struct KvTwin {
  Twin k, v;
  KvLayer cpu, gpu;
};

// A poisoned pool of n_pages pages on both backends.
KvTwin make_kv(TwinBackends& be, DType type, int64_t n_pages, int32_t page_size, int64_t cols) {
  KvTwin kv;
  kv.k = be.typed(type, n_pages * page_size, cols);
  kv.v = be.typed(type, n_pages * page_size, cols);
  kv.cpu = {kv.k.cpu, kv.v.cpu};
  kv.gpu = {kv.k.gpu, kv.v.gpu};
  return kv;
}

// A tensor's bytes, row after row.
std::vector<uint8_t> raw(Backend& b, const Tensor& t) {
  std::vector<uint8_t> out(size_t(t.rows) * t.row_size());
  const Status st = b.copy_to_host(out.data(), t);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return out;
}

struct SeqSpec {
  int32_t n_past = 0, n_new = 1;
  int32_t spare_pages = 1;  // block-table entries past the context (padded tables)
};

struct Case {
  int32_t n_kv = 2, group = 1, head_dim = 64, page_size = 16, window = 0;
  float softcap = 0.f;
  DType kv = DType::F32;
  std::vector<SeqSpec> seqs;
  bool strided_q = false;  // q as a column view of a fused [q | k | v] row
};

std::string describe(const Case& c) {
  std::string s = "kv " + std::string(dtype_name(c.kv)) + " n_kv " + std::to_string(c.n_kv) + " group " +
                  std::to_string(c.group) + " head_dim " + std::to_string(c.head_dim) + " page " +
                  std::to_string(c.page_size) + " window " + std::to_string(c.window) + " softcap " +
                  std::to_string(c.softcap) + (c.strided_q ? " strided q" : "") + " seqs";
  for (const SeqSpec& q : c.seqs) s += " (" + std::to_string(q.n_past) + "+" + std::to_string(q.n_new) + ")";
  return s;
}

// kv_store of random rows for `batch` on both backends.
void store_random(TwinBackends& be, const KvTwin& kv, const StepBatch& batch, int64_t kv_cols, std::mt19937& rng) {
  if (batch.n_tokens() == 0) return;
  const TwinSteps st = be.step(batch);
  const Twin k = be.tensor(batch.n_tokens(), kv_cols, random_values(rng, size_t(batch.n_tokens() * kv_cols)));
  const Twin v = be.tensor(batch.n_tokens(), kv_cols, random_values(rng, size_t(batch.n_tokens() * kv_cols)));
  ASSERT_OK(be.cpu->kv_store(kv.cpu, k.cpu, v.cpu, st.cpu));
  ASSERT_OK(be.gpu->kv_store(kv.gpu, k.gpu, v.gpu, st.gpu));
}

// The tolerance of a case: looser when the tensor-core prefill handles some of it (see the top).
double tolerance(const Case& c) {
  const bool mma_head = c.head_dim == 64 || c.head_dim == 128 || c.head_dim == 256;
  const bool prefill = std::any_of(c.seqs.begin(), c.seqs.end(),
                                   [](const SeqSpec& s) { return s.n_new > kDecodeMaxTokens; });
  return c.kv == DType::F16 && mma_head && prefill ? kTolF16Mma : kTol;
}

void run_case(TwinBackends& be, const Case& c, uint32_t seed) {
  SCOPED_TRACE(describe(c));
  std::mt19937 rng(seed);
  const int32_t n_heads = c.n_kv * c.group, hd = c.head_dim, ps = c.page_size;
  const int64_t kv_cols = int64_t(c.n_kv) * hd, q_cols = int64_t(n_heads) * hd;

  int64_t total_pages = 3;  // a few never used
  for (const SeqSpec& s : c.seqs) total_pages += (s.n_past + s.n_new + ps - 1) / ps + s.spare_pages;
  std::vector<int32_t> pages(static_cast<size_t>(total_pages));
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), rng);
  std::vector<std::vector<int32_t>> tables;
  size_t next = 0;
  for (const SeqSpec& s : c.seqs) {
    std::vector<int32_t> t;
    for (int32_t b = 0; b < (s.n_past + s.n_new + ps - 1) / ps + s.spare_pages; ++b) t.push_back(pages[next++]);
    tables.push_back(std::move(t));
  }
  const KvTwin kv = make_kv(be, c.kv, total_pages, ps, kv_cols);

  StepBatch history;
  history.page_size = ps;
  for (size_t i = 0; i < c.seqs.size(); ++i)
    if (c.seqs[i].n_past > 0) history.add_sequence(std::vector<int32_t>(size_t(c.seqs[i].n_past), 1), 0, tables[i]);
  store_random(be, kv, history, kv_cols, rng);

  StepBatch batch;
  batch.page_size = ps;
  for (size_t i = 0; i < c.seqs.size(); ++i)
    batch.add_sequence(std::vector<int32_t>(size_t(c.seqs[i].n_new), 1), c.seqs[i].n_past, tables[i]);
  store_random(be, kv, batch, kv_cols, rng);
  const TwinSteps st = be.step(batch);

  const int64_t n = batch.n_tokens();
  Twin q_mem;
  Twin q;
  if (c.strided_q) {
    const int64_t wide = q_cols + 2 * kv_cols;
    q_mem = be.tensor(n, wide, random_values(rng, size_t(n * wide)));
    q = q_mem;
    q.cpu = q_mem.cpu.slice_cols(0, q_cols);
    q.gpu = q_mem.gpu.slice_cols(0, q_cols);
  } else {
    q = be.tensor(n, q_cols, random_values(rng, size_t(n * q_cols)));
  }
  const Twin out = be.poisoned(n, q_cols);
  const AttentionParams p{n_heads, c.n_kv, hd, 1.0f / std::sqrt(float(hd)), c.window, c.softcap};
  ASSERT_OK(be.cpu->attention(q.cpu, kv.cpu, p, st.cpu, out.cpu));
  ASSERT_OK(be.gpu->attention(q.gpu, kv.gpu, p, st.gpu, out.gpu));
  EXPECT_LE(be.rel_error(out), tolerance(c));
}

std::vector<SeqSpec> decode_seqs(std::initializer_list<int32_t> contexts) {
  std::vector<SeqSpec> s;
  for (int32_t ctx : contexts) s.push_back({ctx - 1, 1, 1});
  return s;
}

// ---- decode

// Contexts around a page (15, 16, 17), a single key (1) and long ones: the step's longest table
// sets the split count, so the short sequences see mostly empty splits.
TEST(CudaAttention, DecodeSplitKMatchesCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 1000;
  for (DType kv : {DType::F32, DType::F16})
    for (int32_t group : {1, 2, 4, 8})
      for (int32_t hd : {16, 64, 128, 256}) {
        Case c;
        c.kv = kv;
        c.group = group;
        c.head_dim = hd;
        c.seqs = decode_seqs({1, 15, 16, 17, 100, 1037, 2500});
        run_case(be, c, ++seed);
      }
}

// Short contexts only (one split, output written by the split kernel itself), odd page sizes.
TEST(CudaAttention, DecodeSingleSplitMatchesCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 2000;
  for (DType kv : {DType::F32, DType::F16})
    for (int32_t ps : {16, 5, 1})
      for (int32_t group : {1, 4}) {
        Case c;
        c.kv = kv;
        c.group = group;
        c.page_size = ps;
        c.seqs = decode_seqs({1, 2, 5, 16, 17, 33, 64, 100});
        c.seqs[0].spare_pages = 0;
        run_case(be, c, ++seed);
      }
}

TEST(CudaAttention, DecodeWindowAndSoftcapMatchCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 3000;
  for (DType kv : {DType::F32, DType::F16})
    for (int32_t group : {1, 4})
      for (int32_t hd : {64, 256})
        for (int32_t window : {0, 1, 300})
          for (float softcap : {0.f, 30.f, 1.5f}) {
            if (window == 0 && softcap == 0.f) continue;  // DecodeSplitKMatchesCpu
            Case c;
            c.kv = kv;
            c.group = group;
            c.head_dim = hd;
            c.window = window;
            c.softcap = softcap;
            c.seqs = decode_seqs({1, 17, 299, 300, 301, 1037, 2500});
            run_case(be, c, ++seed);
          }
}

// Real shapes: Qwen3-4B (32/8 x 128) at context 4096, Qwen2.5-7B's group of 7 (a block's head
// slots not all used), a group of 16 (two head chunks per kv head), Gemma-like 4/1 x 64.
TEST(CudaAttention, DecodeModelShapesMatchCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 4000;
  struct Shape {
    int32_t n_kv, group, hd;
  };
  for (DType kv : {DType::F16, DType::F32})
    for (const Shape& s : {Shape{8, 4, 128}, Shape{4, 7, 128}, Shape{2, 16, 64}, Shape{1, 4, 64}, Shape{1, 2, 256}}) {
      Case c;
      c.kv = kv;
      c.n_kv = s.n_kv;
      c.group = s.group;
      c.head_dim = s.hd;
      c.seqs = decode_seqs({4096, 1, 700});
      run_case(be, c, ++seed);
    }
}

// Head dims that are not a multiple of the 16-byte load (scalar path) or of 32 lanes.
TEST(CudaAttention, DecodeOddHeadDimsMatchCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 5000;
  for (DType kv : {DType::F32, DType::F16})
    for (int32_t hd : {4, 12, 40, 80, 96, 200, 250})
      for (int32_t group : {2, 8}) {
        Case c;
        c.kv = kv;
        c.group = group;
        c.head_dim = hd;
        c.seqs = decode_seqs({3, 16, 530});
        run_case(be, c, ++seed);
      }
}

// Block tables padded far past the context: many splits, most of them empty for every token.
TEST(CudaAttention, DecodePaddedTablesMatchCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 6000;
  for (DType kv : {DType::F32, DType::F16}) {
    Case c;
    c.kv = kv;
    c.group = 4;
    c.seqs = decode_seqs({1, 40, 300});
    c.seqs[1].spare_pages = 400;
    run_case(be, c, ++seed);
  }
}

// ---- prefill

TEST(CudaAttention, PrefillMatchesCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 7000;
  for (DType kv : {DType::F32, DType::F16})
    for (int32_t group : {1, 2, 4, 8})
      for (int32_t hd : {16, 64, 128, 256}) {
        Case c;
        c.kv = kv;
        c.group = group;
        c.head_dim = hd;
        c.seqs = {{0, 64}, {37, 100}, {300, 33}};
        run_case(be, c, ++seed);
      }
}

TEST(CudaAttention, PrefillWindowSoftcapPagesMatchCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 8000;
  for (DType kv : {DType::F32, DType::F16})
    for (int32_t ps : {16, 5})
      for (int32_t group : {2, 7})
        for (int32_t window : {0, 1, 50})
          for (float softcap : {0.f, 1.5f}) {
            Case c;
            c.kv = kv;
            c.page_size = ps;
            c.group = group;
            c.head_dim = group == 7 ? 40 : 128;
            c.window = window;
            c.softcap = softcap;
            c.seqs = {{0, 70}, {90, 45}, {13, 6}};
            run_case(be, c, ++seed);
          }
}

// ---- mixed steps

// Decode tokens, few-token chunks (decode kernel) and prefill chunks interleaved in one step,
// q as a strided view of a fused projection.
TEST(CudaAttention, MixedStepMatchesCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 9000;
  const std::vector<SeqSpec> seqs = {{0, 7},    {37, 1}, {20, 5}, {1500, 1}, {3, 3},
                                     {15, 1},   {100, 40}, {0, 1}, {2, 2},   {2000, 4}};
  for (DType kv : {DType::F32, DType::F16})
    for (int32_t ps : {16, 4})
      for (int32_t group : {1, 4})
        for (int32_t hd : {64, 128})
          for (int32_t window : {0, 6})
            for (float softcap : {0.f, 1.5f}) {
              Case c;
              c.kv = kv;
              c.page_size = ps;
              c.group = group;
              c.head_dim = hd;
              c.window = window;
              c.softcap = softcap;
              c.seqs = seqs;
              c.strided_q = (seed & 1) != 0;
              run_case(be, c, ++seed);
            }
}

// Every sequence a few tokens (speculative-decoding shape): the decode kernel alone, with host
// planning.
TEST(CudaAttention, FewTokenStepMatchesCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  uint32_t seed = 10000;
  for (DType kv : {DType::F32, DType::F16}) {
    Case c;
    c.kv = kv;
    c.group = 4;
    c.head_dim = 128;
    c.seqs = {{0, 2}, {1000, 4}, {16, 3}, {5, 1}};
    run_case(be, c, ++seed);
  }
}

// ---- kv_store and copy_page

TEST(CudaAttention, KvStoreMatchesCpuBitForBit) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(11);
  for (DType type : {DType::F32, DType::F16}) {
    const int64_t cols = 40;
    KvTwin kv = make_kv(be, type, 6, 4, cols);
    StepBatch b;
    b.page_size = 4;
    b.add_sequence({1, 2, 3}, 2, {5, 1});  // positions 2,3 -> page 5; 4 -> page 1
    b.add_sequence({4}, 0, {3});
    const TwinSteps st = be.step(b);
    // k and v as column views of one fused row, like a QKV projection's output.
    std::vector<float> vals = random_values(rng, size_t(4 * 3 * cols));
    vals[5] = 70000.f;  // rounds to inf in F16
    vals[6] = 1e-6f;    // an F16 subnormal
    const Twin fused = be.tensor(4, 3 * cols, vals);
    Twin k = fused, v = fused;  // k: columns [0, cols) (with the special values), v: [2 cols, 3 cols)
    k.cpu = fused.cpu.slice_cols(0, cols);
    k.gpu = fused.gpu.slice_cols(0, cols);
    v.cpu = fused.cpu.slice_cols(2 * cols, cols);
    v.gpu = fused.gpu.slice_cols(2 * cols, cols);
    ASSERT_OK(be.cpu->kv_store(kv.cpu, k.cpu, v.cpu, st.cpu));
    ASSERT_OK(be.gpu->kv_store(kv.gpu, k.gpu, v.gpu, st.gpu));
    EXPECT_EQ(raw(*be.gpu, kv.gpu.k), raw(*be.cpu, kv.cpu.k)) << dtype_name(type);
    EXPECT_EQ(raw(*be.gpu, kv.gpu.v), raw(*be.cpu, kv.cpu.v)) << dtype_name(type);

    const Twin wrong = be.poisoned(4, cols - 1);
    EXPECT_EQ(be.gpu->kv_store(kv.gpu, wrong.gpu, wrong.gpu, st.gpu).code(), StatusCode::invalid_argument);
    StepBatch far;  // page 9 is past the layer's 6 pages
    far.page_size = 4;
    far.add_sequence({1}, 0, {9});
    const Twin k1 = be.poisoned(1, cols);
    EXPECT_EQ(be.gpu->kv_store(kv.gpu, k1.gpu, k1.gpu, be.gpu->prepare_step(far).value()).code(),
              StatusCode::invalid_argument);
    // A step made by the CPU backend holds host pointers: refused, not dereferenced.
    EXPECT_EQ(be.gpu->kv_store(kv.gpu, k.gpu, v.gpu, st.cpu).code(), StatusCode::invalid_argument);
  }
}

TEST(CudaAttention, CopyPageMatchesCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(13);
  for (DType type : {DType::F32, DType::F16}) {
    const int32_t ps = 4;
    const int64_t cols = 7;
    KvTwin kv = make_kv(be, type, 6, ps, cols);
    StepBatch b;  // fill every row of every page
    b.page_size = ps;
    b.add_sequence(std::vector<int32_t>(24, 1), 0, {0, 1, 2, 3, 4, 5});
    store_random(be, kv, b, cols, rng);
    ASSERT_OK(be.cpu->copy_page(kv.cpu, 2, 5, ps));
    ASSERT_OK(be.gpu->copy_page(kv.gpu, 2, 5, ps));
    ASSERT_OK(be.cpu->copy_page(kv.cpu, 3, 3, ps));
    ASSERT_OK(be.gpu->copy_page(kv.gpu, 3, 3, ps));
    EXPECT_EQ(raw(*be.gpu, kv.gpu.k), raw(*be.cpu, kv.cpu.k)) << dtype_name(type);
    EXPECT_EQ(raw(*be.gpu, kv.gpu.v), raw(*be.cpu, kv.cpu.v)) << dtype_name(type);
    EXPECT_EQ(be.gpu->copy_page(kv.gpu, 2, 6, ps).code(), StatusCode::invalid_argument);
    EXPECT_EQ(be.gpu->copy_page(kv.gpu, -1, 0, ps).code(), StatusCode::invalid_argument);
    EXPECT_EQ(be.gpu->copy_page(kv.gpu, 0, 1, 0).code(), StatusCode::invalid_argument);
  }
}

// ---- invalid arguments

TEST(CudaAttention, RejectsBadParamsAndMissingPages) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(17);
  KvTwin kv = make_kv(be, DType::F32, 4, 4, 16);  // 2 kv heads of 8
  StepBatch b;
  b.page_size = 4;
  b.add_sequence({1, 2}, 0, {2});
  store_random(be, kv, b, 16, rng);
  const TwinSteps st = be.step(b);
  const Twin q = be.tensor(2, 32, random_values(rng, 64));
  const Twin out = be.poisoned(2, 32);
  const AttentionParams good{4, 2, 8, 0.35f, 0, 0.f};
  ASSERT_OK(be.cpu->attention(q.cpu, kv.cpu, good, st.cpu, out.cpu));
  ASSERT_OK(be.gpu->attention(q.gpu, kv.gpu, good, st.gpu, out.gpu));
  EXPECT_LE(be.rel_error(out), kTol);

  const auto expect_invalid = [&](const AttentionParams& p, const char* what) {
    EXPECT_EQ(be.cpu->attention(q.cpu, kv.cpu, p, st.cpu, out.cpu).code(), StatusCode::invalid_argument) << what;
    EXPECT_EQ(be.gpu->attention(q.gpu, kv.gpu, p, st.gpu, out.gpu).code(), StatusCode::invalid_argument) << what;
  };
  AttentionParams p = good;
  p.n_kv_heads = 3;
  expect_invalid(p, "4 % 3 != 0");
  p = good;
  p.scale = 0.f;
  expect_invalid(p, "scale 0");
  p = good;
  p.scale = NAN;
  expect_invalid(p, "scale NaN");
  p = good;
  p.softcap = -1.f;
  expect_invalid(p, "negative softcap");
  p = good;
  p.sliding_window = -2;
  expect_invalid(p, "negative window");
  p = good;
  p.head_dim = 16;
  expect_invalid(p, "q has 32 columns, not 4 * 16");
  p = good;
  p.n_heads = 0;
  expect_invalid(p, "no heads");

  StepBatch far;  // page 7 is not in the 4-page layer
  far.page_size = 4;
  far.add_sequence({1, 2}, 0, {7});
  const TwinSteps st_far = be.step(far);
  EXPECT_EQ(be.gpu->attention(q.gpu, kv.gpu, good, st_far.gpu, out.gpu).code(), StatusCode::invalid_argument);
  EXPECT_EQ(be.cpu->attention(q.cpu, kv.cpu, good, st_far.cpu, out.cpu).code(), StatusCode::invalid_argument);

  const Twin q3 = be.poisoned(3, 32);  // 3 rows for a 2-token step
  EXPECT_EQ(be.gpu->attention(q3.gpu, kv.gpu, good, st.gpu, q3.gpu).code(), StatusCode::invalid_argument);
  const Twin out_short = be.poisoned(2, 24);
  EXPECT_EQ(be.gpu->attention(q.gpu, kv.gpu, good, st.gpu, out_short.gpu).code(), StatusCode::invalid_argument);
  KvLayer mixed = kv.gpu;  // K and V of different types
  const Twin v16 = be.typed(DType::F16, 16, 16);
  mixed.v = v16.gpu;
  EXPECT_EQ(be.gpu->attention(q.gpu, mixed, good, st.gpu, out.gpu).code(), StatusCode::invalid_argument);
  // A step made by the CPU backend holds host pointers: refused, not dereferenced.
  EXPECT_EQ(be.gpu->attention(q.gpu, kv.gpu, good, st.cpu, out.gpu).code(), StatusCode::invalid_argument);

  // Valid for the CPU, beyond the CUDA kernels: unsupported, not a crash.
  KvTwin wide = make_kv(be, DType::F32, 4, 4, 512);
  const Twin qw = be.tensor(2, 512, random_values(rng, 1024));
  const Twin ow = be.poisoned(2, 512);
  const AttentionParams big{1, 1, 512, 0.04f, 0, 0.f};
  EXPECT_EQ(be.gpu->attention(qw.gpu, wide.gpu, big, st.gpu, ow.gpu).code(), StatusCode::unsupported);
}

}  // namespace
}  // namespace anvil
