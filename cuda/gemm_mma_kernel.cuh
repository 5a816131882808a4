// The tensor-core GEMM kernel on quantized weights (cuda/gemm.h), shared by the weight types
// (cuda/gemm_mma_{q4k,q5k,q6k,q8_0}.cu). Three layers, each small:
//   - primitives: f16x2 tricks (cp.async, ldmatrix and mma.m16n8k16: cuda/mma_primitives.cuh);
//   - weight tile policies, one per type: where a lane finds its quants in a shared-memory copy
//     of one super-block row (256 values) and how it turns them into mma A-fragment registers;
//   - the kernel: cp.async pipeline over super-blocks of k, per-warp dequantize + mma, epilogue
//     with optional split-K (the last CTA of a tile sums the partial tiles in a fixed order).
//
// The k permutation. An mma.m16n8k16 lane (group g = lane / 4, t = lane % 4) holds A elements
// (row, k) for k in {2t, 2t+1} (register "slot 0") and {2t+8, 2t+9} (slot 1) of each 16-wide k
// step. The sum over k does not depend on which physical weight we call "k" as long as the
// activations use the same order, so we choose the order in which the packed blocks hand the
// values out: within a super-block, logical position L = 16 s + p (step s = 2 w + hb, p in
// 0..15 with t = (p % 8) / 2, slot = p / 8, half = p % 2) holds physical element
//     e = 64 t + 32 hb + 4 w + slot + 2 half.
// So lane t reads only bytes of its own 64-value quarter (Q4_K/Q5_K: 32-byte chunk t; Q8_0: blocks
// 2t, 2t+1; Q6_K: the 32-value groups of half t / 2): word w of that quarter's first (hb = 0) or
// second (hb = 1) 32 values gives byte 0 and 2 as slot 0 and bytes 1 and 3 as slot 1 — exactly
// the f16x2 pairs that one mask + or turns into halves (Marlin's 0x6400 trick: f16 bits 0x6400 | q
// are 1024 + q for q < 1024). The activation converter (gemm_mma.cu) writes x in this order, so
// the B fragments are plain ldmatrix loads of contiguous rows.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "cuda/mma_primitives.cuh"
#include "cuda/quant_blocks.cuh"

namespace anvil::cuda::gemm_detail {

constexpr int kTileK = 256;                   // k per pipeline stage: one K-quant super-block
constexpr int kActRowBytes = kTileK * 2 + 16;  // one token's f16 stage row, padded 16 B so the 8
                                               // rows of an ldmatrix hit 8 different bank groups
constexpr int kMaxSmemBytes = 226 * 1024;      // per-CTA dynamic shared memory: sm_90's 227 KB opt-in
                                               // limit less room for the static part (the launcher
                                               // also skips configs over the device's own limit)

// ---------------------------------------------------------------------------- primitives
// cp.async, ldmatrix and mma.m16n8k16 come from cuda/mma_primitives.cuh.
using ptx::cp_async_16;
using ptx::cp_async_16_zfill;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::ldmatrix_x4;
using ptx::mma_f16_f32;
using ptx::smem_addr;

__device__ __forceinline__ __half2 as_half2(uint32_t u) {
  __half2 h;
  memcpy(&h, &u, 4);
  return h;
}
__device__ __forceinline__ uint32_t as_u32(__half2 h) {
  uint32_t u;
  memcpy(&u, &h, 4);
  return u;
}

// f16x2 constants as bit patterns (both halves equal).
constexpr uint32_t kH2_1024 = 0x64006400u;  // 1024
constexpr uint32_t kH2_1056 = 0x64206420u;  // 1024 + 32
constexpr uint32_t kH2_1152 = 0x64806480u;  // 1024 + 128
constexpr uint32_t kH2_1_16 = 0x2C002C00u;  // 1/16
constexpr uint32_t kH2_m64 = 0xD400D400u;   // -64

// Word i (compile-time after unrolling) of a 16-byte vector.
__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// 32 bits from a 2-byte-aligned shared-memory address.
__device__ __forceinline__ uint32_t lds_u32_a2(const uint8_t* p) {
  const uint32_t lo = *reinterpret_cast<const uint16_t*>(p);
  const uint32_t hi = *reinterpret_cast<const uint16_t*>(p + 2);
  return lo | (hi << 16);
}

// Integer q encoded as f16 1024 + q (low nibbles, 5-bit and 8-bit values) -> q, exactly.
__device__ __forceinline__ __half2 q_from_1024(uint32_t v, uint32_t bias_bits) {
  return __hsub2(as_half2(v), as_half2(bias_bits));
}
// q encoded as f16 1024 + 16 q (high nibbles left in place) -> q, exactly: (1024 + 16q) / 16 - 64.
__device__ __forceinline__ __half2 q_from_1024_x16(uint32_t v) {
  return __hfma2(as_half2(v), as_half2(kH2_1_16), as_half2(kH2_m64));
}

// ---------------------------------------------------------------------------- weight tiles
// A policy describes one weight type's super-block row (256 values) in shared memory:
//   kBlockBytes    bytes of one row's super-block in global memory
//   kUnaligned     rows are only 2-byte aligned in global memory: copy the 16-byte-aligned window
//                  around the block (kCopyChunks chunks) and realign it (normalize) before use
//   kCopyChunks    16-byte cp.async chunks per row per stage; kStageRowBytes their row stride
//   kNormalize     the kernel rewrites each stage row into kNormWords aligned words (row stride
//                  kRowBytes) before the warps read it; otherwise warps read the stage directly
//   kRowBytes      row stride of what the warps read (a multiple of 16 B, chosen per type so
//                  that the LDS.128 of lanes 0..7 — rows g, g + 1 x four t — hit distinct banks)
//   Scales load_scales(row, t, hb)     the lane's scales for values 64t + 32hb .. + 31
//   Words  load_words(row, t, w4, hb)  the lane's quants of those values for words 4 w4 .. 4 w4 + 3
//   dequant(hb, w4, ww, words, scales, t, slot0, slot1)  word w = 4 w4 + ww, half hb -> two f16x2
// Weights in f16: w = fl16(fl16(scale) * q - fl16(min)) with q an exact small integer and one
// rounding (fused multiply-add); never 1024 * scale folded into the offset, which would round the
// min to the scale's ulp.

// Q4_K: 144 B = d, dmin, 12 B of 6-bit scales/mins, 128 B of nibbles (chunk c = 32 bytes: values
// 64c + l low nibble of byte l, 64c + 32 + l high nibble). Lane t owns chunk t (sub-blocks 2t, 2t+1).
struct Q4KTile {
  static constexpr int kBlockBytes = 144;
  static constexpr bool kUnaligned = false;
  static constexpr int kCopyChunks = 9;
  static constexpr int kStageRowBytes = 144;
  static constexpr bool kNormalize = false;
  static constexpr int kNormWords = 0;
  static constexpr int kRowBytes = 144;  // 36 words: rows 4 banks apart

  struct Scales {
    __half2 dsc, neg_dm;  // d * sc and -(dmin * m) of sub-block 2t + hb
  };
  struct Words {
    uint4 qs;
  };

  __device__ static Scales load_scales(const uint8_t* row, int t, int hb) {
    const uint4 header = *reinterpret_cast<const uint4*>(row);
    const qblk::Q4KScales s = qblk::q4k_chunk_scales(header, t);
    const float d = qblk::half_bits_to_float(header.x), dmin = qblk::half_bits_to_float(header.x >> 16);
    return {__float2half2_rn(d * float(hb ? s.sc1 : s.sc0)), __float2half2_rn(-(dmin * float(hb ? s.m1 : s.m0)))};
  }
  __device__ static Words load_words(const uint8_t* row, int t, int w4, int hb) {
    (void)hb;  // one byte holds both halves' nibbles
    return {*reinterpret_cast<const uint4*>(row + 16 + 32 * t + 16 * w4)};
  }
  __device__ static void dequant(int hb, int w4, int ww, const Words& w, const Scales& s, int t, uint32_t& slot0,
                                 uint32_t& slot1) {
    (void)w4;
    (void)t;
    const uint32_t q = word_of(w.qs, ww);
    __half2 v0, v1;
    if (hb == 0) {
      v0 = q_from_1024((q & 0x000F000Fu) | kH2_1024, kH2_1024);
      v1 = q_from_1024(((q >> 8) & 0x000F000Fu) | kH2_1024, kH2_1024);
    } else {
      v0 = q_from_1024_x16((q & 0x00F000F0u) | kH2_1024);
      v1 = q_from_1024_x16(((q >> 8) & 0x00F000F0u) | kH2_1024);
    }
    slot0 = as_u32(__hfma2(v0, s.dsc, s.neg_dm));
    slot1 = as_u32(__hfma2(v1, s.dsc, s.neg_dm));
  }
};

// Q5_K: 176 B = d, dmin, 12 B scales (as Q4_K), qh[32] at 16, qs[128] at 48. Bit 4 of value
// 64c + l is bit 2c of qh[l], of value 64c + 32 + l bit 2c + 1. Lane t owns chunk t as in Q4_K.
struct Q5KTile {
  static constexpr int kBlockBytes = 176;
  static constexpr bool kUnaligned = false;
  static constexpr int kCopyChunks = 11;
  static constexpr int kStageRowBytes = 176;
  static constexpr bool kNormalize = false;
  static constexpr int kNormWords = 0;
  static constexpr int kRowBytes = 176;  // 44 words = 12 mod 32

  using Scales = Q4KTile::Scales;
  struct Words {
    uint4 qs, qh;
  };

  __device__ static Scales load_scales(const uint8_t* row, int t, int hb) { return Q4KTile::load_scales(row, t, hb); }
  __device__ static Words load_words(const uint8_t* row, int t, int w4, int hb) {
    (void)hb;
    return {*reinterpret_cast<const uint4*>(row + 48 + 32 * t + 16 * w4),
            *reinterpret_cast<const uint4*>(row + 16 + 16 * w4)};
  }
  __device__ static void dequant(int hb, int w4, int ww, const Words& w, const Scales& s, int t, uint32_t& slot0,
                                 uint32_t& slot1) {
    (void)w4;
    const uint32_t q = word_of(w.qs, ww);
    const uint32_t h = word_of(w.qh, ww) >> (2 * t + hb);  // bit 4 of bytes 0..3 now at bits 0, 8, 16, 24
    __half2 v0, v1;
    if (hb == 0) {
      v0 = q_from_1024((q & 0x000F000Fu) | ((h & 0x00010001u) << 4) | kH2_1024, kH2_1024);
      v1 = q_from_1024(((q >> 8) & 0x000F000Fu) | (((h >> 8) & 0x00010001u) << 4) | kH2_1024, kH2_1024);
    } else {
      v0 = q_from_1024_x16((q & 0x00F000F0u) | ((h & 0x00010001u) << 8) | kH2_1024);
      v1 = q_from_1024_x16(((q >> 8) & 0x00F000F0u) | (((h >> 8) & 0x00010001u) << 8) | kH2_1024);
    }
    slot0 = as_u32(__hfma2(v0, s.dsc, s.neg_dm));
    slot1 = as_u32(__hfma2(v1, s.dsc, s.neg_dm));
  }
};

// Q6_K: 210 B = ql[128], qh[64] at 128, int8 scales[16] at 192, d at 208; only 2-byte aligned in
// a row, so each stage copies the aligned 224-byte window around the block and the kernel
// shifts it to offset 0 (normalize). Value 128h + 32g + l (l < 32): low 4 bits from
// ql[64h + 32 (g & 1) + l] (low nibble for g < 2), high 2 bits = bits 2g..2g+1 of qh[32h + l],
// scale scales[8h + 2g + l / 16]. Lane t owns values 64t..64t+63: h = t / 2, g = 2 (t % 2) + hb,
// so it reads ql[64h + 32 hb + l] (nibble t % 2), qh[32h + l] and scales[4t + 2 hb + l / 16].
struct Q6KTile {
  static constexpr int kBlockBytes = 210;
  static constexpr bool kUnaligned = true;
  static constexpr int kCopyChunks = 14;      // 224 B >= 210 + the largest misalignment (14)
  static constexpr int kStageRowBytes = 240;  // + 16 B so the realigning reads stay in the row
  static constexpr bool kNormalize = true;
  static constexpr int kNormWords = 53;  // 212 B >= 210
  static constexpr int kRowBytes = 240;  // 60 words = 28 mod 32

  struct Scales {
    __half2 dsc[2];  // [w4]: d * scales[4t + 2 hb + w4]
  };
  struct Words {
    uint4 ql, qh;
  };

  // Normalized word k of a row: bytes [off + 4k, off + 4k + 4) of the copied window.
  __device__ static void normalize(const uint8_t* stage_row, int off, int k, uint8_t* row) {
    reinterpret_cast<uint32_t*>(row)[k] = lds_u32_a2(stage_row + off + 4 * k);
  }
  __device__ static Scales load_scales(const uint8_t* row, int t, int hb) {
    const uint32_t sc = *reinterpret_cast<const uint16_t*>(row + 192 + 4 * t + 2 * hb);
    const float d = qblk::half_bits_to_float(*reinterpret_cast<const uint16_t*>(row + 208));
    return {{__float2half2_rn(d * float(static_cast<int8_t>(sc & 0xffu))),
             __float2half2_rn(d * float(static_cast<int8_t>(sc >> 8)))}};
  }
  __device__ static Words load_words(const uint8_t* row, int t, int w4, int hb) {
    const int h = t >> 1;
    return {*reinterpret_cast<const uint4*>(row + 64 * h + 32 * hb + 16 * w4),
            *reinterpret_cast<const uint4*>(row + 128 + 32 * h + 16 * w4)};
  }
  __device__ static void dequant(int hb, int w4, int ww, const Words& w, const Scales& s, int t, uint32_t& slot0,
                                 uint32_t& slot1) {
    const int odd = t & 1;
    const uint32_t lo = (word_of(w.ql, ww) >> (4 * odd)) & 0x0F0F0F0Fu;
    const uint32_t hi = ((word_of(w.qh, ww) >> (4 * odd + 2 * hb)) & 0x03030303u) << 4;
    const uint32_t q = lo | hi;  // 4 six-bit values, one per byte
    const __half2 v0 = q_from_1024((q & 0x00FF00FFu) | kH2_1024, kH2_1056);  // q - 32
    const __half2 v1 = q_from_1024(((q >> 8) & 0x00FF00FFu) | kH2_1024, kH2_1056);
    const __half2 dsc = w4 ? s.dsc[1] : s.dsc[0];  // w4 may be a run-time value
    slot0 = as_u32(__hmul2(v0, dsc));
    slot1 = as_u32(__hmul2(v1, dsc));
  }
};

// Q8_0: 8 blocks of 34 B (f16 d, 32 int8) per 256 values; the row is 16-byte aligned but each
// block's quants only 2-byte aligned, so each stage row is rewritten as: quants of block
// 2t + hb, word w at byte 128 hb + 64 (w / 4) + 16 t + 4 (w % 4) (lanes 0..3 read 64 contiguous
// bytes), then the 8 f16 d's at 256. Lane t owns blocks 2t, 2t + 1.
struct Q8_0Tile {
  static constexpr int kBlockBytes = 272;
  static constexpr bool kUnaligned = false;
  static constexpr int kCopyChunks = 17;
  static constexpr int kStageRowBytes = 272;
  static constexpr bool kNormalize = true;
  static constexpr int kNormWords = 68;  // 64 quant words + 4 words of d pairs
  static constexpr int kRowBytes = 320;  // 80 words = 16 mod 32: the 64 contiguous bytes lanes
                                         // 0..3 read of row g and of row g + 1 use disjoint banks

  struct Scales {
    __half2 d;  // d of block 2t + hb
  };
  struct Words {
    uint4 q;
  };

  __device__ static void normalize(const uint8_t* stage_row, int off, int k, uint8_t* row) {
    (void)off;
    uint32_t* out = reinterpret_cast<uint32_t*>(row);
    if (k < 64) {
      const int b = k / 8, w = k % 8;
      out[32 * (b % 2) + 16 * (w / 4) + 4 * (b / 2) + w % 4] = lds_u32_a2(stage_row + 34 * b + 2 + 4 * w);
    } else {
      const int j = k - 64;  // d of blocks 2j and 2j + 1
      const uint32_t d0 = *reinterpret_cast<const uint16_t*>(stage_row + 68 * j);
      const uint32_t d1 = *reinterpret_cast<const uint16_t*>(stage_row + 68 * j + 34);
      out[64 + j] = d0 | (d1 << 16);
    }
  }
  __device__ static Scales load_scales(const uint8_t* row, int t, int hb) {
    const uint32_t d = *reinterpret_cast<const uint16_t*>(row + 256 + 4 * t + 2 * hb);
    return {as_half2(d | (d << 16))};
  }
  __device__ static Words load_words(const uint8_t* row, int t, int w4, int hb) {
    return {*reinterpret_cast<const uint4*>(row + 128 * hb + 64 * w4 + 16 * t)};
  }
  __device__ static void dequant(int hb, int w4, int ww, const Words& w, const Scales& s, int t, uint32_t& slot0,
                                 uint32_t& slot1) {
    (void)w4;
    (void)t;
    const uint32_t q = word_of(w.q, ww) ^ 0x80808080u;  // int8 -> q + 128 in 0..255
    const __half2 v0 = q_from_1024((q & 0x00FF00FFu) | kH2_1024, kH2_1152);
    const __half2 v1 = q_from_1024(((q >> 8) & 0x00FF00FFu) | kH2_1024, kH2_1152);
    slot0 = as_u32(__hmul2(v0, s.d));
    slot1 = as_u32(__hmul2(v1, s.d));
  }
};

// ---------------------------------------------------------------------------- the kernel
// Warp tile: WM m16 tiles (rows) x WN n8 tiles (tokens); WARPS_M x WARPS_N warps per CTA.
template <int WM_, int WN_, int WARPS_M_, int WARPS_N_, int STAGES_, int MIN_BLOCKS_>
struct TileConfig {
  static constexpr int WM = WM_, WN = WN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, STAGES = STAGES_;
  static constexpr int kMinBlocks = MIN_BLOCKS_;
  static constexpr int BM = WARPS_M * WM * 16;
  static constexpr int BN = WARPS_N * WN * 8;
  static constexpr int kThreads = 32 * WARPS_M * WARPS_N;
  static_assert(WN % 2 == 0, "B fragments are loaded two n8 tiles per ldmatrix.x4");
  static_assert(STAGES >= 2, "the pipeline needs at least two stages");
};

template <class Tile, class Cfg>
struct SmemLayout {
  static constexpr int kWeightStage = Cfg::BM * Tile::kStageRowBytes;
  static constexpr int kActStage = Cfg::BN * kActRowBytes;
  static constexpr int kStage = kWeightStage + kActStage;
  static constexpr int kNorm = Tile::kNormalize ? Cfg::BM * Tile::kRowBytes : 0;
  static constexpr int kBytes = Cfg::STAGES * kStage + kNorm;
  static constexpr bool kFits = kBytes <= kMaxSmemBytes;
  static_assert(Tile::kNormalize || Tile::kRowBytes == Tile::kStageRowBytes, "warps read the stage rows directly");
  static_assert(kWeightStage % 16 == 0 && kActStage % 16 == 0 && kNorm % 16 == 0, "16-byte aligned regions");
};

struct KernelArgs {
  const uint8_t* weight;  // row 0, super-block 0
  int64_t row_stride;     // bytes
  int out;                // rows
  const __half* x16;      // permuted f16 activations [n][in]
  int64_t in;             // elements per token (x16 row stride)
  int n;                  // tokens
  float* y;
  int64_t y_stride;
  int k_tiles;            // in / 256
  int k_tiles_per_split;  // super-blocks per CTA along k (gridDim.z CTAs share a tile)
  float* partials;        // split-K partial tiles (gridDim.z > 1)
  unsigned* counters;     // one per tile, zeroed by the converter (gridDim.z > 1)
};

// grid: x = token tiles, y = row tiles (so the CTAs sharing one weight tile run together and
// re-read it from L2), z = k splits.
template <class Tile, class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) gemm_mma_kernel(const KernelArgs a) {
  using L = SmemLayout<Tile, Cfg>;
  constexpr int WM = Cfg::WM, WN = Cfg::WN, BM = Cfg::BM, BN = Cfg::BN, kThreads = Cfg::kThreads;
  constexpr int STAGES = Cfg::STAGES;
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ unsigned s_is_last;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int warp_m = warp % Cfg::WARPS_M, warp_n = warp / Cfg::WARPS_M;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int kt0 = blockIdx.z * a.k_tiles_per_split;
  const int nk = min(a.k_tiles_per_split, a.k_tiles - kt0);  // >= 1 by the launcher's plan
  const uint8_t* const weight_end = a.weight + int64_t(a.out - 1) * a.row_stride + int64_t(a.k_tiles) * Tile::kBlockBytes;

  auto weight_stage = [&](int s) { return smem + s * L::kStage; };
  auto act_stage = [&](int s) { return smem + s * L::kStage + L::kWeightStage; };
  uint8_t* const norm = smem + STAGES * L::kStage;

  // Global address of row r's (tile-relative, clamped to the last row) super-block kt.
  auto block_src = [&](int r, int kt) {
    const int row = min(m0 + r, a.out - 1);
    return a.weight + int64_t(row) * a.row_stride + int64_t(kt) * Tile::kBlockBytes;
  };

  auto load_stage = [&](int s, int kt) {
    const uint32_t wdst = smem_addr(weight_stage(s));
#pragma unroll 4
    for (int c = tid; c < BM * Tile::kCopyChunks; c += kThreads) {
      const int r = c / Tile::kCopyChunks, q = c % Tile::kCopyChunks;
      const uint8_t* src = block_src(r, kt);
      const uint32_t dst = wdst + r * Tile::kStageRowBytes + 16 * q;
      if constexpr (Tile::kUnaligned) {
        const uint8_t* chunk = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(src) & ~uintptr_t(15)) + 16 * q;
        const int64_t left = weight_end - chunk;  // only the matrix's last row can run out
        cp_async_16_zfill(dst, left > 0 ? chunk : src, left >= 16 ? 16u : left > 0 ? uint32_t(left) : 0u);
      } else {
        cp_async_16(dst, src + 16 * q);
      }
    }
    const uint32_t adst = smem_addr(act_stage(s));
#pragma unroll 4
    for (int c = tid; c < BN * (kTileK / 8); c += kThreads) {
      const int r = c / (kTileK / 8), q = c % (kTileK / 8);
      const int tok = min(n0 + r, a.n - 1);  // tokens past n re-read the last one; never stored
      cp_async_16(adst + r * kActRowBytes + 16 * q, a.x16 + int64_t(tok) * a.in + int64_t(kt) * kTileK + 8 * q);
    }
  };

  float acc[WM][WN][4];
#pragma unroll
  for (int i = 0; i < WM; ++i)
#pragma unroll
    for (int j = 0; j < WN; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.0f;

  // This lane's ldmatrix row address within an activation stage: token row (lane & 7) + 8 (lane >> 4)
  // of the warp's first n16 pair, k offset 8 ((lane >> 3) & 1).
  const uint32_t act_lane_off =
      (warp_n * WN * 8 + (lane & 7) + ((lane >> 4) << 3)) * kActRowBytes + ((lane >> 3) & 1) * 16;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < nk) load_stage(s, kt0 + s);
    cp_async_commit();
  }

  for (int it = 0; it < nk; ++it) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // stage `it` visible to all; everyone is done with the slot refilled next
    if (it + STAGES - 1 < nk) load_stage((it + STAGES - 1) % STAGES, kt0 + it + STAGES - 1);
    cp_async_commit();

    const int slot = it % STAGES;
    const uint8_t* rows = weight_stage(slot);
    if constexpr (Tile::kNormalize) {
      const uint8_t* stage = weight_stage(slot);
      for (int c = tid; c < BM * Tile::kNormWords; c += kThreads) {
        const int r = c / Tile::kNormWords, k = c % Tile::kNormWords;
        const int off = Tile::kUnaligned ? int(reinterpret_cast<uintptr_t>(block_src(r, kt0 + it)) & 15) : 0;
        Tile::normalize(stage + r * Tile::kStageRowBytes, off, k, norm + r * Tile::kRowBytes);
      }
      __syncthreads();
      rows = norm;
    }

    // Per warp: WM m16 tiles of rows, WN n8 tiles of tokens, the 16 k16 steps of the super-block
    // visited half by half (hb), so only one half's scales and quants are live at a time.
    const uint8_t* row_ptr[WM][2];
#pragma unroll
    for (int i = 0; i < WM; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) row_ptr[i][h] = rows + (warp_m * WM * 16 + i * 16 + g + 8 * h) * Tile::kRowBytes;
    const uint32_t act_base = smem_addr(act_stage(slot)) + act_lane_off;

#pragma unroll
    for (int hb = 0; hb < 2; ++hb) {
      typename Tile::Scales sc[WM][2];
#pragma unroll
      for (int i = 0; i < WM; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) sc[i][h] = Tile::load_scales(row_ptr[i][h], t, hb);
      // Not unrolled: bounds how far ptxas hoists the next words' loads (the 64 x 64 warp tile
      // spilled when all 16 steps were unrolled); w4 only moves addresses.
#pragma unroll 1
      for (int w4 = 0; w4 < 2; ++w4) {
        typename Tile::Words wd[WM][2];
#pragma unroll
        for (int i = 0; i < WM; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h) wd[i][h] = Tile::load_words(row_ptr[i][h], t, w4, hb);
#pragma unroll
        for (int ww = 0; ww < 4; ++ww) {
          const int step = 2 * (4 * w4 + ww) + hb;
          uint32_t b[WN][2];
#pragma unroll
          for (int j2 = 0; j2 < WN / 2; ++j2)
            ldmatrix_x4(act_base + j2 * 16 * kActRowBytes + step * 32, b[2 * j2][0], b[2 * j2][1], b[2 * j2 + 1][0],
                        b[2 * j2 + 1][1]);
#pragma unroll
          for (int i = 0; i < WM; ++i) {
            uint32_t af[4];
            Tile::dequant(hb, w4, ww, wd[i][0], sc[i][0], t, af[0], af[2]);  // row g
            Tile::dequant(hb, w4, ww, wd[i][1], sc[i][1], t, af[1], af[3]);  // row g + 8
#pragma unroll
            for (int j = 0; j < WN; ++j) mma_f16_f32(acc[i][j], af, b[j][0], b[j][1]);
          }
        }
      }
    }
  }
  cp_async_wait<0>();

  // ---- epilogue
  const int row_base = m0 + warp_m * WM * 16 + g;
  const int tok_base = n0 + warp_n * WN * 8 + 2 * t;
  auto store = [&]() {
#pragma unroll
    for (int i = 0; i < WM; ++i)
#pragma unroll
      for (int j = 0; j < WN; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int row = row_base + i * 16 + 8 * (c >> 1), tok = tok_base + j * 8 + (c & 1);
          if (row < a.out && tok < a.n) a.y[int64_t(tok) * a.y_stride + row] = acc[i][j][c];
        }
  };
  if (gridDim.z == 1) {
    store();
    return;
  }

  // Split k: write this CTA's partial tile (fragment order, coalesced float4 per thread), count
  // arrivals; the last CTA of the tile sums all partials in split order and stores.
  const int tile = blockIdx.y * gridDim.x + blockIdx.x;
  const int splits = gridDim.z;
  float4* part = reinterpret_cast<float4*>(a.partials) + (int64_t(tile) * splits + blockIdx.z) * (WM * WN * kThreads) + tid;
#pragma unroll
  for (int i = 0; i < WM; ++i)
#pragma unroll
    for (int j = 0; j < WN; ++j)
      __stcg(part + (i * WN + j) * kThreads, make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3]));
  __threadfence();
  __syncthreads();
  if (tid == 0) s_is_last = atomicAdd(a.counters + tile, 1u) == unsigned(splits - 1) ? 1u : 0u;
  __syncthreads();
  if (!s_is_last) return;
  __threadfence();
#pragma unroll
  for (int i = 0; i < WM; ++i)
#pragma unroll
    for (int j = 0; j < WN; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.0f;
  const float4* parts = reinterpret_cast<const float4*>(a.partials) + int64_t(tile) * splits * (WM * WN * kThreads) + tid;
  for (int z = 0; z < splits; ++z) {
#pragma unroll
    for (int i = 0; i < WM; ++i)
#pragma unroll
      for (int j = 0; j < WN; ++j) {
        const float4 v = __ldcg(parts + (int64_t(z) * (WM * WN) + i * WN + j) * kThreads);
        acc[i][j][0] += v.x;
        acc[i][j][1] += v.y;
        acc[i][j][2] += v.z;
        acc[i][j][3] += v.w;
      }
  }
  store();
}

// ---------------------------------------------------------------------------- dispatch
// The tile configurations every type instantiates (same index = same tiles for every type).
// Index, name, and why it exists:
//   0 m64n32   small n (<= 32): 64 x 32 tiles, 3 stages, 2+ CTAs per SM
//   1 m64n64   n ~ 64 on narrow matrices: more tiles than m128
//   2 m128n64  n ~ 64..128: 128 x 64, 2 CTAs per SM
//   3 m128n128 large n
//   4 m256n128 large n, half the activation traffic per flop of m128n128 (1 CTA per SM)
//   5 m128n32  small n: half the activation re-reads of m64n32 (the 32 x 512 B activation tile
//              outweighs a 64-row weight tile), filled up with k splits
using Config0 = TileConfig<1, 4, 4, 1, 3, 2>;
using Config1 = TileConfig<1, 8, 4, 1, 2, 2>;
using Config2 = TileConfig<2, 8, 4, 1, 2, 2>;
using Config3 = TileConfig<2, 8, 4, 2, 2, 1>;
using Config4 = TileConfig<4, 8, 4, 2, 2, 1>;
using Config5 = TileConfig<2, 4, 4, 1, 3, 2>;
constexpr int kConfigCount = 6;

// What the launcher needs to know about one instantiation.
struct KernelSpec {
  const void* fn = nullptr;  // nullptr: this config does not fit this type (shared memory)
  int threads = 0, smem_bytes = 0, bm = 0, bn = 0;
};

template <class Tile, class Cfg>
KernelSpec spec_of() {
  using L = SmemLayout<Tile, Cfg>;
  KernelSpec s;
  if constexpr (L::kFits) s.fn = reinterpret_cast<const void*>(&gemm_mma_kernel<Tile, Cfg>);
  s.threads = Cfg::kThreads;
  s.smem_bytes = L::kBytes;
  s.bm = Cfg::BM;
  s.bn = Cfg::BN;
  return s;
}

template <class Tile>
void fill_specs(KernelSpec (&out)[kConfigCount]) {
  out[0] = spec_of<Tile, Config0>();
  out[1] = spec_of<Tile, Config1>();
  out[2] = spec_of<Tile, Config2>();
  out[3] = spec_of<Tile, Config3>();
  out[4] = spec_of<Tile, Config4>();
  out[5] = spec_of<Tile, Config5>();
}

// Per-type tables (one .cu each).
void q4k_specs(KernelSpec (&out)[kConfigCount]);
void q5k_specs(KernelSpec (&out)[kConfigCount]);
void q6k_specs(KernelSpec (&out)[kConfigCount]);
void q8_0_specs(KernelSpec (&out)[kConfigCount]);

}  // namespace anvil::cuda::gemm_detail
