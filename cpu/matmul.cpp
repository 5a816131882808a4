// cpu::matmul: validates, asks the registry which candidate runs this shape (measured on first
// use, cached), runs it, adds the bias.
#include "cpu/matmul.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "cpu/matmul_candidates.h"
#include "quant/quant.h"

namespace anvil::cpu {

namespace {

// Tokens are bucketed to powers of two (1, 2, 4, ..., 1024+) so a prefill chunk of 37 tokens
// reuses the choice measured at 64; the trial measures at the bucket's top.
int64_t token_bucket(int64_t n) { return std::min<int64_t>(std::bit_ceil(uint64_t(std::max<int64_t>(n, 1))), 1024); }

std::string cpu_description() {
  std::string model = "unknown cpu";
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  std::string isa;
  for (SimdLevel l : {SimdLevel::avx2, SimdLevel::avx512})
    if (simd_level_available(l)) isa += std::string(" ") + simd_level_name(l);
  return "cpu: " + model + isa;
}

// Without measurement: integer dot products for decode-sized n, sgemm from 16 tokens up
// (where its compute rate beats re-reading W for each token; the tuner measures the real
// crossover).
std::string heuristic_candidate(const MatmulArgs& a) {
  if (a.x->rows >= 16 && matmul_blas_supports(a)) return "blas";
  for (SimdLevel l : {SimdLevel::avx512, SimdLevel::avx2, SimdLevel::scalar})
    if (simd_level_available(l) && matmul_q8k_supports(a)) return std::string("q8k_") + simd_level_name(l);
  return "reference";
}

// Fresh random activations (N(0, 1)) against the real weights; the error check runs the
// reference on sampled weight rows (start, middle, end) so it stays cheap at prefill shapes.
class MatmulTrial final : public TuningTrial {
 public:
  MatmulTrial(const Tensor& w, int64_t n, ThreadPool& pool)
      : w_(w), n_(n), pool_(pool), x_(size_t(n * w.cols)), y_(size_t(n * w.rows)) {}

  void refresh(uint64_t seed) override {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& v : x_) v = nd(rng);
    std::fill(y_.begin(), y_.end(), NAN);
    // Evict the weights from the caches (a forward pass streams every layer through them).
    evict_.assign(kEvictBytes, uint8_t(seed));
  }

  Status run(size_t candidate) override {
    const Tensor x = Tensor::contiguous(x_.data(), DType::F32, n_, w_.cols);
    const MatmulArgs a{&w_, &x, Tensor::contiguous(y_.data(), DType::F32, n_, w_.rows), &pool_};
    return matmul_registry().candidates()[candidate].run(a);
  }

  double error() override {
    const Tensor x = Tensor::contiguous(x_.data(), DType::F32, n_, w_.cols);
    double worst = 0;
    for (int64_t first : sample_starts()) {
      const int64_t rows = std::min<int64_t>(kSampleRows, w_.rows - first);
      const Tensor ws = w_.slice_rows(first, rows);
      std::vector<float> ref(size_t(n_ * rows));
      const MatmulArgs a{&ws, &x, Tensor::contiguous(ref.data(), DType::F32, n_, rows), &pool_};
      if (!matmul_reference(a).is_ok()) return INFINITY;
      worst = std::max(worst, max_row_relative_error(y_.data() + first, size_t(w_.rows), ref.data(), size_t(rows),
                                                     n_, rows));
    }
    return worst;
  }

 private:
  static constexpr int64_t kSampleRows = 64;
  static constexpr size_t kEvictBytes = size_t(48) << 20;  // > the 32 MB L3 of one EPYC CCD

  std::vector<int64_t> sample_starts() const {
    if (w_.rows <= 3 * kSampleRows) return {0};
    return {0, (w_.rows - kSampleRows) / 2, w_.rows - kSampleRows};
  }

  const Tensor& w_;
  int64_t n_;
  ThreadPool& pool_;
  std::vector<float> x_, y_;
  std::vector<uint8_t> evict_;
};

Status validate(const Weight& w, const Tensor& x, const Tensor& y, const Weight* bias) {
  if (!w.valid()) return make_error(StatusCode::invalid_argument, "matmul: weight '", w.name, "' has no data");
  if (w.layout != 0)
    return make_error(StatusCode::unsupported, "matmul: weight '", w.name, "' has layout ", w.layout,
                      "; the CPU backend runs GGUF block order (0)");
  if (x.type != DType::F32 || y.type != DType::F32)
    return make_error(StatusCode::invalid_argument, "matmul: activations must be F32 (x ", dtype_name(x.type), ", y ",
                      dtype_name(y.type), ")");
  if (x.cols != w.t.cols || y.cols != w.t.rows || x.rows != y.rows)
    return make_error(StatusCode::invalid_argument, "matmul '", w.name, "': W [", w.t.rows, ", ", w.t.cols,
                      "] does not fit x [", x.rows, ", ", x.cols, "] -> y [", y.rows, ", ", y.cols, "]");
  if (bias && (!bias->valid() || bias->t.rows * bias->t.cols != w.t.rows))
    return make_error(StatusCode::invalid_argument, "matmul '", w.name, "': bias '", bias->name, "' has ",
                      bias->t.rows * bias->t.cols, " elements, expected ", w.t.rows);
  return Status::ok();
}

Status add_bias(const Weight& bias, const Tensor& y) {
  std::vector<float> b(size_t(y.cols));
  const float* bp = nullptr;
  if (bias.t.type == DType::F32 && bias.t.is_contiguous()) {
    bp = static_cast<const float*>(bias.t.data);
  } else {
    ANVIL_RETURN_IF_ERROR(quant::dequantize_row(bias.t.type, bias.t.data, b.data(), y.cols));
    bp = b.data();
  }
  for (int64_t t = 0; t < y.rows; ++t) {
    float* row = y.row<float>(t);
    for (int64_t o = 0; o < y.cols; ++o) row[o] += bp[o];
  }
  return Status::ok();
}

}  // namespace

KernelRegistry<MatmulArgs>& matmul_registry() {
  static KernelRegistry<MatmulArgs>* registry = [] {
    auto* r = new KernelRegistry<MatmulArgs>("matmul", [] { return TuningContext{cpu_description(), blas_description()}; });
    // Tolerances (max over output rows of ||y - ref|| / ||ref||): the f32 candidates differ from
    // the reference only in summation order (measured <= 5e-7 against an f64 reference);
    // Q8_K activations round each x to 1/254 of its 256-block's max, which for N(0, 1) inputs
    // is ~0.6% relative error per output row on average and up to 0.91% on the worst row of the
    // tests' shapes (tests/cpu_matmul), so 2e-2 leaves room for unlucky inputs while still
    // rejecting real bugs (a wrong scale or nibble is off by tens of percent).
    r->add({"reference", 1e-4, matmul_reference_supports, matmul_reference});
    r->add({"blas", 1e-4, matmul_blas_supports, matmul_blas});
    for (SimdLevel l : {SimdLevel::avx512, SimdLevel::avx2, SimdLevel::scalar}) {
      r->add({std::string("q8k_") + simd_level_name(l), 2e-2,
              [l](const MatmulArgs& a) {
                // The scalar kernel only where no vector one runs: it is the portable fallback,
                // never faster, and timing it would only slow the tuner down.
                if (l == SimdLevel::scalar && simd_level_available(SimdLevel::avx2)) return false;
                return simd_level_available(l) && matmul_q8k_supports(a);
              },
              [l](const MatmulArgs& a) { return matmul_q8k(a, l); }});
    }
    return r;
  }();
  return *registry;
}

std::string matmul_shape_key(const MatmulArgs& a) {
  const int64_t bucket = token_bucket(a.x->rows);
  return std::string(dtype_name(a.w->type)) + " " + std::to_string(a.w->rows) + "x" + std::to_string(a.w->cols) +
         " n<=" + std::to_string(bucket) + (a.x->rows > 1024 ? "+" : "") + " t" + std::to_string(a.pool->size());
}

Status matmul(const Weight& w, const Tensor& x, Tensor y, const Weight* bias, ThreadPool& pool) {
  ANVIL_RETURN_IF_ERROR(validate(w, x, y, bias));
  if (x.rows == 0) return Status::ok();
  const MatmulArgs args{&w.t, &x, y, &pool};
  auto& registry = matmul_registry();
  const auto* c = registry.choose(matmul_shape_key(args), args, heuristic_candidate(args), [&] {
    return std::unique_ptr<TuningTrial>(new MatmulTrial(w.t, token_bucket(x.rows), pool));
  });
  if (!c)
    return make_error(StatusCode::unsupported, "matmul '", w.name, "': no CPU kernel for ", dtype_name(w.t.type),
                      " weights");
  ANVIL_RETURN_IF_ERROR(c->run(args));
  if (bias) ANVIL_RETURN_IF_ERROR(add_bias(*bias, y));
  return Status::ok();
}

}  // namespace anvil::cpu
