// The PTX wrappers the tensor-core kernels share (sm_80+): shared-memory addresses, cp.async,
// ldmatrix and mma.sync. Users: cuda/gemm_mma_kernel.cuh (prefill GEMM),
// cuda/attention_prefill_mma.cuh (prefill attention), cuda/gemv_mma_kernel.cuh and
// cuda/gemv_q6k.cu (decode GEMV for 2..8 tokens). Fragment layouts are quoted from the PTX ISA
// ("Matrix Fragments for mma.m16n8k16 / m16n8k32"), with g = lane / 4 and t = lane % 4.
// (cuda/deltanet*.cu keep their own cp.async copies: they have pre-sm_80 and host fallbacks.)
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace anvil::cuda::ptx {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- cp.async: 16 bytes global -> shared, bypassing L1 (.cg: the kernels reuse data from L2 only)

__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
// The same, reading only the first src_bytes (0..16) and zero-filling the rest.
__device__ __forceinline__ void cp_async_16_zfill(uint32_t dst, const void* src, uint32_t src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---- ldmatrix: four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, and
// lane l receives row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 of each matrix (.trans: the
// transposed matrix, i.e. column l / 4, rows 2 (l % 4) and 2 (l % 4) + 1).

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t (&r)[4]) { ldmatrix_x4(addr, r[0], r[1], r[2], r[3]); }
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// ---- mma.sync

// c += A (16x16, row) * B (16x8, col), f16 inputs, f32 accumulators:
//   a[0] = A[g][2t..2t+1]   a[1] = A[g+8][2t..2t+1]   a[2] = A[g][2t+8..]   a[3] = A[g+8][2t+8..]
//   b0 = B[2t..2t+1][g]      b1 = B[2t+8..2t+9][g]
//   c[0..1] = C[g][2t..2t+1] c[2..3] = C[g+8][2t..2t+1]
__device__ __forceinline__ void mma_f16_f32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// c = A (16 x 32, row, u8) * B (32 x 8, col, s8), s32 result (not accumulated):
// a0 = A[g][4t..4t+3], a1 = A[g+8][4t..], a2 = A[g][16+4t..], a3 = A[g+8][16+4t..];
// b0 = B[4t..4t+3][g], b1 = B[16+4t..][g]; c0/c1 = C[g][2t, 2t+1], c2/c3 = C[g+8][2t, 2t+1].
__device__ __forceinline__ void mma_u8s8_16832(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %10, %10, %10};\n"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(0));
}

// c = A (16 x 16, row, s8) * B (16 x 8, col, s8), s32 result (not accumulated):
// a0 = A[g][4t..4t+3], a1 = A[g+8][4t..4t+3]; b0 = B[4t..4t+3][g]; c as in mma_u8s8_16832.
__device__ __forceinline__ void mma_s8s8_16816(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %7, %7, %7};\n"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a0), "r"(a1), "r"(b0), "r"(0));
}

}  // namespace anvil::cuda::ptx
