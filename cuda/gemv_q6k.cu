// Q6_K GEMV: the slot policy for cuda/gemv_kernel.cuh, and the fragment policy for
// cuda/gemv_mma_kernel.cuh (6..8 tokens on tensor cores, use_mma_kernel_q6k).
//
// A 210-byte Q6_K block: ql (128 B of low nibbles), qh (64 B of 2-bit highs), 16 int8 scales
// (one per 16 values), f16 d. Slot p (0..7) takes half h = p / 4 and positions
// l = 8 (p % 4) + 0..7 of that half's four 32-value groups g: 32 values, from 8 bytes of
// ql[64h + l], 8 of ql[64h + 32 + l] and 8 of qh[32h + l]. Each group's 8 values lie in one
// 16-value scale sub-block (8h + 2g + l / 16). Blocks are 210 bytes, so a row's fields are only
// 2-byte aligned: the slices are read with 16-bit loads (the same sectors as wider loads).
//   sum_i w_i x_i = d sum_g sc_g da_g ((q - 32) . qa)_g
#include "cuda/gemv_kernel.cuh"
#include "cuda/gemv_mma_kernel.cuh"
#include "cuda/quant_blocks.cuh"

namespace anvil::cuda::gemv_detail {
namespace {

struct Q6KSlot {
  static constexpr bool kDeepRounds = false;  // cuda/gemv_kernel.cuh's kRoundSlices
  static constexpr int kSlots = 8;
  static constexpr int kBytes = qblk::kQ6KBytes;

  struct Raw {
    uint32_t a[2], b[2], h[2];  // ql[64h + l..], ql[64h + 32 + l..], qh[32h + l..]
    uint32_t sc[2];             // scales[8h .. 8h + 7]
    uint32_t d;
  };
  struct Weights {
    int q[4][2];   // group g: 8 values of q - 32 as int8 lanes
    float dsc[4];  // d * scale of group g
  };
  struct Acts {
    uint2 q[4];     // 8 activation quants of group g
    float4 ds01, ds23;  // (da, sa) of activation blocks 4 (2b + h) + g
  };

  __device__ static Raw load(const uint8_t* blk, int part) {
    const int h = part / 4, l = 8 * (part % 4);
    const uint8_t* ql = blk + 64 * h + l;
    const uint8_t* qh = blk + 128 + 32 * h + l;
    const uint8_t* sc = blk + 192 + 8 * h;
    Raw r;
    r.a[0] = qblk::load_u32_a2(ql);
    r.a[1] = qblk::load_u32_a2(ql + 4);
    r.b[0] = qblk::load_u32_a2(ql + 32);
    r.b[1] = qblk::load_u32_a2(ql + 36);
    r.h[0] = qblk::load_u32_a2(qh);
    r.h[1] = qblk::load_u32_a2(qh + 4);
    r.sc[0] = qblk::load_u32_a2(sc);
    r.sc[1] = qblk::load_u32_a2(sc + 4);
    r.d = qblk::load_u16(blk + 208);
    return r;
  }

  __device__ static Weights decode(const Raw& r, int part) {
    const float d = qblk::half_bits_to_float(r.d);
    const int k = (part % 4) / 2;  // l / 16: which of the two scales of a group's 32 values
    Weights w;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      w.q[0][i] = qblk::q6k_group_word<0>(r.a[i], r.b[i], r.h[i]);
      w.q[1][i] = qblk::q6k_group_word<1>(r.a[i], r.b[i], r.h[i]);
      w.q[2][i] = qblk::q6k_group_word<2>(r.a[i], r.b[i], r.h[i]);
      w.q[3][i] = qblk::q6k_group_word<3>(r.a[i], r.b[i], r.h[i]);
    }
    // scale of group g = byte 2g + k of the half's 8 scales
#pragma unroll
    for (int g = 0; g < 4; ++g)
      w.dsc[g] = d * float(static_cast<int8_t>(qblk::byte_of(r.sc[g / 2], 2 * (g % 2) + k)));
    return w;
  }

  __device__ static Acts load_acts(const ActQ8& act, int t, int b, int part) {
    const int h = part / 4, l = 8 * (part % 4);
    const int8_t* q = act.q + t * act.in + int64_t(b) * 256 + 128 * h + l;
    const float2* ds = act.ds + t * (act.in / 32) + int64_t(b) * 8 + 4 * h;
    Acts x;
#pragma unroll
    for (int g = 0; g < 4; ++g) x.q[g] = *reinterpret_cast<const uint2*>(q + 32 * g);
    x.ds01 = *reinterpret_cast<const float4*>(ds);
    x.ds23 = *reinterpret_cast<const float4*>(ds + 2);
    return x;
  }

  __device__ static float dot(const Weights& w, const Acts& x) {
    const float da[4] = {x.ds01.x, x.ds01.z, x.ds23.x, x.ds23.z};
    float sum = 0.0f;
#pragma unroll
    for (int g = 0; g < 4; ++g) {
      const int s = __dp4a(w.q[g][1], int(x.q[g].y), __dp4a(w.q[g][0], int(x.q[g].x), 0));
      sum += w.dsc[g] * da[g] * float(s);
    }
    return sum;
  }
};

// cuda/gemv_mma_kernel.cuh with one mma.m16n8k16 (s8 x s8) per 16-value scale group j = 8h + 2q + p
// (half h, quarter q of Q6KSlot's layout, p = which 16 of the quarter's 32): values
// 128h + 32q + 16p + i, i = 0..15; lane t takes i = 4t..4t+3 (mma's k 4t..4t+3), i.e. the words at
// l = 16p + 4t of ql[64h + l] (A), ql[64h + 32 + l] (B) and qh[32h + l] (H), and scale byte j.
// Blocks are only 2-byte aligned, so words are read as two 16-bit loads (as Q6KSlot does).
struct Q6KMmaPolicy {
  static constexpr int kBytes = qblk::kQ6KBytes;
  struct Raw {
    uint32_t a[4], b[4], h[4];  // index 2h + p
    uint32_t sc[4];             // the 16 int8 scales
    uint32_t d;
  };
  __device__ static Raw load(const uint8_t* blk, int t) {
    Raw r;
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        const int l = 16 * p + 4 * t;
        r.a[2 * h + p] = qblk::load_u32_a2(blk + 64 * h + l);
        r.b[2 * h + p] = qblk::load_u32_a2(blk + 64 * h + 32 + l);
        r.h[2 * h + p] = qblk::load_u32_a2(blk + 128 + 32 * h + l);
      }
#pragma unroll
    for (int i = 0; i < 4; ++i) r.sc[i] = qblk::load_u32_a2(blk + 192 + 4 * i);
    r.d = qblk::load_u16(blk + 208);
    return r;
  }
  template <int Q>
  __device__ static uint32_t quants(const Raw& r, int w) {
    return uint32_t(qblk::q6k_group_word<Q>(r.a[w], r.b[w], r.h[w]));
  }
  __device__ static float scale(const Raw& r, int j) {
    return float(static_cast<int8_t>(qblk::byte_of(r.sc[j / 4], j % 4)));
  }
  __device__ static void accumulate(const Raw& ra, const Raw& rb, const MmaActs& x, int b, float (&acc)[4]) {
    float s[4] = {0.f, 0.f, 0.f, 0.f};
    const auto group = [&]<int Q>(int h, int p) {
      const int w = 2 * h + p, j = 8 * h + 2 * Q + p;
      const int64_t k0 = int64_t(b) * 256 + 128 * h + 32 * Q + 16 * p;
      const uint32_t xv = x.has_token ? __ldg(reinterpret_cast<const uint32_t*>(x.xg + k0 + 4 * x.t)) : 0u;
      int r[4];
      mma_s8s8_16816(r, quants<Q>(ra, w), quants<Q>(rb, w), xv);
      const int64_t blk32 = k0 / 32;  // the activation block (32 values) holding the group
      const float da0 = __ldg(x.ds0 + blk32).x, da1 = __ldg(x.ds1 + blk32).x;
      const float sa = scale(ra, j), sb = scale(rb, j);
      s[0] = fmaf(sa * da0, float(r[0]), s[0]);
      s[1] = fmaf(sa * da1, float(r[1]), s[1]);
      s[2] = fmaf(sb * da0, float(r[2]), s[2]);
      s[3] = fmaf(sb * da1, float(r[3]), s[3]);
    };
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        group.template operator()<0>(h, p);
        group.template operator()<1>(h, p);
        group.template operator()<2>(h, p);
        group.template operator()<3>(h, p);
      }
    const float da = qblk::half_bits_to_float(ra.d), db = qblk::half_bits_to_float(rb.d);
    acc[0] = fmaf(da, s[0], acc[0]);
    acc[1] = fmaf(da, s[1], acc[1]);
    acc[2] = fmaf(db, s[2], acc[2]);
    acc[3] = fmaf(db, s[3], acc[3]);
  }
};

}  // namespace

Status launch_q6k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  if (use_mma_kernel_q6k(n)) return launch_mma<Q6KMmaPolicy>(a, n, stream);
  return launch_slots<Q6KSlot>(a, n, rows_per_warp, stream);
}

}  // namespace anvil::cuda::gemv_detail
