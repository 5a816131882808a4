// The Gated DeltaNet ops on CUDA (conv1d_silu, gated_deltanet: cuda/conv.cu, cuda/deltanet.cu)
// against the CPU backend, the oracle (tests/cuda/op_test_util.h). Every step runs on both
// backends from the same state pools, which start as identical garbage, so a kernel that reads a
// fresh sequence's slot (n_past == 0 must start from zero), writes a slot it does not own, or
// leaves an output unwritten (outputs are NaN-poisoned) fails. Covered: decode of several
// sequences in shuffled slots after a prefill, prefill chunks with n_past == 0 and n_past > 0,
// mixed decode + prefill steps, token counts 1, 3, 63, 64, 65, 130, 512, slot reuse, q/k/v as
// column views of one wide buffer (as models/qwen35.cpp passes them), small and odd heads (both
// state-access paths and every rows-per-thread instantiation) and Qwen3.5-4B's 16/32 x 128, every
// DeltaNetMode (chunked: the chunked kernels for every sequence, decode included; automatic: the
// chunked kernels for sequences over 32 tokens and the recurrent one for the rest, mixed in one
// step), chunk lengths 1, 16, 63, 64, the chunked kernels' limits (unsupported in chunked mode,
// the recurrent kernel in automatic), and invalid arguments (the CPU's checks, mirrored).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/step_batch.h"
#include "tests/cuda/op_test_util.h"

namespace anvil::test_cuda {
namespace {

// Bound on the normwise relative error (max |gpu - cpu| / max |cpu|) of gated_deltanet's outputs
// and states. The CPU runs the rule in double; the GPU in f32 with 128-term dot products, and
// each token's rounding is carried into the state. The carried error does not grow with the
// sequence: every token multiplies the old state by e^g (I - beta k k^T), a contraction for
// g <= 0, 0 < beta < 1 and |k| = 1, so old errors shrink while new ones are added. A host
// emulation of the kernel's f32 arithmetic (its thread layout and reduction order) against the
// double rule gave at most 3e-7 (outputs) and 4e-7 (state) on these inputs at 16/32 x 128, decay
// near 1 over 2 x 130 tokens included, and 8e-7 over 512 tokens with g in [-0.001, 0]: 1e-5
// keeps a >10x margin. The chunked kernels' emulation (bench/NOTES.md, "Chunked gated DeltaNet on
// CUDA"): at most 5.9e-7 (outputs) and 8.6e-7 (state) over 512 + 512 tokens, slow decay included.
constexpr double kDeltaNetTol = 1e-5;
// conv1d_silu: a K-term double sum, then f32 SiLU on both sides (expf vs std::exp: a few ulp).
constexpr double kConvTol = 1e-6;

struct Seq {
  int n = 0, n_past = 0, slot = 0;
};

TwinSteps make_steps(TwinBackends& be, const std::vector<Seq>& seqs) {
  StepBatch b;
  for (const Seq& s : seqs)
    b.add_sequence(std::vector<int32_t>(size_t(s.n), 1), s.n_past,
                   std::vector<int32_t>(size_t((s.n_past + s.n + 15) / 16), 0), false, s.slot);
  return be.step(b);
}

std::vector<float> uniform(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Compares a state pool slot by slot: the touched slots within `tol` (normwise over those slots),
// every other slot bit-identical on both backends (it still holds the shared initial garbage).
// With `gpu_before` (the GPU pool read before the step), an untouched slot must instead equal its
// own earlier GPU contents bit for bit: slots written by earlier steps hold values that differ
// from the CPU's by rounding.
void expect_slots(TwinBackends& be, const Twin& pool, int64_t rows_per_slot, const std::set<int>& touched,
                  double tol, const std::string& what, const std::vector<float>* gpu_before = nullptr) {
  const std::vector<float> gpu = read(*be.gpu, pool.gpu), cpu_now = read(*be.cpu, pool.cpu);
  const std::vector<float>& cpu = gpu_before ? *gpu_before : cpu_now;
  const size_t cols = size_t(pool.cpu.cols), per_slot = size_t(rows_per_slot) * cols;
  std::vector<float> got, want;
  for (size_t slot = 0; slot < gpu.size() / per_slot; ++slot) {
    const auto g0 = gpu.begin() + std::ptrdiff_t(slot * per_slot), c0 = cpu.begin() + std::ptrdiff_t(slot * per_slot);
    if (touched.count(int(slot))) {
      const auto r0 = cpu_now.begin() + std::ptrdiff_t(slot * per_slot);
      got.insert(got.end(), g0, g0 + std::ptrdiff_t(per_slot));
      want.insert(want.end(), r0, r0 + std::ptrdiff_t(per_slot));
    } else {
      EXPECT_TRUE(std::equal(g0, g0 + std::ptrdiff_t(per_slot), c0)) << what << ": untouched slot " << slot
                                                                       << " was written";
    }
  }
  EXPECT_LE(rel_error(got, want), tol) << what << ": touched slots";
}

// ---- conv1d_silu

struct ConvCase {
  TwinBackends& be;
  int C, K, n_slots;
  std::mt19937 rng;
  Twin state;
  TwinWeight w;

  ConvCase(TwinBackends& b, int channels, int kernel, int slots, uint32_t seed)
      : be(b), C(channels), K(kernel), n_slots(slots), rng(seed) {
    // garbage in every slot: fresh sequences must ignore it
    state = be.tensor(int64_t(n_slots) * (K - 1), C, random_values(rng, size_t(n_slots) * size_t(K - 1) * size_t(C)));
    w = be.weight_f32("blk.0.ssm_conv1d.weight", C, K, random_values(rng, size_t(C) * size_t(K), 0.05f, 0.6f));
  }

  void step(const std::vector<Seq>& seqs, const std::string& what) {
    int T = 0;
    std::set<int> touched;
    for (const Seq& s : seqs) T += s.n, touched.insert(s.slot);
    const Twin x = be.tensor(T, C, random_values(rng, size_t(T) * size_t(C)));
    const Twin out = be.poisoned(T, C);
    const TwinSteps st = make_steps(be, seqs);
    ASSERT_OK(be.cpu->conv1d_silu(x.cpu, w.cpu, {state.cpu, {}}, st.cpu, out.cpu));
    ASSERT_OK(be.gpu->conv1d_silu(x.gpu, w.gpu, {state.gpu, {}}, st.gpu, out.gpu));
    EXPECT_LE(be.rel_error(out), kConvTol) << what << ": out";
    // the state is a copy of inputs: exact
    expect_slots(be, state, K - 1, touched, 0.0, what + ": conv state");
  }
};

TEST(CudaConv1dSilu, DecodeAndPrefillWithCarriedState) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  // 70 channels: one partial channel block; Qwen3.5-4B's 2 x 16 x 128 + 32 x 128 = 8192
  for (const int C : {70, 8192}) {
    ConvCase c(be, C, 4, 6, 11u + uint32_t(C));
    const std::string tag = "C " + std::to_string(C);
    c.step({{130, 0, 4}, {3, 0, 1}, {1, 0, 5}, {65, 0, 0}}, tag + " prefill");
    c.step({{1, 130, 4}, {1, 3, 1}, {1, 1, 5}, {1, 65, 0}}, tag + " decode");
    c.step({{1, 131, 4}, {2, 4, 1}, {65, 2, 5}, {1, 66, 0}}, tag + " mixed");  // n = 2 < K - 1: old rows shift
    c.step({{3, 0, 4}, {1, 6, 1}}, tag + " slot 4 reused");
    c.step({{1, 3, 4}, {130, 7, 1}}, tag + " decode + prefill chunk with n_past > 0");
  }
}

TEST(CudaConv1dSilu, LongKernelAndStridedViews) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  // kernel 6 (history 5 > a 3-token step) on x / out column views of wider buffers
  ConvCase c(be, 33, 6, 3, 5u);
  const std::vector<std::vector<Seq>> steps = {{{3, 0, 2}, {7, 0, 0}}, {{1, 3, 2}, {3, 7, 0}}, {{2, 4, 2}, {1, 10, 0}}};
  for (size_t i = 0; i < steps.size(); ++i) {
    int T = 0;
    std::set<int> touched;
    for (const Seq& s : steps[i]) T += s.n, touched.insert(s.slot);
    const Twin xw = be.tensor(T, 40, random_values(c.rng, size_t(T) * 40)), ow = be.poisoned(T, 37);
    const TwinSteps st = make_steps(be, steps[i]);
    ASSERT_OK(be.cpu->conv1d_silu(xw.cpu.slice_cols(5, 33), c.w.cpu, {c.state.cpu, {}}, st.cpu,
                                  ow.cpu.slice_cols(1, 33)));
    ASSERT_OK(be.gpu->conv1d_silu(xw.gpu.slice_cols(5, 33), c.w.gpu, {c.state.gpu, {}}, st.gpu,
                                  ow.gpu.slice_cols(1, 33)));
    EXPECT_LE(rel_error(read(*be.gpu, ow.gpu.slice_cols(1, 33)), read(*be.cpu, ow.cpu.slice_cols(1, 33))), kConvTol)
        << "step " << i;
    expect_slots(be, c.state, 5, touched, 0.0, "step " + std::to_string(i));
  }
}

TEST(CudaConv1dSilu, RejectsWhatTheCpuRejects) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  ConvCase c(be, 16, 4, 2, 3u);
  const Twin x = be.tensor(2, 16, random_values(c.rng, 32)), out = be.poisoned(2, 16), narrow = be.poisoned(2, 15);
  const TwinWeight w3 = be.weight_f32("w", 15, 4, random_values(c.rng, 60));
  const Twin bad_state = be.poisoned(7, 16);  // not a multiple of K - 1 = 3 rows
  const TwinSteps ok = make_steps(be, {{2, 0, 1}}), slot2 = make_steps(be, {{2, 0, 2}}),
                  shared = make_steps(be, {{1, 0, 0}, {1, 0, 0}}), one = make_steps(be, {{1, 0, 0}});
  auto both = [&](auto&& call, const char* what) {
    EXPECT_EQ(call(*be.cpu, true).code(), StatusCode::invalid_argument) << "cpu: " << what;
    EXPECT_EQ(call(*be.gpu, false).code(), StatusCode::invalid_argument) << "gpu: " << what;
  };
  auto pick = [](bool cpu, const Twin& t) { return cpu ? t.cpu : t.gpu; };
  auto pickw = [](bool cpu, const TwinWeight& t) { return cpu ? t.cpu : t.gpu; };
  auto picks = [](bool cpu, const TwinSteps& s) -> const DeviceStep& { return cpu ? s.cpu : s.gpu; };
  ASSERT_OK(be.gpu->conv1d_silu(x.gpu, c.w.gpu, {c.state.gpu, {}}, ok.gpu, out.gpu));
  both([&](Backend& b, bool cpu) { return b.conv1d_silu(pick(cpu, x), pickw(cpu, c.w), {pick(cpu, c.state), {}},
                                                         picks(cpu, ok), pick(cpu, x)); }, "x aliases out");
  both([&](Backend& b, bool cpu) { return b.conv1d_silu(pick(cpu, x), pickw(cpu, w3), {pick(cpu, c.state), {}},
                                                         picks(cpu, ok), pick(cpu, out)); }, "weight rows");
  both([&](Backend& b, bool cpu) { return b.conv1d_silu(pick(cpu, x), pickw(cpu, c.w), {pick(cpu, c.state), {}},
                                                         picks(cpu, ok), pick(cpu, narrow)); }, "out shape");
  both([&](Backend& b, bool cpu) { return b.conv1d_silu(pick(cpu, x), pickw(cpu, c.w), {pick(cpu, bad_state), {}},
                                                         picks(cpu, ok), pick(cpu, out)); }, "state rows");
  both([&](Backend& b, bool cpu) { return b.conv1d_silu(pick(cpu, x), pickw(cpu, c.w), {pick(cpu, c.state), {}},
                                                         picks(cpu, slot2), pick(cpu, out)); }, "slot 2 of 2");
  both([&](Backend& b, bool cpu) { return b.conv1d_silu(pick(cpu, x), pickw(cpu, c.w), {pick(cpu, c.state), {}},
                                                         picks(cpu, shared), pick(cpu, out)); }, "shared slot");
  both([&](Backend& b, bool cpu) { return b.conv1d_silu(pick(cpu, x), pickw(cpu, c.w), {pick(cpu, c.state), {}},
                                                         picks(cpu, one), pick(cpu, out)); }, "x rows != n_tokens");
  EXPECT_TRUE(be.gpu->synchronize().is_ok());
}

// ---- gated_deltanet

struct DeltaNetCase {
  TwinBackends& be;
  int nk, nv, dk, dv, n_slots;
  std::mt19937 rng;
  Twin pool;       // the state pool; `ssm` is it, or a column view of it
  Tensor ssm_cpu, ssm_gpu;
  float g_lo = -1.5f, g_hi = -0.01f;
  int chunk = 64;

  // state_pad > 0: the pool is state_pad columns wider than d_v and the state a column view of
  // it, so its rows are not 16-byte aligned (the kernel's scalar state path).
  DeltaNetCase(TwinBackends& b, int nk_, int nv_, int dk_, int dv_, uint32_t seed, int slots = 6, int state_pad = 0)
      : be(b), nk(nk_), nv(nv_), dk(dk_), dv(dv_), n_slots(slots), rng(seed) {
    const int64_t rows = int64_t(n_slots) * nv * dk, cols = dv + state_pad;
    pool = be.tensor(rows, cols, random_values(rng, size_t(rows * cols), 0.5f, 3.f));  // garbage
    ssm_cpu = pool.cpu.slice_cols(0, dv);
    ssm_gpu = pool.gpu.slice_cols(0, dv);
  }
  DeltaNetParams params(DeltaNetMode mode) const {
    return {nk, nv, dk, dv, float(1.0 / std::sqrt(double(dk))), chunk, mode};
  }

  // One step over `seqs` on both backends with fresh inputs; compares outputs and states.
  void step(const std::vector<Seq>& seqs, DeltaNetMode mode, const std::string& what) {
    int T = 0;
    std::set<int> touched;
    for (const Seq& s : seqs) T += s.n, touched.insert(s.slot);
    // q, k, v as column views of one [T, 2 nk dk + nv dv] buffer (the conv output in qwen35.cpp),
    // q and k L2-normalised per head as the model's l2_norm leaves them.
    const int qk = nk * dk, vw = nv * dv, W = 2 * qk + vw;
    std::vector<float> wide = random_values(rng, size_t(T) * size_t(W));
    for (size_t h = 0; h < size_t(T) * size_t(2 * nk); ++h) {
      float* x = &wide[(h / size_t(2 * nk)) * size_t(W) + (h % size_t(2 * nk)) * size_t(dk)];
      double ss = 0;
      for (int i = 0; i < dk; ++i) ss += double(x[i]) * x[i];
      for (int i = 0; i < dk; ++i) x[i] = float(x[i] / std::sqrt(ss));
    }
    const Twin qkv = be.tensor(T, W, wide);
    const Twin g = be.tensor(T, nv, uniform(rng, size_t(T) * size_t(nv), g_lo, g_hi));
    const Twin beta = be.tensor(T, nv, uniform(rng, size_t(T) * size_t(nv), 0.05f, 0.95f));
    const Twin out = be.poisoned(T, vw);
    const TwinSteps st = make_steps(be, seqs);
    const std::vector<float> gpu_before = read(*be.gpu, pool.gpu);
    ASSERT_OK(be.cpu->gated_deltanet(qkv.cpu.slice_cols(0, qk), qkv.cpu.slice_cols(qk, qk),
                                     qkv.cpu.slice_cols(2 * qk, vw), g.cpu, beta.cpu, {{}, ssm_cpu}, params(mode),
                                     st.cpu, out.cpu));
    ASSERT_OK(be.gpu->gated_deltanet(qkv.gpu.slice_cols(0, qk), qkv.gpu.slice_cols(qk, qk),
                                     qkv.gpu.slice_cols(2 * qk, vw), g.gpu, beta.gpu, {{}, ssm_gpu}, params(mode),
                                     st.gpu, out.gpu));
    EXPECT_LE(be.rel_error(out), kDeltaNetTol) << what << ": out";
    // expect_slots compares whole pool rows, pad columns included (never written: equal garbage)
    expect_slots(be, pool, int64_t(nv) * dk, touched, kDeltaNetTol, what + ": state", &gpu_before);
  }
};

const char* mode_name(DeltaNetMode m) {
  return m == DeltaNetMode::automatic ? "automatic" : m == DeltaNetMode::chunked ? "chunked" : "recurrent";
}
constexpr DeltaNetMode kModes[] = {DeltaNetMode::automatic, DeltaNetMode::chunked, DeltaNetMode::recurrent};

// A schedule of steps through one case; each step names its sequences' n, n_past and slot.
void run(DeltaNetCase& c, DeltaNetMode mode, const std::vector<std::vector<Seq>>& steps, const std::string& tag) {
  for (size_t i = 0; i < steps.size(); ++i)
    c.step(steps[i], mode, tag + " " + mode_name(mode) + " step " + std::to_string(i));
}

// Prefill (odd counts, n_past == 0), decode of every sequence from its carried state, a mixed
// step (decode beside prefill chunks with n_past > 0), then slot reuse with a zero start.
const std::vector<std::vector<Seq>> kSchedule = {
    {{130, 0, 4}, {3, 0, 1}, {1, 0, 5}, {65, 0, 0}},
    {{1, 130, 4}, {1, 3, 1}, {1, 1, 5}, {1, 65, 0}},
    {{1, 131, 4}, {1, 4, 1}, {1, 2, 5}, {1, 66, 0}},
    {{65, 132, 4}, {1, 5, 1}, {130, 3, 5}, {3, 67, 0}},
    {{3, 0, 1}, {1, 197, 4}, {1, 0, 2}},  // slot 1 reused by a new sequence; slot 2's first use
    {{1, 3, 1}, {1, 198, 4}, {1, 1, 2}, {1, 133, 5}},
};

TEST(CudaGatedDeltaNet, SmallHeadsEveryMode) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  for (const int d : {16, 32})
    for (const DeltaNetMode mode : kModes) {
      DeltaNetCase c(be, 2, 4, d, d, 100u + uint32_t(d));
      run(c, mode, kSchedule, "d " + std::to_string(d));
    }
}

TEST(CudaGatedDeltaNet, Qwen35RealShapeEveryMode) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  for (const DeltaNetMode mode : kModes) {
    DeltaNetCase c(be, 16, 32, 128, 128, 7u);
    run(c, mode, kSchedule, "16/32 x 128");
  }
}

TEST(CudaGatedDeltaNet, Qwen35DecodeBatchAfterPrefill) {
  // The decode path as the engine drives it: one prefill, then several decode steps of 5
  // sequences in shuffled slots, the state compared after every step.
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  DeltaNetCase c(be, 16, 32, 128, 128, 21u, 8);
  const std::vector<int> slots = {6, 2, 7, 0, 3}, prompt = {9, 1, 33, 3, 17};
  std::vector<Seq> prefill;
  for (size_t s = 0; s < slots.size(); ++s) prefill.push_back({prompt[s], 0, slots[s]});
  c.step(prefill, DeltaNetMode::automatic, "prefill");
  for (int i = 0; i < 4; ++i) {
    std::vector<Seq> decode;
    for (size_t s = 0; s < slots.size(); ++s) decode.push_back({1, prompt[s] + i, slots[s]});
    if (i == 2) std::reverse(decode.begin(), decode.end());  // same slots, other sequence order
    c.step(decode, DeltaNetMode::automatic, "decode " + std::to_string(i));
  }
}

TEST(CudaGatedDeltaNet, LongMemoryDecay) {
  // g near 0: the state remembers every token of a 130 + 130 (+ 512) token prefill, so f32
  // rounding is carried furthest here (the bound's justification above).
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  for (const DeltaNetMode mode : {DeltaNetMode::automatic, DeltaNetMode::chunked}) {
    DeltaNetCase c(be, 16, 32, 128, 128, 33u, 2);
    c.g_lo = -0.02f, c.g_hi = -0.0001f;
    run(c, mode, {{{130, 0, 1}}, {{130, 130, 1}}, {{1, 260, 1}}, {{512, 261, 1}}, {{1, 773, 1}}}, "long memory");
  }
}

TEST(CudaGatedDeltaNet, ChunkedTokenCountsAndNPast) {
  // The chunked kernels at Qwen3.5-4B's shape: counts around the chunk length (1, 63, 64, 65,
  // 130, 512), sequences of different counts and n_past in one step, shuffled slots, slots 1 and 4
  // never used (their garbage must survive). automatic sends the counts over 32 to the chunked
  // kernels and the others to the recurrent one in the same step.
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  const std::vector<std::vector<Seq>> steps = {
      {{512, 0, 3}},
      {{1, 0, 6}, {63, 0, 0}, {64, 0, 7}, {65, 0, 2}, {130, 0, 5}},
      {{130, 63, 0}, {1, 512, 3}, {65, 64, 7}, {64, 65, 2}, {63, 130, 5}, {1, 1, 6}},
      {{512, 513, 3}, {1, 193, 0}, {130, 129, 7}},
  };
  for (const DeltaNetMode mode : {DeltaNetMode::chunked, DeltaNetMode::automatic}) {
    DeltaNetCase c(be, 16, 32, 128, 128, 55u, 8);
    run(c, mode, steps, "16/32 x 128");
  }
}

// DeltaNetParams::chunk other than 64: the chunked kernels take any length up to 64 (a chunk of
// 1 is the recurrence itself; 63 leaves every chunk one row short of the kernels' tiles). One
// test per length, so compute-sanitizer can take them one at a time (chunk 1 alone is ~200
// chunk steps per sequence, slow under racecheck).
class CudaGatedDeltaNetChunk : public ::testing::TestWithParam<int> {};

TEST_P(CudaGatedDeltaNetChunk, ChunkLength) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  const int chunk = GetParam();
  DeltaNetCase c(be, 16, 32, 128, 128, 60u + uint32_t(chunk), 4);
  c.chunk = chunk;
  run(c, DeltaNetMode::chunked, {{{130, 0, 1}, {17, 0, 3}, {1, 0, 0}}, {{70, 130, 1}, {1, 17, 3}, {64, 1, 0}}},
      "chunk " + std::to_string(chunk));
}

INSTANTIATE_TEST_SUITE_P(Lengths, CudaGatedDeltaNetChunk, ::testing::Values(1, 16, 63),
                         [](const ::testing::TestParamInfo<int>& info) { return "chunk" + std::to_string(info.param); });

TEST(CudaGatedDeltaNet, ChunkedLimitsAreUnsupportedNotWrong) {
  // Beyond the chunked kernels (chunk > 64, d_k or d_v > 128) `chunked` is unsupported (nothing
  // runs) and `automatic` takes the recurrent kernel, still within the tolerance.
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  struct Limit {
    int nk, nv, dk, dv, chunk;
  };
  for (const Limit& l : {Limit{16, 32, 128, 128, 65}, Limit{1, 2, 160, 36, 64}, Limit{1, 2, 64, 144, 64}}) {
    const std::string tag = std::to_string(l.dk) + "/" + std::to_string(l.dv) + " chunk " + std::to_string(l.chunk);
    DeltaNetCase c(be, l.nk, l.nv, l.dk, l.dv, 70u, 2);
    c.chunk = l.chunk;
    const std::vector<float> pool_before = read(*be.gpu, c.pool.gpu);
    const int T = 130, qk = l.nk * l.dk, vw = l.nv * l.dv;
    const Twin q = be.tensor(T, qk, random_values(c.rng, size_t(T) * qk)),
               k = be.tensor(T, qk, random_values(c.rng, size_t(T) * qk)),
               v = be.tensor(T, vw, random_values(c.rng, size_t(T) * vw)),
               g = be.tensor(T, l.nv, uniform(c.rng, size_t(T) * l.nv, -1.f, -0.1f)),
               beta = be.tensor(T, l.nv, uniform(c.rng, size_t(T) * l.nv, 0.1f, 0.9f)), out = be.poisoned(T, vw);
    const TwinSteps st = make_steps(be, {{T, 0, 1}});
    EXPECT_EQ(be.gpu->gated_deltanet(q.gpu, k.gpu, v.gpu, g.gpu, beta.gpu, {{}, c.ssm_gpu},
                                     c.params(DeltaNetMode::chunked), st.gpu, out.gpu).code(),
              StatusCode::unsupported)
        << tag;
    EXPECT_TRUE(be.gpu->synchronize().is_ok());
    EXPECT_TRUE(read(*be.gpu, c.pool.gpu) == pool_before) << tag << ": the state was written";
    run(c, DeltaNetMode::automatic, {{{130, 0, 1}}, {{65, 130, 1}, {1, 0, 0}}}, tag);
  }
}

TEST(CudaGatedDeltaNet, OddShapesBothStatePaths) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  const std::vector<std::vector<Seq>> steps = {{{3, 0, 2}, {65, 0, 0}}, {{1, 3, 2}, {1, 65, 0}},
                                               {{17, 4, 2}, {1, 66, 0}, {1, 0, 1}}};
  struct Shape {
    int nk, nv, dk, dv, pad;
  };
  const Shape shapes[] = {
      {1, 3, 48, 40, 0},   // 2 rows a thread, last rows unused; 2 column tiles, the last partial
      {2, 2, 8, 10, 0},    // n_v == n_k; d_v % 4 != 0: scalar state access (and v copies, chunked)
      {2, 4, 16, 16, 1},   // state a column view, rows 68 bytes apart: scalar state access
      {1, 2, 160, 36, 0},  // d_k > 128: 8 rows a thread, 8 tokens staged at a time; not chunked
      {3, 6, 33, 64, 4},   // d_k = 33: one row past a warp's 32 (scalar q/k copies, chunked);
                           // padded but 16-byte aligned rows
  };
  for (const Shape& s : shapes)
    for (const DeltaNetMode mode : kModes) {
      if (mode == DeltaNetMode::chunked && s.dk > 128) continue;  // ChunkedLimitsAreUnsupportedNotWrong
      DeltaNetCase c(be, s.nk, s.nv, s.dk, s.dv, 40u + uint32_t(s.dk), 3, s.pad);
      run(c, mode, steps,
          std::to_string(s.nk) + "/" + std::to_string(s.nv) + " x " + std::to_string(s.dk) + "/" +
              std::to_string(s.dv) + " pad " + std::to_string(s.pad));
    }
}

TEST(CudaGatedDeltaNet, RejectsWhatTheCpuRejects) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  DeltaNetCase c(be, 2, 4, 16, 8, 9u, 5);
  std::mt19937& rng = c.rng;
  const Twin q = be.tensor(3, 32, random_values(rng, 96)), k = be.tensor(3, 32, random_values(rng, 96)),
             v = be.tensor(3, 32, random_values(rng, 96)), g = be.tensor(3, 4, uniform(rng, 12, -1.f, -0.1f)),
             beta = be.tensor(3, 4, uniform(rng, 12, 0.1f, 0.9f)), out = be.poisoned(3, 32);
  const TwinSteps ok = make_steps(be, {{3, 0, 1}}), slot5 = make_steps(be, {{3, 0, 5}}),
                  shared = make_steps(be, {{1, 0, 2}, {2, 0, 2}});
  const DeltaNetParams p = c.params(DeltaNetMode::chunked);
  auto run_on = [&](bool cpu, const DeltaNetParams& pp, const TwinSteps& st, const Tensor* g_override) {
    Backend& b = cpu ? *be.cpu : *be.gpu;
    const Tensor gg = g_override ? *g_override : (cpu ? g.cpu : g.gpu);
    return b.gated_deltanet(cpu ? q.cpu : q.gpu, cpu ? k.cpu : k.gpu, cpu ? v.cpu : v.gpu, gg,
                            cpu ? beta.cpu : beta.gpu, {{}, cpu ? c.ssm_cpu : c.ssm_gpu}, pp, cpu ? st.cpu : st.gpu,
                            cpu ? out.cpu : out.gpu);
  };
  auto both = [&](const DeltaNetParams& pp, const TwinSteps& st, bool narrow_g, const char* what) {
    const Tensor gc = g.cpu.slice_cols(0, 3), gg = g.gpu.slice_cols(0, 3);
    EXPECT_EQ(run_on(true, pp, st, narrow_g ? &gc : nullptr).code(), StatusCode::invalid_argument) << "cpu: " << what;
    EXPECT_EQ(run_on(false, pp, st, narrow_g ? &gg : nullptr).code(), StatusCode::invalid_argument) << "gpu: " << what;
  };
  ASSERT_OK(run_on(true, p, ok, nullptr));
  ASSERT_OK(run_on(false, p, ok, nullptr));
  EXPECT_LE(be.rel_error(out), kDeltaNetTol);
  both(p, slot5, false, "slot 5 of 5");
  both(p, shared, false, "two sequences in one slot");
  both(p, ok, true, "g [3 x 3] for 4 value heads");
  DeltaNetParams bad = p;
  bad.n_v_heads = 3;  // not a multiple of n_k_heads
  both(bad, ok, false, "n_v_heads 3, n_k_heads 2");
  bad = p;
  bad.q_scale = 0.f;
  both(bad, ok, false, "q_scale 0");
  bad = p;
  bad.q_scale = NAN;
  both(bad, ok, false, "q_scale NaN");
  bad = p;
  bad.chunk = 0;
  both(bad, ok, false, "chunk 0");
  bad = p;
  bad.d_v = 16;  // q/k/v/out/state widths no longer match
  both(bad, ok, false, "d_v 16 for 8-wide state");

  // CUDA-only: a misaligned F32 view is refused, not faulted on.
  Tensor skew = q.gpu;
  skew.data = static_cast<char*>(skew.data) + 2;  // rejected before any kernel reads it
  EXPECT_EQ(be.gpu->gated_deltanet(skew, skew, v.gpu, g.gpu, beta.gpu, {{}, c.ssm_gpu}, p, ok.gpu, out.gpu).code(),
            StatusCode::invalid_argument);
  EXPECT_TRUE(be.gpu->synchronize().is_ok());
}

TEST(CudaGatedDeltaNet, WideKeyHeadsAreUnsupportedNotWrong) {
  // The kernel keeps a state column's d_k rows in registers (d_k <= 256); wider keys are a CUDA
  // limit, reported as unsupported (the CPU runs them).
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  DeltaNetCase c(be, 1, 1, 288, 4, 3u, 1);
  std::mt19937& rng = c.rng;
  const Twin q = be.tensor(1, 288, random_values(rng, 288)), v = be.tensor(1, 4, random_values(rng, 4)),
             g = be.tensor(1, 1, {-0.5f}), beta = be.tensor(1, 1, {0.5f}), out = be.poisoned(1, 4);
  const TwinSteps st = make_steps(be, {{1, 0, 0}});
  ASSERT_OK(be.cpu->gated_deltanet(q.cpu, q.cpu, v.cpu, g.cpu, beta.cpu, {{}, c.ssm_cpu},
                                   c.params(DeltaNetMode::recurrent), st.cpu, out.cpu));
  EXPECT_EQ(be.gpu->gated_deltanet(q.gpu, q.gpu, v.gpu, g.gpu, beta.gpu, {{}, c.ssm_gpu},
                                   c.params(DeltaNetMode::recurrent), st.gpu, out.gpu).code(),
            StatusCode::unsupported);
}

}  // namespace
}  // namespace anvil::test_cuda
