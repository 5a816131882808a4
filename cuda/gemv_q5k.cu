// Q5_K GEMV: the slot policy for cuda/gemv_kernel.cuh (several tokens), the lane policy for
// cuda/gemv_kquant_kernel.cuh (one token) and the fragment policy for cuda/gemv_mma_kernel.cuh
// (2..8 tokens on tensor cores); use_kquant_kernel / use_mma_kernel in cuda/gemv.cu choose.
//
// A 176-byte Q5_K block is Q4_K's 16-byte header (d, dmin, 12 bytes of 6-bit scales/mins), then
// qh (32 bytes: bit 2c of qh[l] is bit 4 of value 64c + l, bit 2c + 1 that of 64c + 32 + l),
// then the 128 bytes of nibbles in Q4_K's order. 176 = 11 x 16, so with 16-byte aligned rows
// every field is 16-byte aligned. Slot p (0..7) is Q4_K's slot: chunk c = p / 2, positions
// l = 16 (p % 2) + 0..15, i.e. qs bytes 16p..16p+15 (16 values each of sub-blocks 2c and
// 2c + 1), plus the matching qh bytes 16 (p % 2)..+15. Three aligned 16-byte loads per slot
// (header, qh, qs); the header and qh loads of a block's slots hit the same lines.
//
// With activation block j (32 values, scale da_j, sa_j = da_j * sum q_j), exactly as Q4_K:
//   sum_i w_i x_i = d sc_j da_j (q . qa)_j - dmin m_j sa_j
// with q in 0..31 (still positive int8 lanes for dp4a); the two slots sharing sub-block j each
// add half of the min term.
#include "cuda/gemv_kernel.cuh"
#include "cuda/gemv_kquant_kernel.cuh"
#include "cuda/gemv_mma_kernel.cuh"
#include "cuda/quant_blocks.cuh"

namespace anvil::cuda::gemv_detail {
namespace {

struct Q5KSlot {
  static constexpr bool kDeepRounds = true;  // cuda/gemv_kernel.cuh's kRoundSlices
  static constexpr int kSlots = 8;
  static constexpr int kBytes = qblk::kQ5KBytes;

  struct Raw {
    uint4 header, qh, qs;
  };
  struct Weights {
    int lo[4], hi[4];          // 5-bit quants of sub-blocks 2c, 2c + 1 as int8 lanes
    float dsc0, dsc1;          // d * scale
    float half_dm0, half_dm1;  // dmin * min / 2 (see the file comment)
  };
  struct Acts {
    int4 q0, q1;  // the 16 activation quants matching lo / hi
    float4 ds;    // (da, sa) of activation blocks 2c and 2c + 1
  };

  __device__ static Raw load(const uint8_t* blk, int part) {
    return {qblk::load_16(blk), qblk::load_16(blk + 16 + 16 * (part % 2)), qblk::load_16(blk + 48 + 16 * part)};
  }

  __device__ static Weights decode(const Raw& r, int part) {
    const int c = part / 2;
    const qblk::Q4KScales s = qblk::q4k_chunk_scales(r.header, c);
    const float d = qblk::half_bits_to_float(r.header.x), dmin = qblk::half_bits_to_float(r.header.x >> 16);
    Weights w;
    const uint32_t qs[4] = {r.qs.x, r.qs.y, r.qs.z, r.qs.w};
    const uint32_t qh[4] = {r.qh.x, r.qh.y, r.qh.z, r.qh.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w.lo[i] = qblk::q5k_with_high_bits(qblk::low_nibbles(qs[i]), qh[i], 2 * c);
      w.hi[i] = qblk::q5k_with_high_bits(qblk::high_nibbles(qs[i]), qh[i], 2 * c + 1);
    }
    w.dsc0 = d * float(s.sc0);
    w.dsc1 = d * float(s.sc1);
    w.half_dm0 = 0.5f * dmin * float(s.m0);
    w.half_dm1 = 0.5f * dmin * float(s.m1);
    return w;
  }

  // The same activation slice as Q4_K's slot p (the value order of the two types is the same).
  __device__ static Acts load_acts(const ActQ8& act, int t, int b, int part) {
    const int c = part / 2;
    const int8_t* q = act.q + t * act.in + int64_t(b) * 256 + 64 * c + 16 * (part % 2);
    const float2* ds = act.ds + t * (act.in / 32) + int64_t(b) * 8 + 2 * c;
    return {*reinterpret_cast<const int4*>(q), *reinterpret_cast<const int4*>(q + 32),
            *reinterpret_cast<const float4*>(ds)};
  }

  __device__ static float dot(const Weights& w, const Acts& x) {
    int d0 = __dp4a(w.lo[0], x.q0.x, 0);
    d0 = __dp4a(w.lo[1], x.q0.y, d0);
    d0 = __dp4a(w.lo[2], x.q0.z, d0);
    d0 = __dp4a(w.lo[3], x.q0.w, d0);
    int d1 = __dp4a(w.hi[0], x.q1.x, 0);
    d1 = __dp4a(w.hi[1], x.q1.y, d1);
    d1 = __dp4a(w.hi[2], x.q1.z, d1);
    d1 = __dp4a(w.hi[3], x.q1.w, d1);
    return w.dsc0 * x.ds.x * float(d0) + w.dsc1 * x.ds.z * float(d1) - (w.half_dm0 * x.ds.y + w.half_dm1 * x.ds.w);
  }
};

// cuda/gemv_kquant_kernel.cuh's policy: lane i of a block loads the header, qh bytes
// 16 (i % 2)..+15 (the fifth bits of both its qs halves: chunks c0 = i / 2 and c0 + 2 use bits
// 2 c0, 2 c0 + 1 and 2 c0 + 4, 2 c0 + 5 of the same bytes) and qs bytes 16i..16i+15, 64+16i..+15.
struct Q5KPolicy {
  static constexpr int kBytes = qblk::kQ5KBytes;
  static constexpr int kHighShift = 0;
  struct Raw {
    uint4 header, qh, qs0, qs1;
  };
  __device__ static Raw load(const uint8_t* blk, int i) {
    return {qblk::load_16(blk), qblk::load_16(blk + 16 + 16 * (i & 1)), qblk::load_16(blk + 48 + 16 * i),
            qblk::load_16(blk + 112 + 16 * i)};
  }
  __device__ static KQuantWeights decode(const Raw& r, int i) {
    KQuantWeights q;
    const int c0 = i >> 1;
    kquant_scales(r.header, c0, q);
    const uint32_t w0[4] = {r.qs0.x, r.qs0.y, r.qs0.z, r.qs0.w}, w1[4] = {r.qs1.x, r.qs1.y, r.qs1.z, r.qs1.w};
    const uint32_t h[4] = {r.qh.x, r.qh.y, r.qh.z, r.qh.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      q.lo0[j] = uint32_t(qblk::q5k_with_high_bits(qblk::low_nibbles(w0[j]), h[j], 2 * c0));
      q.hi0[j] = uint32_t(qblk::q5k_with_high_bits(qblk::high_nibbles(w0[j]), h[j], 2 * c0 + 1));
      q.lo1[j] = uint32_t(qblk::q5k_with_high_bits(qblk::low_nibbles(w1[j]), h[j], 2 * c0 + 4));
      q.hi1[j] = uint32_t(qblk::q5k_with_high_bits(qblk::high_nibbles(w1[j]), h[j], 2 * c0 + 5));
    }
    return q;
  }
};

// cuda/gemv_mma_kernel.cuh: lane t's 8 bytes of each 32-byte qs chunk and the same 8 bytes of qh
// (bit s of qh byte l is bit 4 of sub-block s's value l).
struct Q5KMmaPolicy {
  static constexpr int kBytes = qblk::kQ5KBytes;
  struct Raw {
    uint4 header;
    uint2 qh, qs[4];
  };
  __device__ static Raw load(const uint8_t* blk, int t) {
    Raw r;
    r.header = qblk::load_16(blk);
    r.qh = load_8(blk + 16 + 8 * t);
#pragma unroll
    for (int c = 0; c < 4; ++c) r.qs[c] = load_8(blk + 48 + 32 * c + 8 * t);
    return r;
  }
  __device__ static uint2 quants(const Raw& r, int s) {
    const uint2 w = r.qs[s / 2];
    const int shift = 4 * (s % 2);
    return make_uint2(uint32_t(qblk::q5k_with_high_bits(int((w.x >> shift) & 0x0f0f0f0fu), r.qh.x, s)),
                      uint32_t(qblk::q5k_with_high_bits(int((w.y >> shift) & 0x0f0f0f0fu), r.qh.y, s)));
  }
  __device__ static void accumulate(const Raw& ra, const Raw& rb, const MmaActs& x, int b, float (&acc)[4]) {
    kquant_mma_accumulate<Q5KMmaPolicy>(ra, rb, x, b, acc);
  }
};

}  // namespace

Status launch_q5k(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  if (use_kquant_kernel(a, n)) return launch_kquant<Q5KPolicy>(a, n, rows_per_warp, stream);
  if (use_mma_kernel(n)) return launch_mma<Q5KMmaPolicy>(a, n, stream);
  return launch_slots<Q5KSlot>(a, n, rows_per_warp, stream);
}

}  // namespace anvil::cuda::gemv_detail
