// Reference dequantizers. Each product is formed in the order ggml's dequantize_row_* and
// gguf-py's numpy code form it (e.g. Q6_K: (d * scale) * q, Q4_K: (d * sc) * q - dmin * m),
// so the results are bit-identical to both.
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/ref_impl.h"

namespace anvil::quant::ref {
namespace {

template <typename Block>
Block load_block(const void* src, int64_t i) {
  Block b;
  std::memcpy(&b, static_cast<const uint8_t*>(src) + i * int64_t(sizeof(Block)), sizeof(Block));
  return b;
}

}  // namespace

void dequantize_f16(const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = fp16_to_fp32(h);
  }
}

void dequantize_bf16(const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = bf16_to_fp32(h);
  }
}

void dequantize_q4_0(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const auto b = load_block<BlockQ4_0>(src, i);
    const float d = fp16_to_fp32(b.d);
    float* y = dst + i * kQK32;
    for (int j = 0; j < kQK32 / 2; ++j) {
      y[j] = float((b.qs[j] & 0x0F) - 8) * d;
      y[j + kQK32 / 2] = float((b.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const auto b = load_block<BlockQ4_1>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float m = fp16_to_fp32(b.m);
    float* y = dst + i * kQK32;
    for (int j = 0; j < kQK32 / 2; ++j) {
      y[j] = float(b.qs[j] & 0x0F) * d + m;
      y[j + kQK32 / 2] = float(b.qs[j] >> 4) * d + m;
    }
  }
}

namespace {
inline uint32_t load_qh(const uint8_t qh[4]) {
  return uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
}
}  // namespace

void dequantize_q5_0(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const auto b = load_block<BlockQ5_0>(src, i);
    const float d = fp16_to_fp32(b.d);
    const uint32_t qh = load_qh(b.qh);
    float* y = dst + i * kQK32;
    for (int j = 0; j < kQK32 / 2; ++j) {
      const int hi0 = int((qh >> j) & 1u) << 4;
      const int hi1 = int((qh >> (j + 16)) & 1u) << 4;
      y[j] = float(((b.qs[j] & 0x0F) | hi0) - 16) * d;
      y[j + kQK32 / 2] = float(((b.qs[j] >> 4) | hi1) - 16) * d;
    }
  }
}

void dequantize_q5_1(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const auto b = load_block<BlockQ5_1>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float m = fp16_to_fp32(b.m);
    const uint32_t qh = load_qh(b.qh);
    float* y = dst + i * kQK32;
    for (int j = 0; j < kQK32 / 2; ++j) {
      const int hi0 = int((qh >> j) & 1u) << 4;
      const int hi1 = int((qh >> (j + 16)) & 1u) << 4;
      y[j] = float((b.qs[j] & 0x0F) | hi0) * d + m;
      y[j + kQK32 / 2] = float((b.qs[j] >> 4) | hi1) * d + m;
    }
  }
}

void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const auto b = load_block<BlockQ8_0>(src, i);
    const float d = fp16_to_fp32(b.d);
    float* y = dst + i * kQK32;
    for (int j = 0; j < kQK32; ++j) y[j] = float(b.qs[j]) * d;
  }
}

void dequantize_q4_k(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<BlockQ4_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    float* y = dst + i * kQK_K;
    for (int c = 0; c < 4; ++c) {  // 64-element chunks: two sub-blocks share 32 bytes
      const uint8_t* q = b.qs + 32 * c;
      uint8_t sc, m;
      unpack_scale_min_k4(2 * c, b.scales, sc, m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      unpack_scale_min_k4(2 * c + 1, b.scales, sc, m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l) y[64 * c + l] = d1 * float(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[64 * c + 32 + l] = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_k(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<BlockQ5_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    float* y = dst + i * kQK_K;
    for (int c = 0; c < 4; ++c) {
      const uint8_t* ql = b.qs + 32 * c;
      const uint8_t u1 = uint8_t(1u << (2 * c)), u2 = uint8_t(2u << (2 * c));
      uint8_t sc, m;
      unpack_scale_min_k4(2 * c, b.scales, sc, m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      unpack_scale_min_k4(2 * c + 1, b.scales, sc, m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l)
        y[64 * c + l] = d1 * float((ql[l] & 0xF) + ((b.qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l)
        y[64 * c + 32 + l] = d2 * float((ql[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0)) - m2;
    }
  }
}

void dequantize_q6_k(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<BlockQ6_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    float* y = dst + i * kQK_K;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      const int8_t* sc = b.scales + 8 * h;
      float* yh = y + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;
        const int q1 = int((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
        const int q2 = int((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
        const int q3 = int((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
        const int q4 = int((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
        yh[l + 0] = d * float(sc[s + 0]) * float(q1);
        yh[l + 32] = d * float(sc[s + 2]) * float(q2);
        yh[l + 64] = d * float(sc[s + 4]) * float(q3);
        yh[l + 96] = d * float(sc[s + 6]) * float(q4);
      }
    }
  }
}

void dequantize_q8_k(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<BlockQ8_K>(src, i);
    float* y = dst + i * kQK_K;
    for (int j = 0; j < kQK_K; ++j) y[j] = b.d * float(b.qs[j]);
  }
}

}  // namespace anvil::quant::ref
