// Quantizers of the 32-element formats (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0) and of F16/BF16.
//
// Without importance weights these are ggml's quantize_row_*_ref: scale from the block's
// max-abs (or min/max), then truncation of x/d + 0.5 (+ the zero point), and roundf for Q8_0.
// gguf-py's numpy quantizers do the same, and the tests compare bytes with them. With weights
// they follow ggml's imatrix paths (a weighted scale search per block, see scale_search.cpp).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/ref_impl.h"

namespace anvil::quant::ref {
namespace {

template <typename Block>
void store_block(void* dst, int64_t i, const Block& b) {
  std::memcpy(static_cast<uint8_t*>(dst) + i * int64_t(sizeof(Block)), &b, sizeof(Block));
}

inline void store_qh(uint8_t qh[4], uint32_t v) {
  for (int k = 0; k < 4; ++k) qh[k] = uint8_t(v >> (8 * k));
}

// The value of largest magnitude (the first one on ties), keeping its sign.
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

inline void min_max(const float* x, int n, float& min, float& max) {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

// C's float -> int8_t conversion, which truncates toward zero (values here are in range).
inline int trunc_i8(float v) { return int(int8_t(int(v))); }

// ggml's imatrix paths weight each element by its importance times sqrt(sigma^2 + x^2),
// sigma^2 being the mean square of the whole row.
inline float row_sigma2(const float* x, int64_t n) {
  float sum_x2 = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / float(n);
}

inline void importance(const float* xb, const float* qw, float sigma2, float* weight) {
  for (int j = 0; j < kQK32; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

}  // namespace

void quantize_f16(const float* src, void* dst, int64_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = fp32_to_fp16(src[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}

void quantize_bf16(const float* src, void* dst, int64_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = fp32_to_bf16(src[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}

void quantize_q4_0(const float* src, void* dst, int64_t n, const float* weights) {
  const float sigma2 = weights ? row_sigma2(src, n) : 0.0f;
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const float* x = src + i * kQK32;
    BlockQ4_0 b{};
    if (weights) {
      float w[kQK32];
      int8_t L[kQK32];
      importance(x, weights + i * kQK32, sigma2, w);
      b.d = fp32_to_fp16(make_qx_quants(kQK32, 8, x, L, 1, w));
      for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
    } else {
      const float d = signed_absmax(x, kQK32) / -8.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      b.d = fp32_to_fp16(d);
      for (int j = 0; j < kQK32 / 2; ++j) {
        const int q0 = std::min(15, trunc_i8(x[j] * id + 8.5f));
        const int q1 = std::min(15, trunc_i8(x[j + 16] * id + 8.5f));
        b.qs[j] = uint8_t(q0 | (q1 << 4));
      }
    }
    store_block(dst, i, b);
  }
}

void quantize_q4_1(const float* src, void* dst, int64_t n, const float* weights) {
  const float sigma2 = weights ? row_sigma2(src, n) : 0.0f;
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const float* x = src + i * kQK32;
    BlockQ4_1 b{};
    if (weights) {
      float w[kQK32];
      uint8_t L[kQK32], Laux[kQK32];
      importance(x, weights + i * kQK32, sigma2, w);
      float neg_min;
      const float d = make_qkx3_quants(kQK32, 15, x, w, L, &neg_min, Laux, -0.9f, 0.05f, 36);
      b.d = fp32_to_fp16(d);
      b.m = fp32_to_fp16(-neg_min);
      for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(L[j] | (L[j + 16] << 4));
    } else {
      float min, max;
      min_max(x, kQK32, min, max);
      const float d = (max - min) / 15.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      b.d = fp32_to_fp16(d);
      b.m = fp32_to_fp16(min);
      for (int j = 0; j < kQK32 / 2; ++j) {
        const int q0 = std::min(15, trunc_i8((x[j] - min) * id + 0.5f));
        const int q1 = std::min(15, trunc_i8((x[j + 16] - min) * id + 0.5f));
        b.qs[j] = uint8_t(q0 | (q1 << 4));
      }
    }
    store_block(dst, i, b);
  }
}

namespace {
// Packs 32 5-bit levels: low nibbles into qs (j, j + 16 share a byte), bit 4 into qh.
template <typename Block, typename Level>
void pack_q5(Block& b, const Level* L) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const uint32_t q0 = uint8_t(L[j]), q1 = uint8_t(L[j + 16]);
    b.qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    qh |= ((q0 & 0x10u) >> 4) << j;
    qh |= ((q1 & 0x10u) >> 4) << (j + 16);
  }
  store_qh(b.qh, qh);
}
}  // namespace

void quantize_q5_0(const float* src, void* dst, int64_t n, const float* weights) {
  const float sigma2 = weights ? row_sigma2(src, n) : 0.0f;
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const float* x = src + i * kQK32;
    BlockQ5_0 b{};
    int8_t L[kQK32];
    if (weights) {
      float w[kQK32];
      importance(x, weights + i * kQK32, sigma2, w);
      b.d = fp32_to_fp16(make_qx_quants(kQK32, 16, x, L, 1, w));
    } else {
      const float d = signed_absmax(x, kQK32) / -16.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      b.d = fp32_to_fp16(d);
      for (int j = 0; j < kQK32; ++j) L[j] = int8_t(std::min(31, trunc_i8(x[j] * id + 16.5f)));
    }
    pack_q5(b, L);
    store_block(dst, i, b);
  }
}

void quantize_q5_1(const float* src, void* dst, int64_t n, const float* weights) {
  const float sigma2 = weights ? row_sigma2(src, n) : 0.0f;
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const float* x = src + i * kQK32;
    BlockQ5_1 b{};
    uint8_t L[kQK32];
    if (weights) {
      float w[kQK32];
      uint8_t Laux[kQK32];
      importance(x, weights + i * kQK32, sigma2, w);
      float neg_min;
      const float d = make_qkx3_quants(kQK32, 31, x, w, L, &neg_min, Laux, -0.9f, 0.05f, 36);
      b.d = fp32_to_fp16(d);
      b.m = fp32_to_fp16(-neg_min);
    } else {
      float min, max;
      min_max(x, kQK32, min, max);
      const float d = (max - min) / 31.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      b.d = fp32_to_fp16(d);
      b.m = fp32_to_fp16(min);
      // ggml converts straight to uint8 here (no clamp); (x - min) * id + 0.5 stays below 32
      for (int j = 0; j < kQK32; ++j) L[j] = uint8_t(std::min(31, int((x[j] - min) * id + 0.5f)));
    }
    pack_q5(b, L);
    store_block(dst, i, b);
  }
}

void quantize_q8_0(const float* src, void* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const float* x = src + i * kQK32;
    float amax = 0.0f;
    for (int j = 0; j < kQK32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 b{};
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < kQK32; ++j) b.qs[j] = int8_t(std::round(x[j] * id));  // half away from 0
    store_block(dst, i, b);
  }
}

}  // namespace anvil::quant::ref
