// Naive reference versions of the CPU backend's ops, written independently of cpu/ops_*.cpp:
// dense (no pages), plain loops, everything in double. The tests compare the backend with these.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace anvil::test_ref {

// A dense row-major matrix of doubles.
struct Mat {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  Mat() = default;
  Mat(int64_t r, int64_t c) : rows(r), cols(c), v(size_t(r * c), 0.0) {}
  double& at(int64_t r, int64_t c) { return v[size_t(r * cols + c)]; }
  double at(int64_t r, int64_t c) const { return v[size_t(r * cols + c)]; }
};

inline Mat rms_norm(const Mat& x, const std::vector<float>* w, double eps) {
  Mat y(x.rows, x.cols);
  for (int64_t r = 0; r < x.rows; ++r) {
    double ms = 0;
    for (int64_t c = 0; c < x.cols; ++c) ms += x.at(r, c) * x.at(r, c);
    ms /= double(x.cols);
    for (int64_t c = 0; c < x.cols; ++c) y.at(r, c) = x.at(r, c) / std::sqrt(ms + eps) * (w ? double((*w)[size_t(c)]) : 1.0);
  }
  return y;
}

inline double silu(double g) { return g / (1.0 + std::exp(-g)); }

// HF's gelu_pytorch_tanh, literally.
inline double gelu_tanh(double g) {
  const double kPi = 3.14159265358979323846;
  return 0.5 * g * (1.0 + std::tanh(std::sqrt(2.0 / kPi) * (g + 0.044715 * g * g * g)));
}

// The rotary angle of pair i at position pos. hf_f32: as HF transformers computes it
// (inv_freq = 1 / base^(2i/d) in float32, pos * inv_freq in float32), which the engine must match
// for golden logits; otherwise the exact angle in double.
inline double rope_angle(int32_t pos, int32_t i, int32_t rope_dims, double base, double freq_scale, bool hf_f32) {
  if (hf_f32) {
    float inv = 1.0f / std::pow(float(base), float(2 * i) / float(rope_dims));
    inv = float(inv / float(1.0 / freq_scale));  // HF: inv_freq /= factor
    return double(float(pos) * inv);
  }
  return double(pos) * freq_scale * std::pow(base, -2.0 * i / rope_dims);
}

// x [n_tokens, n_heads * head_dim]; neox: pairs (i, i + rope_dims/2), else (2i, 2i + 1).
inline Mat rope(const Mat& x, const std::vector<int32_t>& positions, int32_t n_heads, int32_t head_dim,
                int32_t rope_dims, double base, double freq_scale, bool neox, bool hf_f32) {
  Mat y = x;
  for (int64_t t = 0; t < x.rows; ++t) {
    for (int32_t h = 0; h < n_heads; ++h) {
      const int64_t o = int64_t(h) * head_dim;
      for (int32_t i = 0; i < rope_dims / 2; ++i) {
        const int64_t a = o + (neox ? i : 2 * i);
        const int64_t b = o + (neox ? i + rope_dims / 2 : 2 * i + 1);
        const double th = rope_angle(positions[size_t(t)], i, rope_dims, base, freq_scale, hf_f32);
        y.at(t, a) = x.at(t, a) * std::cos(th) - x.at(t, b) * std::sin(th);
        y.at(t, b) = x.at(t, b) * std::cos(th) + x.at(t, a) * std::sin(th);
      }
    }
  }
  return y;
}

// Dense causal attention of one sequence. q [n_q, n_heads * hd] for tokens at positions
// q_pos; k, v [context, n_kv_heads * hd] hold the sequence's whole history by position.
inline Mat attention(const Mat& q, const std::vector<int32_t>& q_pos, const Mat& k, const Mat& v, int32_t n_heads,
                     int32_t n_kv_heads, int32_t hd, double scale, int32_t window, double softcap) {
  Mat out(q.rows, q.cols);
  for (int64_t t = 0; t < q.rows; ++t) {
    const int32_t p = q_pos[size_t(t)];
    for (int32_t h = 0; h < n_heads; ++h) {
      const int32_t kvh = h * n_kv_heads / n_heads;  // heads grouped in consecutive blocks
      std::vector<double> s;
      std::vector<int32_t> js;
      for (int32_t j = 0; j <= p; ++j) {
        if (window > 0 && j <= p - window) continue;
        double d = 0;
        for (int32_t c = 0; c < hd; ++c) d += q.at(t, int64_t(h) * hd + c) * k.at(j, int64_t(kvh) * hd + c);
        d *= scale;
        if (softcap > 0) d = softcap * std::tanh(d / softcap);
        s.push_back(d);
        js.push_back(j);
      }
      double m = -INFINITY, z = 0;
      for (double x : s) m = std::max(m, x);
      for (double& x : s) z += (x = std::exp(x - m));
      for (int32_t c = 0; c < hd; ++c) {
        double acc = 0;
        for (size_t i = 0; i < s.size(); ++i) acc += s[i] * v.at(js[i], int64_t(kvh) * hd + c);
        out.at(t, int64_t(h) * hd + c) = acc / z;
      }
    }
  }
  return out;
}

}  // namespace anvil::test_ref
