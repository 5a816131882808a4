// The CPU backend: the oracle every other backend is tested against (DESIGN.md, "Correctness").
//
// Kernels are written plainly: elementwise math in f32, every reduction (sums of squares, dot
// products, softmax denominators, weighted sums of V) accumulated in double so the result is
// the correctly rounded f32 of the exact value in all but pathological cases. Work is split over
// rows (or (token, head) pairs) through the backend's ThreadPool. Memory is host memory; weights
// are zero-copy views of the caller's bytes (the mmap'd GGUF).
#pragma once

#include <memory>

#include "core/backend.h"
#include "core/thread_pool.h"

namespace anvil::cpu {

// n_threads: 0 = hardware concurrency, 1 = the calling thread only.
std::unique_ptr<Backend> make_backend(int n_threads = 0);

// The op kernels behind CpuBackend, one family per file (ops_*.cpp). Each validates its shapes
// and returns invalid_argument naming the op and the shapes. They are free functions so the
// backend class stays a thin dispatcher and tests can name the family they exercise.
Status embed(const Weight& table, const DeviceStep& step, Tensor out, ThreadPool& pool);
Status rms_norm(const Tensor& x, const Weight* w, float eps, Tensor out, ThreadPool& pool);
Status add(const Tensor& a, const Tensor& b, Tensor out, ThreadPool& pool);
Status scale(Tensor x, float s, ThreadPool& pool);
Status glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out, ThreadPool& pool);
Status gather_logit_rows(const Tensor& x, const DeviceStep& step, Tensor out);
Status rope(Tensor x, const RopeParams& p, const DeviceStep& step, ThreadPool& pool);
Status kv_store(const KvLayer& kv, const Tensor& k, const Tensor& v, const DeviceStep& step);
Status attention(const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step, Tensor out,
                 ThreadPool& pool);
Status copy_page(const KvLayer& kv, int32_t src_page, int32_t dst_page, int32_t page_size);
Status l2_norm(const Tensor& x, int32_t head_dim, float eps, Tensor out, ThreadPool& pool);
Status conv1d_silu(const Tensor& x, const Weight& w, const RecurrentLayer& state, const DeviceStep& step, Tensor out,
                   ThreadPool& pool);
Status deltanet_gates(const Tensor& alpha, const Tensor& b, const Weight& dt_bias, const Weight& a, Tensor g,
                      Tensor beta);
Status gated_deltanet(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                      const RecurrentLayer& state, const DeltaNetParams& p, const DeviceStep& step, Tensor out,
                      ThreadPool& pool);

// Builds the step's integer arrays in host memory after checking the batch is consistent.
Expected<DeviceStep> prepare_step(const StepBatch& batch);

}  // namespace anvil::cpu
