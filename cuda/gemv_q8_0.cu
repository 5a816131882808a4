// Q8_0 GEMV: the slot policy for cuda/gemv_kernel.cuh.
//
// A 34-byte Q8_0 block: f16 d, then 32 int8 quants; its blocks line up with the activation
// blocks. Slot p (0..3) is quants 8p..8p+7, read with 16-bit loads (34-byte blocks leave the
// fields 2-byte aligned).   sum_i w_i x_i = d da (q . qa)
#include "cuda/gemv_kernel.cuh"
#include "cuda/quant_blocks.cuh"

namespace anvil::cuda::gemv_detail {
namespace {

struct Q8_0Slot {
  static constexpr bool kDeepRounds = false;  // cuda/gemv_kernel.cuh's kRoundSlices
  static constexpr int kSlots = 4;
  static constexpr int kBytes = qblk::kQ8_0Bytes;

  struct Raw {
    uint32_t q[2];
    uint32_t d;
  };
  struct Weights {
    int q[2];
    float d;
  };
  struct Acts {
    uint2 q;
    float da;
  };

  __device__ static Raw load(const uint8_t* blk, int part) {
    const uint8_t* q = blk + 2 + 8 * part;
    return {{qblk::load_u32_a2(q), qblk::load_u32_a2(q + 4)}, qblk::load_u16(blk)};
  }

  __device__ static Weights decode(const Raw& r, int) {
    return {{int(r.q[0]), int(r.q[1])}, qblk::half_bits_to_float(r.d)};
  }

  __device__ static Acts load_acts(const ActQ8& act, int t, int b, int part) {
    const int8_t* q = act.q + t * act.in + int64_t(b) * 32 + 8 * part;
    return {*reinterpret_cast<const uint2*>(q), act.ds[t * (act.in / 32) + b].x};
  }

  __device__ static float dot(const Weights& w, const Acts& x) {
    const int s = __dp4a(w.q[1], int(x.q.y), __dp4a(w.q[0], int(x.q.x), 0));
    return w.d * x.da * float(s);
  }
};

}  // namespace

Status launch_q8_0(const KernelArgs& a, int n, int rows_per_warp, cudaStream_t stream) {
  return launch_slots<Q8_0Slot>(a, n, rows_per_warp, stream);
}

}  // namespace anvil::cuda::gemv_detail
