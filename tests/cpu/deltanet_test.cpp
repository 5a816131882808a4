// Gated DeltaNet ops of the CPU backend (conv1d_silu, l2_norm, deltanet_gates, gated_deltanet,
// glu's sigmoid gate) against naive references written here: the delta rule token by token in
// double, the causal conv as a plain sum over a zero-padded history. Both execution forms of
// gated_deltanet (chunked WY/UT and recurrent) must match the naive rule and each other on
// several sequences at once with different n_past, slots in shuffled order, and state carried
// over several steps.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/step_batch.h"
#include "cpu/backend.h"
#include "tests/cpu/test_util.h"

namespace anvil::test_cpu {
namespace {

// ---- naive references (double)

// The gated delta rule for one sequence, token by token. S[h] is value head h's [dk][dv] state
// (row-major), updated in place. Value head h reads q/k head h % nk.
std::vector<double> naive_deltanet(const std::vector<float>& q, const std::vector<float>& k,
                                   const std::vector<float>& v, const std::vector<float>& g,
                                   const std::vector<float>& beta, int n, int nk, int nv, int dk, int dv,
                                   double q_scale, std::vector<std::vector<double>>& S) {
  std::vector<double> out(size_t(n * nv * dv));
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < nv; ++h) {
      const int kh = h % nk;
      auto& s = S[size_t(h)];
      auto at = [&](int a, int b) -> double& { return s[size_t(a * dv + b)]; };
      for (double& x : s) x *= std::exp(double(g[size_t(t * nv + h)]));
      for (int b = 0; b < dv; ++b) {
        double pred = 0;
        for (int a = 0; a < dk; ++a) pred += double(k[size_t(t * nk * dk + kh * dk + a)]) * at(a, b);
        const double delta = double(beta[size_t(t * nv + h)]) * (double(v[size_t(t * nv * dv + h * dv + b)]) - pred);
        for (int a = 0; a < dk; ++a) at(a, b) += double(k[size_t(t * nk * dk + kh * dk + a)]) * delta;
      }
      for (int b = 0; b < dv; ++b) {
        double o = 0;
        for (int a = 0; a < dk; ++a) o += q_scale * double(q[size_t(t * nk * dk + kh * dk + a)]) * at(a, b);
        out[size_t(t * nv * dv + h * dv + b)] = o;
      }
    }
  return out;
}

// Causal depthwise conv + SiLU over [history (K-1 rows); x (n rows)], channels C; returns
// out [n, C] and replaces history by the last K-1 rows.
std::vector<double> naive_conv(const std::vector<float>& x, int n, int C, const std::vector<float>& w, int K,
                               std::vector<double>& history) {
  std::vector<double> h = history;
  for (int i = 0; i < n * C; ++i) h.push_back(double(x[size_t(i)]));
  std::vector<double> out(size_t(n * C));
  for (int t = 0; t < n; ++t)
    for (int c = 0; c < C; ++c) {
      double a = 0;
      for (int j = 0; j < K; ++j) a += double(w[size_t(c * K + j)]) * h[size_t((t + j) * C + c)];
      out[size_t(t * C + c)] = a / (1 + std::exp(-a));
    }
  history.assign(h.end() - (K - 1) * C, h.end());
  return out;
}

// ---- harness

struct Seq {
  int n = 0, n_past = 0, slot = 0;
};

// A step over these sequences (dummy token ids, page 0 for every block: only the state ops read it).
DeviceStep make_step(Backend& be, const std::vector<Seq>& seqs) {
  StepBatch b;
  for (const Seq& s : seqs)
    b.add_sequence(std::vector<int32_t>(size_t(s.n), 1), s.n_past,
                   std::vector<int32_t>(size_t((s.n_past + s.n + 15) / 16), 0), false, s.slot);
  return be.prepare_step(b).value();
}

std::vector<float> l2_normalised(std::vector<float> x, int head) {
  for (size_t i = 0; i < x.size(); i += size_t(head)) {
    double ss = 0;
    for (int j = 0; j < head; ++j) ss += double(x[i + size_t(j)]) * x[i + size_t(j)];
    for (int j = 0; j < head; ++j) x[i + size_t(j)] = float(x[i + size_t(j)] / std::sqrt(ss));
  }
  return x;
}

std::vector<float> uniform(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double max_rel(const std::vector<double>& got, const std::vector<double>& ref) {
  double e = 0, m = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    e = std::max(e, std::fabs(got[i] - ref[i]));
    m = std::max(m, std::fabs(ref[i]));
  }
  return m > 0 ? e / m : e;
}

// One DeltaNet layer's shapes and state pool, and a per-slot naive mirror of the state.
struct DeltaNetFixture {
  int nk = 2, nv = 4, dk = 16, dv = 8, n_slots = 5;
  std::unique_ptr<Backend> be = cpu::make_backend(2);
  Buf ssm, conv;
  std::vector<std::vector<std::vector<double>>> ref_state;  // [slot][head][dk*dv]
  std::mt19937 rng{1234};

  DeltaNetFixture(int nk_, int nv_, int dk_, int dv_) : nk(nk_), nv(nv_), dk(dk_), dv(dv_) {
    ssm = alloc_f32(*be, int64_t(n_slots) * nv * dk, dv);
    // Garbage in every slot: a sequence with n_past == 0 must not read it.
    fill(ssm.t, random_values(rng, size_t(ssm.t.n_elements()), 0.5f, 3.f));
    ref_state.assign(size_t(n_slots), std::vector<std::vector<double>>(size_t(nv), std::vector<double>(size_t(dk * dv))));
  }
  RecurrentLayer layer() const { return {conv.t, ssm.t}; }
  DeltaNetParams params(DeltaNetMode mode, int chunk = 64) const {
    return {nk, nv, dk, dv, float(1.0 / std::sqrt(double(dk))), chunk, mode};
  }

  // Runs one step over seqs with fresh random inputs; returns the max relative error of the
  // output against the naive rule (whose per-slot state it carries along).
  double step(const std::vector<Seq>& seqs, DeltaNetMode mode, int chunk = 64) {
    int T = 0;
    for (const Seq& s : seqs) T += s.n;
    // q, k, v as column views of one wide [T, 2 nk dk + nv dv] buffer, as the model passes them.
    const int qk = nk * dk, vw = nv * dv;
    Buf qkv = alloc_f32(*be, T, 2 * qk + vw), g = alloc_f32(*be, T, nv), beta = alloc_f32(*be, T, nv),
        out = alloc_f32(*be, T, vw);
    const auto q = l2_normalised(random_values(rng, size_t(T * qk)), dk);
    const auto k = l2_normalised(random_values(rng, size_t(T * qk)), dk);
    const auto v = random_values(rng, size_t(T * vw));
    const auto gv = uniform(rng, size_t(T * nv), -1.5f, -0.01f);
    const auto bv = uniform(rng, size_t(T * nv), 0.05f, 0.95f);
    const Tensor tq = qkv.t.slice_cols(0, qk), tk = qkv.t.slice_cols(qk, qk), tv = qkv.t.slice_cols(2 * qk, vw);
    fill(tq, q), fill(tk, k), fill(tv, v), fill(g.t, gv), fill(beta.t, bv);

    const DeviceStep st = make_step(*be, seqs);
    const Status s = be->gated_deltanet(tq, tk, tv, g.t, beta.t, layer(), params(mode, chunk), st, out.t);
    EXPECT_TRUE(s.is_ok()) << s.to_string();

    std::vector<double> got, want;
    int first = 0;
    for (const Seq& sq : seqs) {
      auto& S = ref_state[size_t(sq.slot)];
      if (sq.n_past == 0)
        for (auto& h : S) std::fill(h.begin(), h.end(), 0.0);
      auto slice = [&](const std::vector<float>& x, int w) {
        return std::vector<float>(x.begin() + first * w, x.begin() + (first + sq.n) * w);
      };
      const auto o = naive_deltanet(slice(q, qk), slice(k, qk), slice(v, vw), slice(gv, nv), slice(bv, nv), sq.n, nk,
                                    nv, dk, dv, 1.0 / std::sqrt(double(dk)), S);
      want.insert(want.end(), o.begin(), o.end());
      for (int t = first; t < first + sq.n; ++t)
        for (int c = 0; c < vw; ++c) got.push_back(out.t.row<const float>(t)[c]);
      first += sq.n;
    }
    return max_rel(got, want);
  }

  // Max relative error of the slots' stored state against the naive mirror.
  double state_error(const std::vector<int>& slots) const {
    std::vector<double> got, want;
    for (int slot : slots)
      for (int h = 0; h < nv; ++h)
        for (int a = 0; a < dk; ++a)
          for (int b = 0; b < dv; ++b) {
            got.push_back(ssm.t.row<const float>((int64_t(slot) * nv + h) * dk + a)[b]);
            want.push_back(ref_state[size_t(slot)][size_t(h)][size_t(a * dv + b)]);
          }
    return max_rel(got, want);
  }
};

// Each sequence's first step has n_past == 0; later steps continue its slot.
void run_schedule(DeltaNetFixture& f, DeltaNetMode mode, int chunk, const std::vector<std::vector<int>>& steps,
                  const std::vector<int>& slots) {
  std::vector<int> past(slots.size(), 0);
  for (size_t i = 0; i < steps.size(); ++i) {
    std::vector<Seq> seqs;
    for (size_t s = 0; s < slots.size(); ++s)
      if (steps[i][s] > 0) seqs.push_back({steps[i][s], past[s], slots[s]});
    EXPECT_LE(f.step(seqs, mode, chunk), 1e-5) << "step " << i;
    for (size_t s = 0; s < slots.size(); ++s) past[s] += steps[i][s];
    EXPECT_LE(f.state_error(slots), 1e-5) << "state after step " << i;
  }
}

TEST(GatedDeltaNet, RecurrentMatchesNaiveRule) {
  DeltaNetFixture f(2, 4, 16, 8);
  // three sequences in slots 3, 0, 4: a prefill, a long one, a decode after the first step
  run_schedule(f, DeltaNetMode::recurrent, 64, {{7, 30, 1}, {1, 1, 1}, {12, 1, 5}}, {3, 0, 4});
}

TEST(GatedDeltaNet, ChunkedMatchesNaiveRuleAcrossChunkBoundaries) {
  DeltaNetFixture f(2, 4, 16, 8);
  // 150 tokens = chunks of 64, 64, 22; a second sequence shorter than one chunk beside it
  run_schedule(f, DeltaNetMode::chunked, 64, {{150, 9}, {70, 1}, {1, 65}}, {1, 2});
}

TEST(GatedDeltaNet, ChunkedSmallChunksEqualHeads) {
  DeltaNetFixture f(3, 3, 8, 12);  // n_v == n_k, d_v > d_k
  run_schedule(f, DeltaNetMode::chunked, 5, {{23, 16, 4}, {11, 5, 1}}, {4, 1, 2});
}

TEST(GatedDeltaNet, ChunkedEqualsRecurrent) {
  // The same inputs through both forms (same rng seed), several sequences and steps.
  DeltaNetFixture a(2, 4, 32, 32), b(2, 4, 32, 32);
  const std::vector<std::vector<int>> steps = {{100, 3, 64}, {1, 40, 1}, {66, 1, 129}};
  const std::vector<int> slots = {2, 4, 0};
  std::vector<int> past(3, 0);
  for (size_t i = 0; i < steps.size(); ++i) {
    std::vector<Seq> seqs;
    for (size_t s = 0; s < 3; ++s) seqs.push_back({steps[i][s], past[s], slots[s]});
    a.step(seqs, DeltaNetMode::chunked);
    b.step(seqs, DeltaNetMode::recurrent);
    for (size_t s = 0; s < 3; ++s) past[s] += steps[i][s];
  }
  // Final states and one more decode output of each compared directly.
  std::vector<double> sa, sb;
  for (int64_t r = 0; r < a.ssm.t.rows; ++r)
    for (int64_t c = 0; c < a.ssm.t.cols; ++c) {
      sa.push_back(a.ssm.t.row<const float>(r)[c]);
      sb.push_back(b.ssm.t.row<const float>(r)[c]);
    }
  // slot 1 and 3 still hold the fixture's (identical) garbage; the others the carried states
  EXPECT_LE(max_rel(sa, sb), 1e-5);
  EXPECT_LE(a.state_error(slots), 1e-5);
}

TEST(GatedDeltaNet, AutomaticModeMatchesNaive) {
  DeltaNetFixture f(1, 2, 16, 16);
  run_schedule(f, DeltaNetMode::automatic, 64, {{80, 1}, {1, 1}, {3, 70}}, {0, 1});
}

TEST(GatedDeltaNet, RejectsBadShapesAndSlots) {
  DeltaNetFixture f(2, 4, 16, 8);
  Buf q = alloc_f32(*f.be, 3, 32), k = alloc_f32(*f.be, 3, 32), v = alloc_f32(*f.be, 3, 32), g = alloc_f32(*f.be, 3, 4),
      beta = alloc_f32(*f.be, 3, 4), out = alloc_f32(*f.be, 3, 32);
  const auto p = f.params(DeltaNetMode::chunked);
  const DeviceStep ok = make_step(*f.be, {{3, 0, 1}});
  fill(q.t, random_values(f.rng, 96)), fill(k.t, random_values(f.rng, 96)), fill(v.t, random_values(f.rng, 96));
  fill(g.t, uniform(f.rng, 12, -1, -0.1f)), fill(beta.t, uniform(f.rng, 12, 0.1f, 0.9f));
  EXPECT_TRUE(f.be->gated_deltanet(q.t, k.t, v.t, g.t, beta.t, f.layer(), p, ok, out.t).is_ok());
  EXPECT_EQ(f.be->gated_deltanet(q.t, k.t, v.t, g.t, beta.t, f.layer(), p, make_step(*f.be, {{3, 0, 5}}), out.t).code(),
            StatusCode::invalid_argument);  // slot 5 of 5
  EXPECT_EQ(f.be->gated_deltanet(q.t, k.t, v.t, g.t, beta.t, f.layer(), p,
                                 make_step(*f.be, {{1, 0, 2}, {2, 0, 2}}), out.t).code(),
            StatusCode::invalid_argument);  // two sequences in one slot
  DeltaNetParams bad = p;
  bad.n_v_heads = 3;  // not a multiple of n_k_heads
  EXPECT_EQ(f.be->gated_deltanet(q.t, k.t, v.t, g.t, beta.t, f.layer(), bad, ok, out.t).code(),
            StatusCode::invalid_argument);
  bad = p;
  bad.q_scale = 0.f;
  EXPECT_EQ(f.be->gated_deltanet(q.t, k.t, v.t, g.t, beta.t, f.layer(), bad, ok, out.t).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(f.be->gated_deltanet(q.t, k.t, v.t, g.t.slice_cols(0, 3), beta.t, f.layer(), p, ok, out.t).code(),
            StatusCode::invalid_argument);
}

TEST(Conv1dSilu, MatchesNaiveWithCarriedState) {
  auto be = cpu::make_backend(2);
  std::mt19937 rng(77);
  const int C = 70, K = 4, n_slots = 3;  // 70 channels: a partial channel block
  Buf conv = alloc_f32(*be, n_slots * (K - 1), C);
  fill(conv.t, random_values(rng, size_t(conv.t.n_elements())));  // garbage: fresh sequences ignore it
  const auto wv = random_values(rng, size_t(C * K), 0.05f, 0.6f);
  Buf wbuf = alloc_f32(*be, C, K);
  fill(wbuf.t, wv);
  const Weight w{"blk.0.ssm_conv1d.weight", wbuf.t, 0};
  std::vector<std::vector<double>> hist(n_slots, std::vector<double>(size_t((K - 1) * C), 0.0));
  const std::vector<int> slots = {2, 0};
  const std::vector<std::vector<int>> steps = {{5, 1}, {1, 2}, {2, 9}, {1, 1}};
  std::vector<int> past = {0, 0};
  for (size_t i = 0; i < steps.size(); ++i) {
    std::vector<Seq> seqs;
    int T = 0;
    for (size_t s = 0; s < 2; ++s) seqs.push_back({steps[i][s], past[s], slots[s]}), T += steps[i][s];
    Buf x = alloc_f32(*be, T, C), out = alloc_f32(*be, T, C);
    const auto xv = random_values(rng, size_t(T * C));
    fill(x.t, xv);
    ASSERT_TRUE(be->conv1d_silu(x.t, w, {conv.t, {}}, make_step(*be, seqs), out.t).is_ok());
    std::vector<double> got, want;
    int first = 0;
    for (const Seq& s : seqs) {
      const auto o = naive_conv(std::vector<float>(xv.begin() + first * C, xv.begin() + (first + s.n) * C), s.n, C, wv,
                                K, hist[size_t(s.slot)]);
      want.insert(want.end(), o.begin(), o.end());
      first += s.n;
    }
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c) got.push_back(out.t.row<const float>(t)[c]);
    EXPECT_LE(max_rel(got, want), 1e-6) << "step " << i;
    for (int slot : slots)
      for (int j = 0; j < K - 1; ++j)
        for (int c = 0; c < C; ++c)
          EXPECT_NEAR(conv.t.row<const float>(slot * (K - 1) + j)[c], hist[size_t(slot)][size_t(j * C + c)], 1e-6);
    for (size_t s = 0; s < 2; ++s) past[s] += steps[i][s];
  }
  // x and out may not alias; weight must match the channels
  Buf x = alloc_f32(*be, 1, C);
  fill(x.t, random_values(rng, size_t(C)));
  EXPECT_EQ(be->conv1d_silu(x.t, w, {conv.t, {}}, make_step(*be, {{1, 3, 0}}), x.t).code(),
            StatusCode::invalid_argument);
  Buf y = alloc_f32(*be, 1, C - 1);
  EXPECT_EQ(be->conv1d_silu(x.t.slice_cols(0, C - 1), w, {conv.t, {}}, make_step(*be, {{1, 3, 0}}), y.t).code(),
            StatusCode::invalid_argument);
}

TEST(DeltaNetElementwise, L2NormGatesAndSigmoidGlu) {
  auto be = cpu::make_backend(2);
  std::mt19937 rng(5);
  // l2_norm on a strided column view, per 16-wide head, in place
  Buf wide = alloc_f32(*be, 6, 80);
  const auto xv = random_values(rng, 480, 0.001f, 0.1f);  // small, where eps matters
  fill(wide.t, xv);
  const Tensor x = wide.t.slice_cols(16, 48);
  ASSERT_TRUE(be->l2_norm(x, 16, 1e-6f, x).is_ok());
  Mat want(6, 48);
  for (int r = 0; r < 6; ++r)
    for (int h = 0; h < 3; ++h) {
      double ss = 0;
      for (int i = 0; i < 16; ++i) ss += std::pow(double(xv[size_t(r * 80 + 16 + h * 16 + i)]), 2);
      for (int i = 0; i < 16; ++i) want.at(r, h * 16 + i) = xv[size_t(r * 80 + 16 + h * 16 + i)] / std::sqrt(ss + 1e-6);
    }
  EXPECT_LE(rel_error(x, want), 1e-6);
  EXPECT_EQ(wide.t.row<const float>(2)[5], xv[2 * 80 + 5]);  // columns outside the view untouched
  EXPECT_EQ(be->l2_norm(x, 20, 1e-6f, x).code(), StatusCode::invalid_argument);

  // gates: g = softplus(alpha + dt_bias) * a, beta = sigmoid(b), including large |alpha|
  Buf alpha = alloc_f32(*be, 3, 4), b = alloc_f32(*be, 3, 4), g = alloc_f32(*be, 3, 4), beta = alloc_f32(*be, 3, 4),
      dt = alloc_f32(*be, 1, 4), a = alloc_f32(*be, 1, 4);
  const std::vector<float> av = {-30, -2, 0.5f, 25, 1, -1, 3, 0.1f, -0.2f, 0.3f, 7, -8};
  const auto bv = random_values(rng, 12);
  const std::vector<float> dtv = {0.5f, -0.5f, 1.f, 0.f}, Av = {-0.5f, -2.f, -0.01f, -1.f};
  fill(alpha.t, av), fill(b.t, bv), fill(dt.t, dtv), fill(a.t, Av);
  ASSERT_TRUE(be->deltanet_gates(alpha.t, b.t, {"dt", dt.t, 0}, {"a", a.t, 0}, g.t, beta.t).is_ok());
  Mat wg(3, 4), wb(3, 4);
  for (int i = 0; i < 12; ++i) {
    const double z = double(av[size_t(i)]) + dtv[size_t(i % 4)];
    wg.v[size_t(i)] = std::log(1 + std::exp(z)) * Av[size_t(i % 4)];
    wb.v[size_t(i)] = 1 / (1 + std::exp(-double(bv[size_t(i)])));
  }
  EXPECT_LE(rel_error(g.t, wg), 1e-6);
  EXPECT_LE(rel_error(beta.t, wb), 1e-6);

  // glu with the sigmoid gate: out = sigmoid(gate) * up
  Buf gate = alloc_f32(*be, 4, 9), up = alloc_f32(*be, 4, 9), o = alloc_f32(*be, 4, 9);
  const auto gv = random_values(rng, 36), uv = random_values(rng, 36);
  fill(gate.t, gv), fill(up.t, uv);
  ASSERT_TRUE(be->glu(gate.t, up.t, Activation::sigmoid, o.t).is_ok());
  Mat wo(4, 9);
  for (int i = 0; i < 36; ++i) wo.v[size_t(i)] = uv[size_t(i)] / (1 + std::exp(-double(gv[size_t(i)])));
  EXPECT_LE(rel_error(o.t, wo), 1e-6);
}

}  // namespace
}  // namespace anvil::test_cpu
