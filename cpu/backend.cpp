// CpuBackend: host memory, the step's arrays, and dispatch to the op families (ops_*.cpp) and
// the matmul candidates (cpu/matmul.h).
#include "cpu/backend.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "cpu/matmul.h"
#include "core/op_checks.h"

namespace anvil::cpu {
namespace {

// 64-byte alignment: a cache line, and what AVX-512 loads want.
constexpr size_t kAlignment = 64;

class HostBuffer final : public DeviceBuffer {
 public:
  HostBuffer(void* data, size_t size) : data_(data), size_(size) {}
  ~HostBuffer() override { std::free(data_); }
  void* data() override { return data_; }
  size_t size() const override { return size_; }

 private:
  void* data_;
  size_t size_;
};

Status check_host_copy(const char* op, const Tensor& t, const void* host) {
  if (!host && t.n_elements() > 0) return make_error(StatusCode::invalid_argument, op, ": null host pointer");
  if (t.rows < 0 || t.cols < 0 || (!t.data && t.n_elements() > 0))
    return make_error(StatusCode::invalid_argument, op, ": tensor ", shape_str(t), " is malformed");
  if (!row_bytes(t.type, uint64_t(t.cols)))
    return make_error(StatusCode::invalid_argument, op, ": ", t.cols, " columns are not whole ",
                      dtype_name(t.type), " blocks");
  return Status::ok();
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads) : pool_(n_threads) {}

  std::string name() const override { return "cpu"; }
  DeviceKind kind() const override { return DeviceKind::cpu; }

  Expected<std::shared_ptr<DeviceBuffer>> alloc(size_t bytes) override {
    const size_t rounded = (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
    if (rounded < bytes) return make_error(StatusCode::out_of_memory, "cpu alloc: ", bytes, " bytes overflow");
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (!p) return make_error(StatusCode::out_of_memory, "cpu alloc: cannot allocate ", bytes, " bytes");
    return std::shared_ptr<DeviceBuffer>(std::make_shared<HostBuffer>(p, bytes));
  }

  Expected<Weight> upload(const std::string& name, DType type, int64_t rows, int64_t cols,
                          const void* host_bytes) override {
    if (!dtype_traits(uint32_t(type)))
      return make_error(StatusCode::invalid_argument, "upload '", name, "': unknown type id ", uint32_t(type));
    if (rows < 0 || cols <= 0 || !row_bytes(type, uint64_t(cols)))
      return make_error(StatusCode::invalid_argument, "upload '", name, "': shape [", rows, " x ", cols, " ",
                        dtype_name(type), "] is not whole rows of blocks");
    if (!host_bytes) return make_error(StatusCode::invalid_argument, "upload '", name, "': null host bytes");
    // Zero copy: the weight points into the caller's (mmap'd) bytes, which must outlive it.
    Weight w;
    w.name = name;
    w.t = Tensor::contiguous(const_cast<void*>(host_bytes), type, rows, cols);
    return w;
  }

  Status copy_from_host(Tensor dst, const void* src) override {
    ANVIL_RETURN_IF_ERROR(check_host_copy("copy_from_host", dst, src));
    const size_t rb = dst.row_size();
    for (int64_t r = 0; r < dst.rows; ++r) std::memcpy(dst.row<char>(r), static_cast<const char*>(src) + r * rb, rb);
    return Status::ok();
  }

  Status copy_to_host(void* dst, const Tensor& src) override {
    ANVIL_RETURN_IF_ERROR(check_host_copy("copy_to_host", src, dst));
    const size_t rb = src.row_size();
    for (int64_t r = 0; r < src.rows; ++r) std::memcpy(static_cast<char*>(dst) + r * rb, src.row<const char>(r), rb);
    return Status::ok();
  }

  Status synchronize() override { return Status::ok(); }  // ops run synchronously on the caller

  Expected<DeviceStep> prepare_step(const StepBatch& batch) override { return cpu::prepare_step(batch); }

  Status embed(const Weight& table, const DeviceStep& step, Tensor out) override {
    return cpu::embed(table, step, out, pool_);
  }
  Status rms_norm(const Tensor& x, const Weight* w, float eps, Tensor out) override {
    return cpu::rms_norm(x, w, eps, out, pool_);
  }
  Status matmul(const Weight& w, const Tensor& x, Tensor y, const Weight* bias) override {
    ANVIL_RETURN_IF_ERROR(check_matmul(w, x, y, bias));
    return cpu::matmul(w, x, y, bias, pool_);
  }
  Status rope(Tensor x, const RopeParams& p, const DeviceStep& step) override {
    return cpu::rope(x, p, step, pool_);
  }
  Status add(const Tensor& a, const Tensor& b, Tensor out) override { return cpu::add(a, b, out, pool_); }
  Status scale(Tensor x, float s) override { return cpu::scale(x, s, pool_); }
  Status glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out) override {
    return cpu::glu(gate, up, act, out, pool_);
  }
  Status kv_store(const KvLayer& kv, const Tensor& k, const Tensor& v, const DeviceStep& step) override {
    return cpu::kv_store(kv, k, v, step);
  }
  Status attention(const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step,
                   Tensor out) override {
    return cpu::attention(q, kv, p, step, out, pool_);
  }
  Status gather_logit_rows(const Tensor& x, const DeviceStep& step, Tensor out) override {
    return cpu::gather_logit_rows(x, step, out);
  }
  Status copy_page(const KvLayer& kv, int32_t src_page, int32_t dst_page, int32_t page_size) override {
    return cpu::copy_page(kv, src_page, dst_page, page_size);
  }
  Status l2_norm(const Tensor& x, int32_t head_dim, float eps, Tensor out) override {
    return cpu::l2_norm(x, head_dim, eps, out, pool_);
  }
  Status conv1d_silu(const Tensor& x, const Weight& w, const RecurrentLayer& state, const DeviceStep& step,
                     Tensor out) override {
    return cpu::conv1d_silu(x, w, state, step, out, pool_);
  }
  Status deltanet_gates(const Tensor& alpha, const Tensor& b, const Weight& dt_bias, const Weight& a, Tensor g,
                        Tensor beta) override {
    return cpu::deltanet_gates(alpha, b, dt_bias, a, g, beta);
  }
  Status gated_deltanet(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                        const RecurrentLayer& state, const DeltaNetParams& p, const DeviceStep& step,
                        Tensor out) override {
    return cpu::gated_deltanet(q, k, v, g, beta, state, p, step, out, pool_);
  }

 private:
  static Status check_matmul(const Weight& w, const Tensor& x, const Tensor& y, const Weight* bias) {
    ANVIL_RETURN_IF_ERROR(check_f32("matmul", "x", x));
    ANVIL_RETURN_IF_ERROR(check_f32("matmul", "y", y));
    if (!w.valid()) return make_error(StatusCode::invalid_argument, "matmul: weight '", w.name, "' is not bound");
    if (x.cols != w.t.cols || y.cols != w.t.rows || x.rows != y.rows)
      return make_error(StatusCode::invalid_argument, "matmul: weight '", w.name, "' ", shape_str(w.t), ", x ",
                        shape_str(x), ", y ", shape_str(y), ": need x [n x ", w.t.cols, "], y [n x ", w.t.rows, "]");
    if (bias && (bias->t.type != DType::F32 || bias->t.n_elements() != w.t.rows || !bias->t.is_contiguous() ||
                 !bias->t.data))
      return make_error(StatusCode::invalid_argument, "matmul: bias '", bias->name, "' ", shape_str(bias->t),
                        " must be contiguous F32 with ", w.t.rows, " elements for weight '", w.name, "'");
    return Status::ok();
  }

  ThreadPool pool_;
};

}  // namespace

Expected<DeviceStep> prepare_step(const StepBatch& batch) { return make_host_step(batch); }

std::unique_ptr<Backend> make_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace anvil::cpu
