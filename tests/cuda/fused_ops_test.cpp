// The CUDA backend's fused sequences against the CPU backend, which runs them as the separate ops
// (core/backend.cpp's defaults): add_rms_norm (residual add + the next norm) and
// qk_norm_rope_store (q/k head norms, RoPE, K/V store). Every output is compared: x's sum and the
// normed rows; q, k, and the K/V pages (read back as floats, so an F16 page compares its
// values). Outputs and pages are NaN-poisoned first, so a row the kernel forgets fails.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "cuda/matmul.h"
#include "quant/quant.h"
#include "tests/cuda/op_test_util.h"

namespace anvil {
namespace {

using test_cuda::random_values;
using test_cuda::read;
using test_cuda::rel_error;
using test_cuda::Twin;
using test_cuda::TwinBackends;
using test_cuda::TwinSteps;
using test_cuda::TwinWeight;

constexpr double kTol = 1e-5;

// ---- add_rms_norm

TEST(CudaFused, AddRmsNormMatchesAddThenNorm) {
  test_cuda::ScopedEnv fused("ANVIL_CUDA_FUSED", "1");  // the kernels, whatever the default
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(31);
  for (int64_t rows : {1, 3, 17})
    for (int64_t cols : {7, 128, 2560, 4100})
      for (bool weighted : {true, false})
        for (bool out_is_h : {true, false}) {  // the models write the norm over the residual h
          const std::string what = std::to_string(rows) + "x" + std::to_string(cols) +
                                   (weighted ? " weighted" : "") + (out_is_h ? " out=h" : "");
          Twin x = be.tensor(rows, cols, random_values(rng, size_t(rows * cols)));
          Twin h = be.tensor(rows, cols, random_values(rng, size_t(rows * cols)));
          TwinWeight w = be.weight_f32("norm", 1, cols, random_values(rng, size_t(cols), 0.5f, 1.5f));
          Twin out = out_is_h ? h : be.poisoned(rows, cols);
          ASSERT_OK(be.cpu->add_rms_norm(x.cpu, h.cpu, weighted ? &w.cpu : nullptr, 1e-6f, out.cpu));
          ASSERT_OK(be.gpu->add_rms_norm(x.gpu, h.gpu, weighted ? &w.gpu : nullptr, 1e-6f, out.gpu));
          EXPECT_LE(be.rel_error(x), kTol) << what << ": the sum";
          EXPECT_LE(be.rel_error(out), kTol) << what << ": the norm";
        }
}

TEST(CudaFused, AddRmsNormOnStridedViewsAndBadShapes) {
  test_cuda::ScopedEnv fused("ANVIL_CUDA_FUSED", "1");  // the kernels, whatever the default
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(32);
  const int64_t rows = 5, cols = 96;
  // x and h as column slices of wider rows (row_stride > the row; the scalar path).
  Twin wide_x = be.tensor(rows, cols + 3, random_values(rng, size_t(rows * (cols + 3))));
  Twin wide_h = be.tensor(rows, cols + 5, random_values(rng, size_t(rows * (cols + 5))));
  Twin x = wide_x, h = wide_h;
  x.cpu = wide_x.cpu.slice_cols(1, cols);
  x.gpu = wide_x.gpu.slice_cols(1, cols);
  h.cpu = wide_h.cpu.slice_cols(2, cols);
  h.gpu = wide_h.gpu.slice_cols(2, cols);
  Twin out = be.poisoned(rows, cols);
  ASSERT_OK(be.cpu->add_rms_norm(x.cpu, h.cpu, nullptr, 1e-5f, out.cpu));
  ASSERT_OK(be.gpu->add_rms_norm(x.gpu, h.gpu, nullptr, 1e-5f, out.gpu));
  EXPECT_LE(be.rel_error(wide_x), kTol);  // the columns outside the slice are untouched on both
  EXPECT_LE(be.rel_error(out), kTol);

  Twin short_h = be.poisoned(rows, cols - 1);
  EXPECT_EQ(be.gpu->add_rms_norm(x.gpu, short_h.gpu, nullptr, 1e-5f, out.gpu).code(), StatusCode::invalid_argument);
  TwinWeight w = be.weight_f32("norm", 1, cols + 1, std::vector<float>(size_t(cols + 1), 1.f));
  EXPECT_EQ(be.gpu->add_rms_norm(x.gpu, h.gpu, &w.gpu, 1e-5f, out.gpu).code(), StatusCode::invalid_argument);
  EXPECT_EQ(be.gpu->add_rms_norm(x.gpu, h.gpu, nullptr, -1.f, out.gpu).code(), StatusCode::invalid_argument);
}

// `out` was just written by a backend op that also quantizes it for the GEMV: the backend's
// matmul on it must equal, bit for bit, a GEMV that quantizes for itself (its own context), and
// must use the op's quantization, which is proven by changing out's memory behind the backend's
// back first (only a reused quantization still gives the GEMV of the op's values). The outputs
// are allocated before the op runs: an allocation makes the backend forget its quantized copy (a
// new buffer may reuse a cached address).
struct GemvOutputs {
  Twin own, backend;
};
GemvOutputs gemv_outputs(TwinBackends& be, int64_t rows, const TwinWeight& w) {
  return {be.poisoned(rows, w.gpu.t.rows), be.poisoned(rows, w.gpu.t.rows)};
}
void expect_gemv_reuses(TwinBackends& be, test_cuda::OwnContext& own, const TwinWeight& w, const Twin& out,
                        const GemvOutputs& ys, const std::string& what) {
  const Twin &y_own = ys.own, &y_backend = ys.backend;
  ASSERT_OK(be.gpu->synchronize());  // the op ran on the backend's stream; the own GEMV reads its output
  ASSERT_OK(cuda::matmul_with(own.ctx, "gemv_int8", w.gpu, out.gpu, y_own.gpu, nullptr));
  own.sync();
  const std::vector<float> junk(size_t(out.gpu.rows * out.gpu.cols), 3.0f);
  ASSERT_EQ(cudaMemcpy2D(out.gpu.data, out.gpu.row_stride, junk.data(), size_t(out.gpu.cols) * sizeof(float),
                         size_t(out.gpu.cols) * sizeof(float), size_t(out.gpu.rows), cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_OK(be.gpu->matmul(w.gpu, out.gpu, y_backend.gpu));
  const std::vector<float> a = read(*be.gpu, y_backend.gpu), b = read(*be.gpu, y_own.gpu);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << what;
}

TwinWeight quantized_weight(TwinBackends& be, std::mt19937& rng, DType type, int64_t rows, int64_t cols) {
  std::vector<float> wv = random_values(rng, size_t(rows * cols), 0.1f, 1.0f);
  std::vector<uint8_t> wq(size_t(rows) * *row_bytes(type, uint64_t(cols)));
  EXPECT_TRUE(quant::quantize_rows(type, wv.data(), wq.data(), cols, rows, 0).is_ok());
  return be.weight("blk.0.ffn_down.weight", type, rows, cols, wq);
}

struct QuantCase {
  DType type;
  int64_t cols;
};
// 2560: one round of float4 threads; 96: a partial warp; 4160: a second, nearly empty round.
const QuantCase kQuantCases[] = {{DType::Q4_K, 2560}, {DType::Q8_0, 96}, {DType::Q8_0, 4160}};

TEST(CudaFused, AddRmsNormHandsTheGemvItsQuantizedOutput) {
  test_cuda::ScopedEnv fused("ANVIL_CUDA_FUSED", "1");
  test_cuda::ScopedEnv producers("ANVIL_CUDA_QUANTIZE_IN_PRODUCERS", "1");
  test_cuda::ScopedEnv gemv("ANVIL_FORCE_KERNEL", "matmul:gemv_int8");
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  test_cuda::OwnContext own;
  ASSERT_TRUE(own.ok());
  std::mt19937 rng(35);
  for (const QuantCase c : kQuantCases)
    for (int64_t rows : {1, 3, 8}) {
      TwinWeight w = quantized_weight(be, rng, c.type, 48, c.cols);
      TwinWeight nw = be.weight_f32("norm", 1, c.cols, random_values(rng, size_t(c.cols), 0.5f, 1.5f));
      Twin x = be.tensor(rows, c.cols, random_values(rng, size_t(rows * c.cols)));
      Twin h = be.tensor(rows, c.cols, random_values(rng, size_t(rows * c.cols)));
      const GemvOutputs ys = gemv_outputs(be, rows, w);
      ASSERT_OK(be.gpu->add_rms_norm(x.gpu, h.gpu, &nw.gpu, 1e-6f, h.gpu));
      expect_gemv_reuses(be, own, w, h, ys, std::string("add_rms_norm ") + std::string(dtype_name(c.type)) + " " +
                                            std::to_string(rows) + "x" + std::to_string(c.cols));
    }
}

TEST(CudaFused, GluHandsTheGemvItsQuantizedOutput) {
  test_cuda::ScopedEnv fused("ANVIL_CUDA_FUSED", "1");
  test_cuda::ScopedEnv producers("ANVIL_CUDA_QUANTIZE_IN_PRODUCERS", "1");
  test_cuda::ScopedEnv gemv("ANVIL_FORCE_KERNEL", "matmul:gemv_int8");
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  test_cuda::OwnContext own;
  ASSERT_TRUE(own.ok());
  std::mt19937 rng(36);
  for (const QuantCase c : kQuantCases)
    for (int64_t rows : {1, 8})
      for (Activation act : {Activation::silu, Activation::gelu_tanh, Activation::sigmoid}) {
        const std::string what = "glu " + std::to_string(int(act)) + " " + std::string(dtype_name(c.type)) + " " +
                                 std::to_string(rows) + "x" + std::to_string(c.cols);
        TwinWeight w = quantized_weight(be, rng, c.type, 48, c.cols);
        Twin gate = be.tensor(rows, c.cols, random_values(rng, size_t(rows * c.cols)));
        Twin up = be.tensor(rows, c.cols, random_values(rng, size_t(rows * c.cols)));
        const GemvOutputs ys = gemv_outputs(be, rows, w);
        ASSERT_OK(be.cpu->glu(gate.cpu, up.cpu, act, gate.cpu));  // in place, as the models run it
        ASSERT_OK(be.gpu->glu(gate.gpu, up.gpu, act, gate.gpu));
        EXPECT_LE(be.rel_error(gate), kTol) << what;
        expect_gemv_reuses(be, own, w, gate, ys, what);
      }
}

// ---- qk_norm_rope_store

struct QkCase {
  const char* name;
  int32_t n_q, n_kv, head_dim, rope_dims;
  RopeMode mode;
  bool q_norm, k_norm;
  DType kv;
  bool halves = false;  // q_src as Qwen3.5's query halves of a [query; gate] row per head
};

// models/qwen35.cpp's view: the query (or gate) half of every head of qg [n, n_heads * 2 * hd].
Tensor head_halves(const Tensor& qg, int64_t n_heads, int64_t head_dim) {
  Tensor t;
  t.data = qg.row<float>(0);
  t.type = DType::F32;
  t.rows = qg.rows * n_heads;
  t.cols = head_dim;
  t.row_stride = size_t(2 * head_dim) * sizeof(float);
  return t;
}

// A K/V pool's values as floats (F16 decoded), NaN where poisoned.
std::vector<float> kv_values(Backend& b, const Tensor& t) {
  std::vector<uint8_t> raw(size_t(t.rows) * t.row_size());
  const Status st = b.copy_to_host(raw.data(), t);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  std::vector<float> out(size_t(t.rows * t.cols));
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.type == DType::F16) {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      out[i] = fp16_to_fp32(h);
    } else {
      std::memcpy(&out[i], raw.data() + 4 * i, 4);
    }
  }
  return out;
}

// The rows the step wrote (its KV slots), GPU against CPU. (The pool's other rows stay poisoned;
// an F16 pool's poison is not all NaN, so they are left out rather than compared.)
double kv_error(Backend& gpu, Backend& cpu, const Tensor& g, const Tensor& c, const std::vector<int32_t>& slots) {
  const std::vector<float> a = kv_values(gpu, g), r = kv_values(cpu, c);
  std::vector<float> a2, r2;
  for (int32_t slot : slots)
    for (int64_t j = 0; j < g.cols; ++j) {
      a2.push_back(a[size_t(slot * g.cols + j)]);
      r2.push_back(r[size_t(slot * g.cols + j)]);
    }
  return rel_error(a2, r2);
}

// A prefill chunk at positions 100.. plus decodes far apart (5, 4000, 31000), pages of 16 mapped
// onto a pool of 8 pages with no two tokens of the step on one slot.
StepBatch qk_batch(int32_t chunk) {
  StepBatch b;
  b.page_size = 16;
  auto table = [](int32_t context, int32_t shift) {
    std::vector<int32_t> t;
    for (int32_t i = 0; i * 16 < context; ++i) t.push_back((i + shift) % 8);
    return t;
  };
  if (chunk > 0) b.add_sequence(std::vector<int32_t>(size_t(chunk), 0), 100, table(100 + chunk, 0));  // page 6
  b.add_sequence({0}, 5, table(6, 0));          // page 0
  b.add_sequence({0}, 4000, table(4001, 0));    // page 250 % 8 = 2
  b.add_sequence({0}, 31000, table(31001, 4));  // page (1937 + 4) % 8 = 5
  return b;
}

TEST(CudaFused, QkNormRopeStoreMatchesSeparateOps) {
  test_cuda::ScopedEnv fused("ANVIL_CUDA_FUSED", "1");  // the kernels, whatever the default
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(33);
  const QkCase cases[] = {
      {"qwen3", 8, 2, 128, 128, RopeMode::neox, true, true, DType::F16},
      {"llama (no norms)", 4, 2, 64, 64, RopeMode::normal, false, false, DType::F32},
      {"gemma3 hd 256", 4, 1, 256, 256, RopeMode::neox, true, true, DType::F16},
      {"partial rotary, q norm only", 3, 1, 80, 32, RopeMode::normal, true, false, DType::F32},
      {"qwen3.5 query halves", 4, 2, 128, 64, RopeMode::neox, true, true, DType::F16, true},
      {"odd head_dim", 2, 1, 40, 40, RopeMode::neox, true, true, DType::F32},
  };
  for (const QkCase& c : cases)
    for (int32_t chunk : {0, 9}) {
      const std::string what = std::string(c.name) + " chunk " + std::to_string(chunk);
      const StepBatch batch = qk_batch(chunk);
      const TwinSteps step = be.step(batch);
      const std::vector<int32_t> slots = batch.kv_slots();
      const int64_t n = step.cpu.n_tokens, hd = c.head_dim, qc = c.n_q * hd, kc = c.n_kv * hd;
      Twin qg = be.tensor(n, c.halves ? 2 * qc : qc, random_values(rng, size_t(n * (c.halves ? 2 * qc : qc))));
      Twin q = c.halves ? be.poisoned(n, qc) : qg;
      Twin k = be.tensor(n, kc, random_values(rng, size_t(n * kc)));
      Twin v = be.tensor(n, kc, random_values(rng, size_t(n * kc)));
      Twin pool_k = be.typed(c.kv, 8 * 16, kc), pool_v = be.typed(c.kv, 8 * 16, kc);
      const KvLayer kv_cpu{pool_k.cpu, pool_v.cpu}, kv_gpu{pool_k.gpu, pool_v.gpu};
      TwinWeight qn = be.weight_f32("q_norm", 1, hd, random_values(rng, size_t(hd), 0.5f, 1.5f));
      TwinWeight kn = be.weight_f32("k_norm", 1, hd, random_values(rng, size_t(hd), 0.5f, 1.5f));
      const RopeParams rq{c.n_q, c.head_dim, c.rope_dims, 1e6f, 1.f, c.mode};
      RopeParams rk = rq;
      rk.n_heads = c.n_kv;
      const QkNormRope p_cpu{c.q_norm ? &qn.cpu : nullptr, c.k_norm ? &kn.cpu : nullptr, 1e-6f, rq, rk};
      const QkNormRope p_gpu{c.q_norm ? &qn.gpu : nullptr, c.k_norm ? &kn.gpu : nullptr, 1e-6f, rq, rk};
      const Tensor src_cpu = c.halves ? head_halves(qg.cpu, c.n_q, hd) : q.cpu.reshape_cols(hd);
      const Tensor src_gpu = c.halves ? head_halves(qg.gpu, c.n_q, hd) : q.gpu.reshape_cols(hd);
      ASSERT_OK(be.cpu->qk_norm_rope_store(src_cpu, q.cpu, k.cpu, v.cpu, p_cpu, kv_cpu, step.cpu));
      ASSERT_OK(be.gpu->qk_norm_rope_store(src_gpu, q.gpu, k.gpu, v.gpu, p_gpu, kv_gpu, step.gpu));
      EXPECT_LE(be.rel_error(q), kTol) << what << ": q";
      EXPECT_LE(be.rel_error(k), kTol) << what << ": k";
      EXPECT_LE(be.rel_error(qg), kTol) << what << ": q_src (untouched with halves)";
      const double f16_tol = c.kv == DType::F16 ? 1e-3 : kTol;  // one F16 ulp where the norms' sums differ
      EXPECT_LE(kv_error(*be.gpu, *be.cpu, pool_k.gpu, pool_k.cpu, slots), f16_tol) << what << ": K pages";
      EXPECT_LE(kv_error(*be.gpu, *be.cpu, pool_v.gpu, pool_v.cpu, slots), kTol) << what << ": V pages";
    }
}

TEST(CudaFused, QkNormRopeStoreKernelRunsWithoutFallback) {
  // The kernel itself (not the backend's fallback to the separate ops) on a Qwen3 shape, and
  // the shapes it declines with unsupported (the backend then runs the separate ops).
  test_cuda::ScopedEnv fused("ANVIL_CUDA_FUSED", "1");  // the kernels, whatever the default
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  test_cuda::OwnContext own;
  ASSERT_TRUE(own.ok());
  std::mt19937 rng(34);
  const StepBatch batch = qk_batch(3);
  const TwinSteps step = be.step(batch);
  const std::vector<int32_t> slots = batch.kv_slots();
  const int64_t n = step.cpu.n_tokens, hd = 128;
  Twin q = be.tensor(n, 4 * hd, random_values(rng, size_t(n * 4 * hd)));
  Twin k = be.tensor(n, 2 * hd, random_values(rng, size_t(n * 2 * hd)));
  Twin v = be.tensor(n, 2 * hd, random_values(rng, size_t(n * 2 * hd)));
  Twin pool_k = be.typed(DType::F32, 8 * 16, 2 * hd), pool_v = be.typed(DType::F32, 8 * 16, 2 * hd);
  TwinWeight qn = be.weight_f32("q_norm", 1, hd, random_values(rng, size_t(hd), 0.5f, 1.5f));
  const RopeParams rq{4, 128, 128, 1e6f, 1.f, RopeMode::neox};
  RopeParams rk = rq;
  rk.n_heads = 2;
  ASSERT_OK(be.cpu->qk_norm_rope_store(q.cpu.reshape_cols(hd), q.cpu, k.cpu, v.cpu, {&qn.cpu, nullptr, 1e-6f, rq, rk},
                                       {pool_k.cpu, pool_v.cpu}, step.cpu));
  ASSERT_OK(cuda::qk_norm_rope_store(own.ctx, q.gpu.reshape_cols(hd), q.gpu, k.gpu, v.gpu,
                                     {&qn.gpu, nullptr, 1e-6f, rq, rk}, {pool_k.gpu, pool_v.gpu}, step.gpu));
  own.sync();
  EXPECT_LE(be.rel_error(q), kTol);
  EXPECT_LE(be.rel_error(k), kTol);
  EXPECT_LE(kv_error(*be.gpu, *be.cpu, pool_k.gpu, pool_k.cpu, slots), kTol);
  EXPECT_LE(kv_error(*be.gpu, *be.cpu, pool_v.gpu, pool_v.cpu, slots), kTol);

  // Different angles for q and k: declined by the kernel, run as separate ops by the backend.
  RopeParams rk2 = rk;
  rk2.freq_base = 1e4f;
  const KvLayer kv_gpu{pool_k.gpu, pool_v.gpu};
  EXPECT_EQ(cuda::qk_norm_rope_store(own.ctx, q.gpu.reshape_cols(hd), q.gpu, k.gpu, v.gpu,
                                     {nullptr, nullptr, 1e-6f, rq, rk2}, kv_gpu, step.gpu).code(),
            StatusCode::unsupported);
  Twin q2 = be.tensor(n, 4 * hd, random_values(rng, size_t(n * 4 * hd)));
  Twin k2 = be.tensor(n, 2 * hd, random_values(rng, size_t(n * 2 * hd)));
  ASSERT_OK(be.cpu->qk_norm_rope_store(q2.cpu.reshape_cols(hd), q2.cpu, k2.cpu, v.cpu, {nullptr, nullptr, 1e-6f, rq, rk2},
                                       {pool_k.cpu, pool_v.cpu}, step.cpu));
  ASSERT_OK(be.gpu->qk_norm_rope_store(q2.gpu.reshape_cols(hd), q2.gpu, k2.gpu, v.gpu,
                                       {nullptr, nullptr, 1e-6f, rq, rk2}, kv_gpu, step.gpu));
  EXPECT_LE(be.rel_error(q2), kTol);
  EXPECT_LE(be.rel_error(k2), kTol);
}

TEST(CudaFused, QkNormRopeStoreRefusesBadArguments) {
  test_cuda::ScopedEnv fused("ANVIL_CUDA_FUSED", "1");  // the kernels, whatever the default
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  const TwinSteps step = be.step(qk_batch(0));
  const int64_t n = step.cpu.n_tokens, hd = 64;
  Twin q = be.poisoned(n, 2 * hd), k = be.poisoned(n, hd), v = be.poisoned(n, hd);
  Twin pool_k = be.typed(DType::F32, 8 * 16, hd), pool_v = be.typed(DType::F32, 8 * 16, hd);
  const KvLayer kv{pool_k.gpu, pool_v.gpu};
  const RopeParams rq{2, 64, 64, 1e4f, 1.f, RopeMode::normal};
  RopeParams rk = rq;
  rk.n_heads = 1;
  auto run = [&](const Tensor& src, const QkNormRope& p, const Tensor& kk, const DeviceStep& st) {
    return be.gpu->qk_norm_rope_store(src, q.gpu, kk, v.gpu, p, kv, st).code();
  };
  const QkNormRope plain{nullptr, nullptr, 1e-6f, rq, rk};
  Twin other = be.poisoned(n * 2, hd);
  EXPECT_EQ(run(other.gpu, plain, k.gpu, step.gpu), StatusCode::invalid_argument);  // no norm: q_src must be q
  RopeParams bad = rk;
  bad.n_heads = 2;  // k has one head
  EXPECT_EQ(run(q.gpu.reshape_cols(hd), {nullptr, nullptr, 1e-6f, rq, bad}, k.gpu, step.gpu),
            StatusCode::invalid_argument);
  TwinWeight wrong = be.weight_f32("q_norm", 1, hd - 1, std::vector<float>(size_t(hd - 1), 1.f));
  EXPECT_EQ(run(q.gpu.reshape_cols(hd), {&wrong.gpu, nullptr, 1e-6f, rq, rk}, k.gpu, step.gpu),
            StatusCode::invalid_argument);
  // A step made by the CPU backend holds host pointers: refused, not dereferenced.
  EXPECT_EQ(run(q.gpu.reshape_cols(hd), plain, k.gpu, step.cpu), StatusCode::invalid_argument);
  // The same calls on the CPU backend give the same codes (one contract).
  EXPECT_EQ(be.cpu->qk_norm_rope_store(other.cpu, q.cpu, k.cpu, v.cpu, plain, {pool_k.cpu, pool_v.cpu}, step.cpu).code(),
            StatusCode::invalid_argument);
}

}  // namespace
}  // namespace anvil
