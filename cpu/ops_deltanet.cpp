// The Gated DeltaNet on the CPU (Qwen3.5's linear-attention layers): deltanet_gates and
// gated_deltanet, in both forms the contract promises to agree (core/backend.h).
//
// Per sequence and value head h (reading q/k head h % n_k_heads), with S [d_k, d_v]:
//   recurrent, token by token:  S <- e^{g_t} S;  d = beta_t (v_t - S^T k_t);  S <- S + k_t d^T;
//                               o_t = S^T (q_scale q_t)
//   chunked (chunks of L tokens, G_i = g_1 + ... + g_i within the chunk): the same recurrence
//   solved for the whole chunk at once (the WY / UT-transform form of DeltaNet prefill):
//     A[i][j] = -beta_i (k_i . k_j) e^{G_i - G_j} for j < i;  T = (I - A)^-1 by forward
//     substitution, T lower triangular with unit diagonal;
//     U = T (beta v),  W = T (beta e^{G} k)             (the chunk's pseudo-values and keys)
//     V' = U - W S                                       (values net of what S already predicts)
//     o_i = e^{G_i} q_i^T S + sum_{j <= i} (q_i . k_j) e^{G_i - G_j} V'_j
//     S <- e^{G_L} S + sum_j e^{G_L - G_j} k_j V'_j^T
// Everything runs in double; the state is read from and written back to the F32 slot once per
// step, so a step's result does not depend on how its tokens are chunked beyond rounding.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/backend.h"
#include "core/op_checks.h"

namespace anvil::cpu {
namespace {

Status check_vector(const char* op, const Weight& w, int64_t n) {
  if (w.t.type != DType::F32 || w.t.n_elements() != n || !w.t.is_contiguous() || !w.t.data)
    return make_error(StatusCode::invalid_argument, op, ": weight '", w.name, "' ", shape_str(w.t),
                      " must be contiguous F32 with ", n, " elements");
  return Status::ok();
}

// One (sequence, value head)'s inputs, copied to double: [n, d] row-major each.
struct HeadInputs {
  int32_t n = 0, dk = 0, dv = 0;
  std::vector<double> q, k, v, g, beta;
};

// Token by token; S [dk, dv] row-major, updated in place; out [n, dv].
void run_recurrent(const HeadInputs& in, std::vector<double>& S, std::vector<double>& out) {
  const int32_t dk = in.dk, dv = in.dv;
  std::vector<double> d(size_t(dv), 0.0);
  for (int32_t t = 0; t < in.n; ++t) {
    const double decay = std::exp(in.g[size_t(t)]);
    for (double& s : S) s *= decay;
    const double* kt = &in.k[size_t(t) * size_t(dk)];
    const double* qt = &in.q[size_t(t) * size_t(dk)];
    const double* vt = &in.v[size_t(t) * size_t(dv)];
    std::fill(d.begin(), d.end(), 0.0);
    for (int32_t a = 0; a < dk; ++a)
      for (int32_t b = 0; b < dv; ++b) d[size_t(b)] += kt[a] * S[size_t(a) * size_t(dv) + size_t(b)];
    for (int32_t b = 0; b < dv; ++b) d[size_t(b)] = in.beta[size_t(t)] * (vt[b] - d[size_t(b)]);
    double* o = &out[size_t(t) * size_t(dv)];
    std::fill(o, o + dv, 0.0);
    for (int32_t a = 0; a < dk; ++a) {
      double* Sa = &S[size_t(a) * size_t(dv)];
      for (int32_t b = 0; b < dv; ++b) {
        Sa[b] += kt[a] * d[size_t(b)];
        o[b] += qt[a] * Sa[b];
      }
    }
  }
}

double dot(const double* a, const double* b, int32_t n) {
  double s = 0.0;
  for (int32_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Chunks of `chunk` tokens (the last one shorter); same contract as run_recurrent.
void run_chunked(const HeadInputs& in, int32_t chunk, std::vector<double>& S, std::vector<double>& out) {
  const size_t dk = size_t(in.dk), dv = size_t(in.dv);
  std::vector<double> G, T, U, W, Vp;
  for (int32_t c0 = 0; c0 < in.n; c0 += chunk) {
    const size_t L = size_t(std::min(chunk, in.n - c0));
    const double* q = &in.q[size_t(c0) * dk];
    const double* k = &in.k[size_t(c0) * dk];
    const double* v = &in.v[size_t(c0) * dv];
    const double* beta = &in.beta[size_t(c0)];
    G.assign(L, 0.0);
    double acc = 0.0;
    for (size_t i = 0; i < L; ++i) G[i] = acc += in.g[size_t(c0) + i];

    // T = (I - A)^-1 with A strictly lower: row i of T is e_i + sum_{m < i} A[i][m] T[m].
    T.assign(L * L, 0.0);
    for (size_t i = 0; i < L; ++i) {
      for (size_t m = 0; m < i; ++m) {
        const double a = -beta[i] * dot(k + i * dk, k + m * dk, in.dk) * std::exp(G[i] - G[m]);
        for (size_t j = 0; j <= m; ++j) T[i * L + j] += a * T[m * L + j];
      }
      T[i * L + i] = 1.0;
    }
    // U = T (beta v), W = T (beta e^G k)
    U.assign(L * dv, 0.0);
    W.assign(L * dk, 0.0);
    for (size_t i = 0; i < L; ++i)
      for (size_t j = 0; j <= i; ++j) {
        const double t = T[i * L + j] * beta[j];
        if (t == 0.0) continue;
        const double te = t * std::exp(G[j]);
        for (size_t b = 0; b < dv; ++b) U[i * dv + b] += t * v[j * dv + b];
        for (size_t a = 0; a < dk; ++a) W[i * dk + a] += te * k[j * dk + a];
      }
    // V' = U - W S
    Vp = U;
    for (size_t i = 0; i < L; ++i)
      for (size_t a = 0; a < dk; ++a) {
        const double wa = W[i * dk + a];
        const double* Sa = &S[a * dv];
        for (size_t b = 0; b < dv; ++b) Vp[i * dv + b] -= wa * Sa[b];
      }
    // o_i = e^{G_i} q_i^T S + sum_{j <= i} (q_i . k_j) e^{G_i - G_j} V'_j
    for (size_t i = 0; i < L; ++i) {
      double* o = &out[(size_t(c0) + i) * dv];
      std::fill(o, o + dv, 0.0);
      const double* qi = q + i * dk;
      for (size_t a = 0; a < dk; ++a) {
        const double* Sa = &S[a * dv];
        for (size_t b = 0; b < dv; ++b) o[b] += qi[a] * Sa[b];
      }
      const double ei = std::exp(G[i]);
      for (size_t b = 0; b < dv; ++b) o[b] *= ei;
      for (size_t j = 0; j <= i; ++j) {
        const double s = dot(qi, k + j * dk, in.dk) * std::exp(G[i] - G[j]);
        for (size_t b = 0; b < dv; ++b) o[b] += s * Vp[j * dv + b];
      }
    }
    // S <- e^{G_L} S + sum_j e^{G_L - G_j} k_j V'_j^T
    const double gl = G[L - 1], el = std::exp(gl);
    for (double& s : S) s *= el;
    for (size_t j = 0; j < L; ++j) {
      const double e = std::exp(gl - G[j]);
      for (size_t a = 0; a < dk; ++a) {
        const double ka = e * k[j * dk + a];
        double* Sa = &S[a * dv];
        for (size_t b = 0; b < dv; ++b) Sa[b] += ka * Vp[j * dv + b];
      }
    }
  }
}

}  // namespace

Status deltanet_gates(const Tensor& alpha, const Tensor& b, const Weight& dt_bias, const Weight& a, Tensor g,
                      Tensor beta) {
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"alpha", &alpha}, {"b", &b}, {"g", &g},
                                {"beta", &beta}}) {
    ANVIL_RETURN_IF_ERROR(check_f32("deltanet_gates", name, *t));
    ANVIL_RETURN_IF_ERROR(check_same_shape("deltanet_gates", "alpha", alpha, name, *t));
  }
  ANVIL_RETURN_IF_ERROR(check_vector("deltanet_gates", dt_bias, alpha.cols));
  ANVIL_RETURN_IF_ERROR(check_vector("deltanet_gates", a, alpha.cols));
  const float* bias = static_cast<const float*>(dt_bias.t.data);
  const float* A = static_cast<const float*>(a.t.data);
  for (int64_t r = 0; r < alpha.rows; ++r) {
    const float* al = alpha.row<const float>(r);
    const float* br = b.row<const float>(r);
    float* gr = g.row<float>(r);
    float* be = beta.row<float>(r);
    for (int64_t h = 0; h < alpha.cols; ++h) {
      // softplus(x) = log(1 + e^x), written to stay finite for large |x| (torch's threshold 20
      // returns x itself there; log1p(e^-|x|) + max(x, 0) is the same to f32 precision)
      const double x = double(al[h]) + double(bias[h]);
      const double sp = std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x)));
      gr[h] = float(sp * double(A[h]));
      be[h] = float(1.0 / (1.0 + std::exp(-double(br[h]))));
    }
  }
  return Status::ok();
}

Status gated_deltanet(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                      const RecurrentLayer& state, const DeltaNetParams& p, const DeviceStep& step, Tensor out,
                      ThreadPool& pool) {
  const char* op = "gated_deltanet";
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"q", &q}, {"k", &k}, {"v", &v}, {"g", &g},
                                {"beta", &beta}, {"out", &out}, {"state.ssm", &state.ssm}})
    ANVIL_RETURN_IF_ERROR(check_f32(op, name, *t));
  if (p.n_k_heads <= 0 || p.n_v_heads <= 0 || p.n_v_heads % p.n_k_heads != 0 || p.d_k <= 0 || p.d_v <= 0 ||
      p.chunk <= 0 || !std::isfinite(p.q_scale) || p.q_scale == 0.f)
    return make_error(StatusCode::invalid_argument, op, ": bad params n_k_heads ", p.n_k_heads, ", n_v_heads ",
                      p.n_v_heads, ", d_k ", p.d_k, ", d_v ", p.d_v, ", chunk ", p.chunk, ", q_scale ", p.q_scale,
                      " (n_v_heads a multiple of n_k_heads, all positive)");
  const int64_t T = step.n_tokens, qk_cols = int64_t(p.n_k_heads) * p.d_k, v_cols = int64_t(p.n_v_heads) * p.d_v;
  if (q.rows != T || k.rows != T || v.rows != T || g.rows != T || beta.rows != T || out.rows != T ||
      q.cols != qk_cols || k.cols != qk_cols || v.cols != v_cols || out.cols != v_cols || g.cols != p.n_v_heads ||
      beta.cols != p.n_v_heads)
    return make_error(StatusCode::invalid_argument, op, ": q ", shape_str(q), ", k ", shape_str(k), ", v ",
                      shape_str(v), ", g ", shape_str(g), ", beta ", shape_str(beta), ", out ", shape_str(out),
                      " must be [", T, " x ", qk_cols, "] x2, [", T, " x ", v_cols, "], [", T, " x ", p.n_v_heads,
                      "] x2, [", T, " x ", v_cols, "]");
  const int64_t slot_rows = int64_t(p.n_v_heads) * p.d_k;
  if (state.ssm.cols != p.d_v || state.ssm.rows == 0 || state.ssm.rows % slot_rows != 0)
    return make_error(StatusCode::invalid_argument, op, ": state.ssm ", shape_str(state.ssm), " must be [n_slots * ",
                      slot_rows, " x ", p.d_v, "]");
  ANVIL_RETURN_IF_ERROR(check_state_slots(op, step, state.ssm.rows / slot_rows));

  pool.parallel_for(int64_t(step.n_seqs) * p.n_v_heads, 1, [&](int64_t i0, int64_t i1) {
    HeadInputs in;
    std::vector<double> S, o;
    for (int64_t item = i0; item < i1; ++item) {
      const int32_t s = int32_t(item / p.n_v_heads), h = int32_t(item % p.n_v_heads);
      const int32_t n = step.seq_n_tokens[s], first = step.seq_first_token[s];
      if (n == 0) continue;
      const int64_t kh = h % p.n_k_heads;  // tiled: value head h reads key head h mod n_k
      in.n = n, in.dk = p.d_k, in.dv = p.d_v;
      in.q.resize(size_t(n) * size_t(p.d_k));
      in.k.resize(in.q.size());
      in.v.resize(size_t(n) * size_t(p.d_v));
      in.g.resize(size_t(n));
      in.beta.resize(size_t(n));
      for (int32_t t = 0; t < n; ++t) {
        const float* qr = q.row<const float>(first + t) + kh * p.d_k;
        const float* kr = k.row<const float>(first + t) + kh * p.d_k;
        const float* vr = v.row<const float>(first + t) + int64_t(h) * p.d_v;
        for (int32_t a = 0; a < p.d_k; ++a) {
          in.q[size_t(t) * size_t(p.d_k) + size_t(a)] = double(qr[a]) * double(p.q_scale);
          in.k[size_t(t) * size_t(p.d_k) + size_t(a)] = double(kr[a]);
        }
        for (int32_t b = 0; b < p.d_v; ++b) in.v[size_t(t) * size_t(p.d_v) + size_t(b)] = double(vr[b]);
        in.g[size_t(t)] = double(g.row<const float>(first + t)[h]);
        in.beta[size_t(t)] = double(beta.row<const float>(first + t)[h]);
      }
      const int64_t s_row = int64_t(step.state_slots[s]) * slot_rows + int64_t(h) * p.d_k;
      S.assign(size_t(p.d_k) * size_t(p.d_v), 0.0);
      if (step.context_lens[s] != n)  // n_past > 0: continue from the slot
        for (int32_t a = 0; a < p.d_k; ++a)
          for (int32_t b = 0; b < p.d_v; ++b)
            S[size_t(a) * size_t(p.d_v) + size_t(b)] = double(state.ssm.row<const float>(s_row + a)[b]);
      o.assign(size_t(n) * size_t(p.d_v), 0.0);
      const bool chunked = p.mode == DeltaNetMode::chunked || (p.mode == DeltaNetMode::automatic && n > 1);
      if (chunked)
        run_chunked(in, p.chunk, S, o);
      else
        run_recurrent(in, S, o);
      for (int32_t a = 0; a < p.d_k; ++a)
        for (int32_t b = 0; b < p.d_v; ++b)
          state.ssm.row<float>(s_row + a)[b] = float(S[size_t(a) * size_t(p.d_v) + size_t(b)]);
      for (int32_t t = 0; t < n; ++t) {
        float* orow = out.row<float>(first + t) + int64_t(h) * p.d_v;
        for (int32_t b = 0; b < p.d_v; ++b) orow[b] = float(o[size_t(t) * size_t(p.d_v) + size_t(b)]);
      }
    }
  });
  return Status::ok();
}

}  // namespace anvil::cpu
