// Quantizers of the 256-element K formats (Q4_K Q5_K Q6_K) and of Q8_K.
//
// Without importance weights these are ggml's quantize_row_*_ref, the path llama-quantize
// takes without an imatrix:
//   Q4_K / Q5_K: per 32-element sub-block a weighted (av|x| + |x|) least-squares search for
//     scale and min (make_qkx2_quants), then both quantized to 6 bits against the block
//     maxima, and every element re-rounded against the stored (f16 * 6-bit) scale and min.
//   Q6_K: per 16-element sub-block a symmetric search (make_qx_quants, weights x^2), scales
//     quantized to int8 against the largest, elements re-rounded against the stored scale.
// With weights they follow ggml's imatrix paths (make_qkx3_quants + make_qp_quants for the
// scales of Q4_K/Q5_K; weighted make_qx_quants for Q6_K).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/ref_impl.h"

namespace anvil::quant::ref {
namespace {

constexpr int kSub = 8;  // 32-element sub-blocks of a Q4_K / Q5_K super-block

template <typename Block>
void store_block(void* dst, int64_t i, const Block& b) {
  std::memcpy(static_cast<uint8_t*>(dst) + i * int64_t(sizeof(Block)), &b, sizeof(Block));
}

// Packs 6-bit scale ls and min lm of sub-block s into the 12 scale bytes (see blocks.h).
void pack_scale_min_k4(int s, uint8_t ls, uint8_t lm, uint8_t* scales) {
  if (s < 4) {
    scales[s] = ls;
    scales[s + 4] = lm;
  } else {
    scales[s + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
    scales[s - 4] |= uint8_t((ls >> 4) << 6);
    scales[s] |= uint8_t((lm >> 4) << 6);
  }
}

// The scale/min search of one Q4_K / Q5_K super-block: fills the 6-bit scales, d, dmin and
// the levels L (0..nmax). Shared by both formats, which differ only in nmax and the search
// parameters.
template <typename Block>
void search_k4(const float* x, const float* qw, int nmax, float rmin, float rdelta, int nstep,
               Block& b, uint8_t* L) {
  float scales[kSub], mins[kSub];
  uint8_t Laux[32];
  float weights[32];
  std::memset(b.scales, 0, sizeof(b.scales));
  if (!qw) {
    float max_scale = 0.0f;  // scales are positive, the min having been taken out
    float max_min = 0.0f;
    for (int j = 0; j < kSub; ++j) {
      const float* xs = x + 32 * j;
      float sum_x2 = 0.0f;
      for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
      const float av_x = std::sqrt(sum_x2 / 32.0f);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
      scales[j] = make_qkx2_quants(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < kSub; ++j) {
      // ggml stores nearest_int into a uint8_t first, then clamps to 63
      const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
      const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
      pack_scale_min_k4(j, ls, lm, b.scales);
    }
    b.d = fp32_to_fp16(max_scale / 63.0f);
    b.dmin = fp32_to_fp16(max_min / 63.0f);
  } else {
    float sum_x2 = 0.0f;
    for (int l = 0; l < kQK_K; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2.0f * sum_x2 / float(kQK_K);
    float sw[kSub];
    uint8_t Ls[kSub], Lm[kSub];
    for (int j = 0; j < kSub; ++j) {
      const float* xs = x + 32 * j;
      for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * std::sqrt(sigma2 + xs[l] * xs[l]);
      float sumw = 0.0f;
      for (int l = 0; l < 32; ++l) sumw += weights[l];
      sw[j] = sumw;
      scales[j] = make_qkx3_quants(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
    }
    const float d_block = make_qp_quants(kSub, 63, scales, Ls, sw);
    const float m_block = make_qp_quants(kSub, 63, mins, Lm, sw);
    for (int j = 0; j < kSub; ++j) {
      // make_qp_quants keeps levels <= 63 except for a negative fitted scale (wrapping into
      // uint8); ggml clamps that only for Q5_K, anvil for both rather than corrupt the packing
      pack_scale_min_k4(j, std::min<uint8_t>(63, Ls[j]), std::min<uint8_t>(63, Lm[j]), b.scales);
    }
    b.d = fp32_to_fp16(d_block);
    b.dmin = fp32_to_fp16(m_block);
  }
  // Re-round every element against the scale and min as stored.
  for (int j = 0; j < kSub; ++j) {
    uint8_t sc, m;
    unpack_scale_min_k4(j, b.scales, sc, m);
    const float d = fp16_to_fp32(b.d) * float(sc);
    if (d == 0.0f) continue;  // keeps the search's levels, as ggml does
    const float dm = fp16_to_fp32(b.dmin) * float(m);
    for (int l = 0; l < 32; ++l) {
      const int q = nearest_int((x[32 * j + l] + dm) / d);
      L[32 * j + l] = uint8_t(std::max(0, std::min(nmax, q)));
    }
  }
}

}  // namespace

void quantize_q4_k(const float* src, void* dst, int64_t n, const float* weights) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* x = src + i * kQK_K;
    BlockQ4_K b{};
    search_k4(x, weights ? weights + i * kQK_K : nullptr, 15, -1.0f, 0.1f, 20, b, L);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
    store_block(dst, i, b);
  }
}

void quantize_q5_k(const float* src, void* dst, int64_t n, const float* weights) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* x = src + i * kQK_K;
    BlockQ5_K b{};
    search_k4(x, weights ? weights + i * kQK_K : nullptr, 31, -0.5f, 0.1f, 15, b, L);
    for (int c = 0; c < 4; ++c) {
      const uint8_t m1 = uint8_t(1u << (2 * c)), m2 = uint8_t(2u << (2 * c));
      for (int l = 0; l < 32; ++l) {
        int l1 = L[64 * c + l];
        int l2 = L[64 * c + 32 + l];
        if (l1 > 15) {
          l1 -= 16;
          b.qh[l] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          b.qh[l] |= m2;
        }
        b.qs[32 * c + l] = uint8_t(l1 | (l2 << 4));
      }
    }
    store_block(dst, i, b);
  }
}

void quantize_q6_k(const float* src, void* dst, int64_t n, const float* weights) {
  constexpr float kGroupMaxEps = 1e-15f;
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* x = src + i * kQK_K;
    BlockQ6_K b{};
    float max_scale = 0.0f;
    float max_abs_scale = 0.0f;
    for (int s = 0; s < kQK_K / 16; ++s) {
      const float* qw = weights ? weights + i * kQK_K + 16 * s : nullptr;
      scales[s] = make_qx_quants(16, 32, x + 16 * s, L + 16 * s, 1, qw);
      if (std::fabs(scales[s]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {  // all (near) zero: an all-zero block
      store_block(dst, i, b);
      continue;
    }
    const float iscale = -128.0f / max_scale;
    b.d = fp32_to_fp16(1.0f / iscale);
    for (int s = 0; s < kQK_K / 16; ++s) b.scales[s] = int8_t(std::min(127, nearest_int(iscale * scales[s])));
    for (int s = 0; s < kQK_K / 16; ++s) {
      const float d = fp16_to_fp32(b.d) * float(b.scales[s]);
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; ++l) {
        const int q = nearest_int(x[16 * s + l] / d);
        L[16 * s + l] = int8_t(std::max(-32, std::min(31, q)) + 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const int8_t* Lh = L + 128 * h;
      uint8_t* ql = b.ql + 64 * h;
      uint8_t* qh = b.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = uint8_t(Lh[l]), q2 = uint8_t(Lh[l + 32]);
        const uint8_t q3 = uint8_t(Lh[l + 64]), q4 = uint8_t(Lh[l + 96]);
        ql[l] = uint8_t((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = uint8_t((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
    store_block(dst, i, b);
  }
}

void quantize_q8_k(const float* src, void* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* x = src + i * kQK_K;
    BlockQ8_K b{};
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax != 0.0f) {
      // -127 (not -128) so the largest magnitude maps to +-127 whatever its sign
      const float iscale = -127.0f / max;
      for (int j = 0; j < kQK_K; ++j) b.qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
      for (int g = 0; g < kQK_K / 16; ++g) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) sum += b.qs[16 * g + l];
        b.bsums[g] = int16_t(sum);
      }
      b.d = 1.0f / iscale;
    }
    store_block(dst, i, b);
  }
}

}  // namespace anvil::quant::ref
