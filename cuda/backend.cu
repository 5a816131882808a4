// CudaBackend: device memory, one non-blocking stream, the step's arrays copied to one grow-only
// device buffer (so captured graphs see new values at fixed addresses), and dispatch to the op
// families (cuda/ops.h).
#include "cuda/backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <unordered_map>
#include <vector>

#include "core/log_text.h"
#include "core/op_checks.h"
#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/ops.h"

namespace anvil::cuda {

// ---- Context (declared in cuda/ops.h)

Context::~Context() {
  for (Area& a : areas_) cudaFree(a.ptr);
  if (cublas) cublasDestroy(cublas);
  if (stream) cudaStreamDestroy(stream);
}

Expected<void*> Context::scratch(ScratchSlot slot, size_t bytes) {
  Area& a = areas_[int(slot)];
  if (bytes <= a.bytes && a.ptr) return a.ptr;
  const size_t want = std::max<size_t>({bytes, a.bytes + a.bytes / 2, 4096});
  ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream));  // kernels enqueued earlier may still read it
  ANVIL_CUDA_CHECK(cudaFree(a.ptr));
  a.ptr = nullptr;
  a.bytes = 0;
  void* p = nullptr;
  if (cudaMalloc(&p, want) != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    return make_error(StatusCode::out_of_memory, "cuda scratch: cannot allocate ", want, " bytes (", free_b >> 20,
                      " MiB free of ", total_b >> 20, " MiB)");
  }
  a.ptr = p;
  a.bytes = want;
  ++generation_;
  return p;
}

Status cublas_status(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::ok();
  const StatusCode code = s == CUBLAS_STATUS_ALLOC_FAILED ? StatusCode::out_of_memory : StatusCode::internal;
  return make_error(code, "cuBLAS error ", cublasGetStatusName(s), " (", cublasGetStatusString(s), ") in ", what,
                    " at ", file, ":", line);
}

namespace {

// Counts allocations and frees of device buffers: a captured graph holds raw pointers, so any
// change to the set of live buffers (a workspace that grew) retires every recorded graph.
using MemoryEpoch = std::shared_ptr<std::atomic<uint64_t>>;

class CudaBuffer final : public DeviceBuffer {
 public:
  CudaBuffer(void* data, size_t size, MemoryEpoch epoch) : data_(data), size_(size), epoch_(std::move(epoch)) {
    ++*epoch_;
  }
  ~CudaBuffer() override {
    cudaFree(data_);
    ++*epoch_;
  }
  void* data() override { return data_; }
  size_t size() const override { return size_; }

 private:
  void* data_;
  size_t size_;
  MemoryEpoch epoch_;
};

// Block-table width of a step, rounded up so that decode steps of nearby context lengths share
// one DeviceStep shape (and one graph): powers of two from 16 pages.
int32_t bucket_width(const StepBatch& batch) {
  size_t w = 0;
  for (const StepSequence& q : batch.seqs) w = std::max(w, q.block_table.size());
  size_t b = 16;
  while (b < w) b *= 2;
  return int32_t(b);
}

bool graphs_enabled() {
  const char* v = std::getenv("ANVIL_CUDA_GRAPHS");
  return !(v && (std::string(v) == "0" || std::string(v) == "off"));
}

Status check_host_copy(const char* op, const Tensor& t, const void* host) {
  if (!host && t.n_elements() > 0) return make_error(StatusCode::invalid_argument, op, ": null host pointer");
  if (t.rows < 0 || t.cols < 0 || (!t.data && t.n_elements() > 0))
    return make_error(StatusCode::invalid_argument, op, ": tensor ", shape_str(t), " is malformed");
  if (!row_bytes(t.type, uint64_t(t.cols)))
    return make_error(StatusCode::invalid_argument, op, ": ", t.cols, " columns are not whole ",
                      dtype_name(t.type), " blocks");
  return Status::ok();
}

// make_host_step's arrays are one int32 block starting at `tokens`; this many ints long.
size_t packed_ints(const DeviceStep& h) {
  const size_t nt = size_t(h.n_tokens), ns = size_t(h.n_seqs);
  return 4 * nt + ns * size_t(h.max_blocks) + 4 * ns + size_t(h.n_logit_rows);
}

// Device (and pinned staging) memory for the steps' arrays. Each DeviceStep holds its own
// buffer, so steps prepared side by side stay valid; a buffer returns to the pool when its step
// goes, and the next step takes the most recently returned one: the engine's one step at a time
// therefore always lands at the same address, which the graphs recorded for it read.
class StepBufferPool : public std::enable_shared_from_this<StepBufferPool> {
 public:
  struct Buffer {
    void* dev = nullptr;
    void* host = nullptr;
    size_t bytes = 0;
  };
  ~StepBufferPool() {
    for (Buffer& b : free_) release(b);
  }
  // A buffer of at least `bytes`; `stream` is synchronized first when a buffer is reused (the
  // kernels of the step that had it may still be reading it).
  Expected<std::shared_ptr<Buffer>> take(size_t bytes, cudaStream_t stream) {
    Buffer b;
    for (size_t i = free_.size(); i-- > 0;)
      if (free_[i].bytes >= bytes) {
        b = free_[i];
        free_.erase(free_.begin() + std::ptrdiff_t(i));
        break;
      }
    if (b.dev) {
      const cudaError_t e = cudaStreamSynchronize(stream);
      if (e != cudaSuccess) {
        free_.push_back(b);
        ANVIL_CUDA_CHECK(e);
      }
    } else {
      b.bytes = std::max<size_t>(bytes, 16384);
      ANVIL_CUDA_CHECK(cudaMalloc(&b.dev, b.bytes));
      if (cudaMallocHost(&b.host, b.bytes) != cudaSuccess) {
        cudaFree(b.dev);
        ANVIL_CUDA_CHECK(cudaGetLastError());
        return make_error(StatusCode::out_of_memory, "cuda prepare_step: cannot pin ", b.bytes, " bytes");
      }
    }
    std::weak_ptr<StepBufferPool> pool = weak_from_this();
    return std::shared_ptr<Buffer>(new Buffer(b), [pool](Buffer* p) {
      if (auto owner = pool.lock()) owner->free_.push_back(*p);
      else release(*p);
      delete p;
    });
  }

 private:
  static void release(Buffer& b) {
    cudaFree(b.dev);
    cudaFreeHost(b.host);
  }
  std::vector<Buffer> free_;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, std::string name) : name_(std::move(name)) { ctx_.device = device; }
  ~CudaBackend() override {
    clear_graphs();
    cudaFree(cublas_workspace_);
  }

  Status init() {
    ANVIL_CUDA_CHECK(cudaSetDevice(ctx_.device));
    cudaDeviceProp p{};
    ANVIL_CUDA_CHECK(cudaGetDeviceProperties(&p, ctx_.device));
    ctx_.sm_count = p.multiProcessorCount;
    ctx_.cc_major = p.major;
    ctx_.cc_minor = p.minor;
    ANVIL_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx_.stream, cudaStreamNonBlocking));
    ctx_.reuse_quantized_x = std::getenv("ANVIL_CUDA_REQUANTIZE") == nullptr;
    // ANVIL_CUDA_FUSED=1 or 0 turns the fused matmul_group, add_rms_norm and qk_norm_rope_store on
    // or off (A/B measurement); unset, kFusedByDefault decides.
    if (const char* f = std::getenv("ANVIL_CUDA_FUSED"); f && *f) fused_ = std::string(f) != "0";
    // add_rms_norm and glu also write the GEMV's int8 input (Context::quantize_in_producers):
    // qwen3-4b tg128 +4.5% on the H100 (bench/NOTES.md). ANVIL_CUDA_QUANTIZE_IN_PRODUCERS=0 turns
    // it off (A/B measurement).
    const char* qp = std::getenv("ANVIL_CUDA_QUANTIZE_IN_PRODUCERS");
    ctx_.quantize_in_producers = fused_ && !(qp && std::string(qp) == "0");
    ANVIL_CUBLAS_CHECK(cublasCreate(&ctx_.cublas));
    ANVIL_CUBLAS_CHECK(cublasSetStream(ctx_.cublas, ctx_.stream));
    // A fixed cuBLAS workspace: without one cuBLAS allocates inside graph capture.
    ANVIL_CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspaceBytes));
    ANVIL_CUBLAS_CHECK(cublasSetWorkspace(ctx_.cublas, cublas_workspace_, kCublasWorkspaceBytes));
    return Status::ok();
  }

  std::string name() const override { return name_; }
  DeviceKind kind() const override { return DeviceKind::cuda; }

  Expected<std::shared_ptr<DeviceBuffer>> alloc(size_t bytes) override {
    ctx_.gemv_x = {};  // a new buffer may reuse freed memory at a cached address
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 256));
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      return make_error(StatusCode::out_of_memory, name_, ": cannot allocate ", bytes, " bytes (",
                        free_b >> 20, " MiB free of ", total_b >> 20, " MiB): ", cudaGetErrorString(e));
    }
    return std::shared_ptr<DeviceBuffer>(std::make_shared<CudaBuffer>(p, bytes, epoch_));
  }

  Expected<Weight> upload(const std::string& name, DType type, int64_t rows, int64_t cols,
                          const void* host_bytes) override {
    if (!dtype_traits(uint32_t(type)))
      return make_error(StatusCode::invalid_argument, "upload '", name, "': unknown type id ", uint32_t(type));
    if (rows < 0 || cols <= 0 || !row_bytes(type, uint64_t(cols)))
      return make_error(StatusCode::invalid_argument, "upload '", name, "': shape [", rows, " x ", cols, " ",
                        dtype_name(type), "] is not whole rows of blocks");
    if (!host_bytes) return make_error(StatusCode::invalid_argument, "upload '", name, "': null host bytes");
    const size_t bytes = size_t(rows) * *row_bytes(type, uint64_t(cols));
    auto buf = alloc(bytes);
    if (!buf) return make_error(buf.status().code(), "upload '", name, "': ", buf.status().message());
    // Synchronous: the host bytes are a pageable mmap that need not outlive this call.
    ANVIL_CUDA_CHECK(cudaMemcpy((*buf)->data(), host_bytes, bytes, cudaMemcpyHostToDevice));
    weights_.push_back(*buf);
    Weight w;
    w.name = name;
    w.t = Tensor::contiguous((*buf)->data(), type, rows, cols);
    return w;
  }

  Status copy_from_host(Tensor dst, const void* src) override {
    ANVIL_RETURN_IF_ERROR(check_host_copy("copy_from_host", dst, src));
    ctx_.gemv_x = {};
    const size_t rb = dst.row_size();
    if (dst.n_elements() == 0) return Status::ok();
    ANVIL_CUDA_CHECK(cudaMemcpy2DAsync(dst.data, dst.row_stride, src, rb, rb, size_t(dst.rows),
                                       cudaMemcpyHostToDevice, ctx_.stream));
    ANVIL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));  // src is the caller's pageable memory
    return Status::ok();
  }

  Status copy_to_host(void* dst, const Tensor& src) override {
    ANVIL_RETURN_IF_ERROR(check_host_copy("copy_to_host", src, dst));
    const size_t rb = src.row_size();
    if (src.n_elements() == 0) return Status::ok();
    ANVIL_CUDA_CHECK(cudaMemcpy2DAsync(dst, rb, src.data, src.row_stride, rb, size_t(src.rows),
                                       cudaMemcpyDeviceToHost, ctx_.stream));
    ANVIL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    return Status::ok();
  }

  std::optional<MemoryInfo> memory_info() override {
    MemoryInfo m;
    if (cudaMemGetInfo(&m.free_bytes, &m.total_bytes) != cudaSuccess) {
      cudaGetLastError();
      return std::nullopt;
    }
    return m;
  }

  Status synchronize() override {
    ANVIL_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    return Status::ok();
  }

  // Validates and packs on the host (make_host_step), then copies the one int32 block into a
  // grow-only device buffer through pinned staging; the returned DeviceStep points into the
  // device copy and carries the host one (host_step) for checks and launch decisions.
  Expected<DeviceStep> prepare_step(const StepBatch& batch) override {
    bool one_token_each = !batch.seqs.empty();
    for (const StepSequence& q : batch.seqs) one_token_each = one_token_each && q.n_tokens == 1;
    auto h = make_host_step(batch, one_token_each ? bucket_width(batch) : 0);
    if (!h) return h.status();
    auto host = std::make_shared<DeviceStep>(std::move(*h));
    const size_t n = packed_ints(*host);
    const size_t bytes = std::max<size_t>(n, 1) * sizeof(int32_t);
    auto buf = step_pool_->take(bytes, ctx_.stream);
    if (!buf) return buf.status();
    void* dev = (*buf)->dev;
    if (n > 0) std::memcpy((*buf)->host, host->tokens, n * sizeof(int32_t));
    ANVIL_CUDA_CHECK(cudaMemcpyAsync(dev, (*buf)->host, bytes, cudaMemcpyHostToDevice, ctx_.stream));
    last_step_dev_ = dev;

    DeviceStep d = *host;
    const int32_t* base = host->tokens;
    auto rebase = [&](const int32_t* p) -> const int32_t* {
      return p ? static_cast<const int32_t*>(dev) + (p - base) : nullptr;
    };
    d.tokens = n > 0 ? static_cast<const int32_t*>(dev) : nullptr;
    d.positions = rebase(host->positions);
    d.token_seq = rebase(host->token_seq);
    d.kv_slots = rebase(host->kv_slots);
    d.block_tables = rebase(host->block_tables);
    d.context_lens = rebase(host->context_lens);
    d.seq_first_token = rebase(host->seq_first_token);
    d.seq_n_tokens = rebase(host->seq_n_tokens);
    d.state_slots = rebase(host->state_slots);
    d.logit_rows = rebase(host->logit_rows);
    d.storage = std::move(*buf);  // back to the pool when the last copy of the step goes
    d.host = std::move(host);
    return d;
  }

  // Graph replay: key -> the executable graph recorded for it and the output it produced. A key
  // is recorded on its second sighting (the first one grows the workspace and scratch to their
  // steady sizes, and allocation is not allowed while capturing) and replayed from the third.
  Expected<Tensor> run_step(uint64_t key, const std::function<Expected<Tensor>()>& forward) override {
    ctx_.gemv_x = {};  // a replayed step leaves it as recording left it; start every step clean
    if (key == 0 || !graphs_enabled()) return forward();
    const uint64_t epoch = *epoch_ + ctx_.generation();
    if (epoch != graphs_epoch_) {
      clear_graphs();
      graphs_epoch_ = epoch;
    }
    if (auto it = graphs_.find(key); it != graphs_.end()) {
      if (it->second.step_arrays == last_step_dev_) {
        ANVIL_CUDA_CHECK(cudaGraphLaunch(it->second.exec, ctx_.stream));
        return it->second.output;
      }
      // This step's arrays sit elsewhere (several steps alive at once): record afresh.
      cudaGraphExecDestroy(it->second.exec);
      graphs_.erase(it);
    }
    if (int& seen = sightings_[key]; seen++ <= 0 || graphs_.size() >= kMaxGraphs) return forward();

    ANVIL_CUDA_CHECK(cudaStreamBeginCapture(ctx_.stream, cudaStreamCaptureModeThreadLocal));
    Expected<Tensor> out = forward();
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(ctx_.stream, &graph);
    if (!out || end != cudaSuccess || *epoch_ + ctx_.generation() != epoch) {
      // Something allocated, synchronized or failed while recording (nothing ran): never record
      // this key again, and run the step plainly (a genuine error then shows there).
      if (graph) cudaGraphDestroy(graph);
      const cudaError_t why = end != cudaSuccess ? end : cudaGetLastError();
      log_warn(name_ + ": decode step not recorded as a CUDA graph (" +
               (!out ? out.status().to_string() : std::string(cudaGetErrorString(why))) + "); it runs op by op");
      cudaGetLastError();
      sightings_[key] = std::numeric_limits<int>::min();
      return forward();
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    ANVIL_CUDA_CHECK(inst);
    graphs_.emplace(key, Recorded{exec, *out, last_step_dev_});
    log_debug(name_ + ": recorded a CUDA graph for decode key " + std::to_string(key) + " (" +
              std::to_string(graphs_.size()) + " graphs)");
    ANVIL_CUDA_CHECK(cudaGraphLaunch(exec, ctx_.stream));
    return *out;
  }

  Status embed(const Weight& table, const DeviceStep& step, Tensor out) override {
    return cuda::embed(op(), table, step, out);
  }
  Status rms_norm(const Tensor& x, const Weight* w, float eps, Tensor out) override {
    return cuda::rms_norm(op(), x, w, eps, out);
  }
  Status matmul(const Weight& w, const Tensor& x, Tensor y, const Weight* bias) override {
    const Status st = cuda::matmul(ctx_, w, x, y, bias);
    if (!st) ctx_.gemv_x = {};
    return st;
  }
  Status rope(Tensor x, const RopeParams& p, const DeviceStep& step) override { return cuda::rope(op(), x, p, step); }
  Status add(const Tensor& a, const Tensor& b, Tensor out) override { return cuda::add(op(), a, b, out); }
  Status scale(Tensor x, float s) override { return cuda::scale(op(), x, s); }
  Status glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out) override {
    return cuda::glu(op(), gate, up, act, out);
  }
  Status kv_store(const KvLayer& kv, const Tensor& k, const Tensor& v, const DeviceStep& step) override {
    return cuda::kv_store(op(), kv, k, v, step);
  }
  Status attention(const Tensor& q, const KvLayer& kv, const AttentionParams& p, const DeviceStep& step,
                   Tensor out) override {
    return cuda::attention(op(), q, kv, p, step, out);
  }
  Status gather_logit_rows(const Tensor& x, const DeviceStep& step, Tensor out) override {
    return cuda::gather_logit_rows(op(), x, step, out);
  }
  Status l2_norm(const Tensor& x, int32_t head_dim, float eps, Tensor out) override {
    return cuda::l2_norm(op(), x, head_dim, eps, out);
  }
  Status conv1d_silu(const Tensor& x, const Weight& w, const RecurrentLayer& state, const DeviceStep& step,
                     Tensor out) override {
    return cuda::conv1d_silu(op(), x, w, state, step, out);
  }
  Status deltanet_gates(const Tensor& alpha, const Tensor& b, const Weight& dt_bias, const Weight& a, Tensor g,
                        Tensor beta) override {
    return cuda::deltanet_gates(op(), alpha, b, dt_bias, a, g, beta);
  }
  Status gated_deltanet(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                        const RecurrentLayer& state, const DeltaNetParams& p, const DeviceStep& step,
                        Tensor out) override {
    return cuda::gated_deltanet(op(), q, k, v, g, beta, state, p, step, out);
  }
  Status copy_page(const KvLayer& kv, int32_t src_page, int32_t dst_page, int32_t page_size) override {
    return cuda::copy_page(op(), kv, src_page, dst_page, page_size);
  }
  Status matmul_group(const Tensor& x, std::span<const MatmulTarget> targets) override {
    if (!fused_) return Backend::matmul_group(x, targets);
    const Status st = cuda::matmul_group(ctx_, x, targets);
    if (!st) ctx_.gemv_x = {};
    return st;
  }
  Status add_rms_norm(Tensor x, const Tensor& h, const Weight* w, float eps, Tensor out) override {
    if (!fused_) return Backend::add_rms_norm(x, h, w, eps, out);
    return cuda::add_rms_norm(op(), x, h, w, eps, out);
  }
  Status qk_norm_rope_store(const Tensor& q_src, Tensor q, Tensor k, const Tensor& v, const QkNormRope& p,
                            const KvLayer& kv, const DeviceStep& step) override {
    if (!fused_) return Backend::qk_norm_rope_store(q_src, q, k, v, p, kv, step);
    const Status st = cuda::qk_norm_rope_store(op(), q_src, q, k, v, p, kv, step);
    // Shapes the fused kernel does not cover run as the separate ops.
    if (st.code() == StatusCode::unsupported) return Backend::qk_norm_rope_store(q_src, q, k, v, p, kv, step);
    return st;
  }
  Status sample(const Tensor& logits, std::span<const SampleRequest> requests, std::span<int32_t> ids) override {
    return cuda::sample(op(), logits, requests, ids);
  }

 private:
  // The context for any op but matmul: such an op may write a matmul's input, so the GEMV's
  // quantized activation is forgotten first (Context::reuse_quantized_x).
  Context& op() {
    ctx_.gemv_x = {};
    return ctx_;
  }

  struct Recorded {
    cudaGraphExec_t exec;
    Tensor output;
    const void* step_arrays;  // where the recorded kernels read the step's arrays
  };
  static constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;
  static constexpr size_t kMaxGraphs = 64;

  void clear_graphs() {
    for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g.exec);
    graphs_.clear();
    sightings_.clear();
  }

  std::string name_;
  Context ctx_;
  MemoryEpoch epoch_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::unordered_map<uint64_t, Recorded> graphs_;
  std::unordered_map<uint64_t, int> sightings_;
  uint64_t graphs_epoch_ = ~uint64_t(0);
  void* cublas_workspace_ = nullptr;
  std::vector<std::shared_ptr<DeviceBuffer>> weights_;  // uploaded weights live as long as the backend
  std::shared_ptr<StepBufferPool> step_pool_ = std::make_shared<StepBufferPool>();
  const void* last_step_dev_ = nullptr;  // arrays of the step prepared last
  // matmul_group / add_rms_norm / qk_norm_rope_store fused: qwen3-4b tg128 299.8 -> 378.4 t/s on
  // the H100 (bench/NOTES.md).
  static constexpr bool kFusedByDefault = true;
  bool fused_ = kFusedByDefault;
};

}  // namespace

Expected<std::unique_ptr<Backend>> make_backend(int device) {
  const std::string why = unavailable_reason();
  if (!why.empty()) return make_error(StatusCode::unsupported, "cuda backend: ", why);
  auto devices = list_devices();
  if (!devices) return devices.status();
  if (device < 0 || size_t(device) >= devices->size())
    return make_error(StatusCode::invalid_argument, "cuda backend: device ", device, " does not exist (",
                      devices->size(), " visible)");
  const DeviceInfo& info = (*devices)[size_t(device)];
  auto be = std::make_unique<CudaBackend>(device, "cuda:" + std::to_string(device) + " (" + info.name + ")");
  ANVIL_RETURN_IF_ERROR(be->init());
  return std::unique_ptr<Backend>(std::move(be));
}

}  // namespace anvil::cuda
