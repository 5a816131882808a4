// CUDA matmul (every candidate of cuda/matmul.h), embed and dequantize_rows against the CPU.
//
// Oracles: the CPU backend with its matmul forced to the reference candidate
// (ANVIL_FORCE_KERNEL=matmul:reference: weights through quant::dequantize_row, f32 dot
// products), so the CPU side's only approximation is f32 summation order; quant::dequantize_row
// itself for dequantize_rows and embed, which must match it bit for bit.
//
// Matmul tolerances, max |y - ref| / max |ref| over the whole output (op_test_util.h):
//   gemv_int8     1e-2  x rounded to int8 per 32 values (the GEMV's own tests measured up to
//                       9.9e-3 of a row's max on zero-mean inputs, bench/NOTES.md)
//   cublas_f16    1e-2  W and x rounded to f16 (2^-11 relative each), f32 accumulation; the
//                       expected error on these inputs is ~1e-4, the bound is the spec's
//   cublas_sgemm  1e-5  f32 throughout (the pedantic math mode rules out TF32)
// Inputs: weight rows are offset + scale * u with |offset| in [0.3, 0.6] and x lies in
// [0.5, 1.5], so every dot product is dominated by in * offset * mean(x): max |ref| is a sound
// scale even for one output (out = 1, n = 1), and the K-quant mins, which carry the offsets,
// matter. Element-order bugs in the dequantizers are caught bit-exactly by the CudaDequant tests.
// The worst error seen per candidate is printed for bench/NOTES.md.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "core/fp16.h"
#include "cuda/dequant.h"
#include "cuda/gemm.h"
#include "cuda/matmul.h"
#include "cuda/ops.h"
#include "quant/quant.h"
#include "tests/cuda/op_test_util.h"

namespace anvil::test_cuda {
namespace {

constexpr uint32_t kPoisonBits = 0x7fc0dead;
const int64_t kTokenCounts[] = {1, 2, 5, 8, 9, 33, 130};
const int64_t kOutRows[] = {1, 7, 64, 300};

// The CPU matmul as the exact-weights oracle (not its int8 SIMD or tuned candidates).
#define ANVIL_CPU_MATMUL_IS_REFERENCE() ScopedEnv force_reference_("ANVIL_FORCE_KERNEL", "matmul:reference")

// cuda::poison launches on the legacy default stream, which the backend's non-blocking stream
// does not wait for: wait here so the poison cannot land after the copies and ops that follow.
void settle() { ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess); }

Twin poisoned(TwinBackends& be, int64_t rows, int64_t cols) {
  Twin t = be.poisoned(rows, cols);
  settle();
  return t;
}

Twin filled(TwinBackends& be, int64_t rows, int64_t cols, const std::vector<float>& values) {
  Twin t = poisoned(be, rows, cols);
  EXPECT_TRUE(be.cpu->copy_from_host(t.cpu, values.data()).is_ok());
  EXPECT_TRUE(be.gpu->copy_from_host(t.gpu, values.data()).is_ok());
  return t;
}

bool is_poison(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b == kPoisonBits;
}

std::vector<float> weight_values(std::mt19937& rng, int64_t rows, int64_t cols) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), mag(0.3f, 0.6f), sc(0.2f, 0.6f);
  std::vector<float> v(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float offset = (u(rng) < 0 ? -1.0f : 1.0f) * mag(rng), scale = sc(rng);
    for (int64_t i = 0; i < cols; ++i) v[size_t(r * cols + i)] = offset + scale * u(rng);
  }
  return v;
}

std::vector<float> activation_values(std::mt19937& rng, size_t n) {
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

std::vector<uint8_t> quantized(DType type, const std::vector<float>& v, int64_t rows, int64_t cols) {
  std::vector<uint8_t> bytes(size_t(rows) * *row_bytes(type, uint64_t(cols)));
  const Status st = quant::quantize_rows(type, v.data(), bytes.data(), cols, rows, 0);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return bytes;
}

const cuda::MatmulCandidate* candidate(std::string_view name) {
  for (const auto& c : cuda::matmul_candidates())
    if (name == c.name) return &c;
  return nullptr;
}

// The dispatch rule cuda::matmul must follow (cuda/ops.h, cuda/matmul.h).
std::string expected_candidate(DType t, int64_t in, int64_t out, int64_t n) {
  const bool gemv_type = t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K || t == DType::Q8_0;
  if (n <= 8 && gemv_type) return "gemv_int8";
  if (t == DType::F32) return "cublas_sgemm";
  if (gemv_type && n > 8 && n <= 128 && cuda::gemm_mma_supports(t, in, out, n)) return "mma_q";
  return "cublas_f16";
}

// Worst error per candidate over a test, printed at its end.
class WorstErrors {
 public:
  void add(const std::string& candidate, double err) {
    double& w = worst_[candidate];
    w = std::max(w, err);
  }
  void print(const char* what) const {
    for (const auto& [name, err] : worst_) std::printf("%s: %s worst max|y - ref| / max|ref| = %.3g\n", what, name.c_str(), err);
  }

 private:
  std::map<std::string, double> worst_;
};

// Every (in, out, n) of a type: the dispatcher on contiguous x/y without bias and on strided
// x/y (column slices) with bias, then every other candidate that supports the call.
void check_matmul_type(TwinBackends& be, OwnContext& own, DType type, const std::vector<int64_t>& ins,
                       WorstErrors& worst, uint32_t seed) {
  std::mt19937 rng(seed);
  for (int64_t in : ins)
    for (int64_t out : kOutRows) {
      const auto wv = weight_values(rng, out, in);
      TwinWeight w = be.weight("blk.0.ffn_up.weight", type, out, in, quantized(type, wv, out, in));
      TwinWeight bias = be.weight_f32("blk.0.ffn_up.bias", 1, out, random_values(rng, size_t(out)));
      for (int64_t n : kTokenCounts) {
        SCOPED_TRACE(testing::Message() << dtype_name(type) << " in " << in << " out " << out << " n " << n);
        const std::string chosen = expected_candidate(type, in, out, n);
        const cuda::MatmulCandidate* first = nullptr;
        for (const auto& c : cuda::matmul_candidates())
          if (!first && c.supports(w.gpu.t, n)) first = &c;
        ASSERT_NE(first, nullptr);
        EXPECT_EQ(first->name, chosen) << "dispatch order";
        const double tol = candidate(chosen)->tolerance;

        // 1. Contiguous, no bias.
        Twin x = filled(be, n, in, activation_values(rng, size_t(n * in)));
        Twin y = poisoned(be, n, out);
        ASSERT_OK(be.cpu->matmul(w.cpu, x.cpu, y.cpu, nullptr));
        ASSERT_OK(be.gpu->matmul(w.gpu, x.gpu, y.gpu, nullptr));
        const std::vector<float> ref = read(*be.cpu, y.cpu);
        double err = rel_error(read(*be.gpu, y.gpu), ref);
        EXPECT_LE(err, tol) << chosen;
        worst.add(chosen, err);

        // 2. Strided x and y (column slices of wider tensors), with bias; y's other columns stay
        // poisoned.
        Twin xw = filled(be, n, in + 8, activation_values(rng, size_t(n * (in + 8))));
        Twin yw = poisoned(be, n, out + 5);
        const Tensor xc = xw.cpu.slice_cols(4, in), xg = xw.gpu.slice_cols(4, in);
        const Tensor yc = yw.cpu.slice_cols(3, out), yg = yw.gpu.slice_cols(3, out);
        ASSERT_OK(be.cpu->matmul(w.cpu, xc, yc, &bias.cpu));
        ASSERT_OK(be.gpu->matmul(w.gpu, xg, yg, &bias.gpu));
        err = rel_error(read(*be.gpu, yg), read(*be.cpu, yc));
        EXPECT_LE(err, tol) << chosen << " strided + bias";
        worst.add(chosen, err);
        const std::vector<float> wide = read(*be.gpu, yw.gpu);
        for (int64_t t = 0; t < n; ++t)
          for (int64_t c = 0; c < out + 5; ++c)
            if (c < 3 || c >= 3 + out)
              ASSERT_TRUE(is_poison(wide[size_t(t * (out + 5) + c)])) << "wrote y column " << c << " of token " << t;

        // 3. The other candidates that run this call, on the contiguous inputs of 1.
        for (const auto& c : cuda::matmul_candidates()) {
          if (c.name == chosen || !c.supports(w.gpu.t, n)) continue;
          be.poison(y);
          settle();
          ASSERT_OK(cuda::matmul_with(own.ctx, c.name, w.gpu, x.gpu, y.gpu, nullptr));
          own.sync();
          err = rel_error(read(*be.gpu, y.gpu), ref);
          EXPECT_LE(err, c.tolerance) << c.name;
          worst.add(c.name, err);
        }
      }
    }
}

#define ANVIL_MATMUL_TEST_SETUP()       \
  TwinBackends be = ANVIL_REQUIRE_CUDA(); \
  ANVIL_CPU_MATMUL_IS_REFERENCE();      \
  OwnContext own;                       \
  ASSERT_TRUE(own.ok());                \
  WorstErrors worst

TEST(CudaMatmul, KQuantsMatchCpu) {
  ANVIL_MATMUL_TEST_SETUP();
  uint32_t seed = 100;
  for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) check_matmul_type(be, own, t, {256, 512, 2560}, worst, seed++);
  worst.print("K-quants");
}

TEST(CudaMatmul, BlockTypesMatchCpu) {
  ANVIL_MATMUL_TEST_SETUP();
  uint32_t seed = 200;
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0})
    check_matmul_type(be, own, t, {32, 96, 2560}, worst, seed++);
  worst.print("32-blocks");
}

// F32 (sgemm), F16 (GemmEx on the weights in place) and BF16 (dequantized to f16); in = 100 is
// not a multiple of 8, so it takes the dequantizer's scalar path.
TEST(CudaMatmul, PlainTypesMatchCpu) {
  ANVIL_MATMUL_TEST_SETUP();
  uint32_t seed = 300;
  for (DType t : {DType::F32, DType::F16, DType::BF16}) check_matmul_type(be, own, t, {100, 256, 2560}, worst, seed++);
  worst.print("F32/F16/BF16");
}

// The cuBLAS candidate's scratch budgets (64 MiB each): W of 13200 x 2560 f16 (67.6 MB) is
// dequantized in two row tiles (13056 + 144 rows); x of 130 x 262144 f16 (68 MB) is converted in
// two token chunks (128 + 2) against one dequantized W tile.
TEST(CudaMatmul, CublasTilesRowsAndChunksTokens) {
  ANVIL_MATMUL_TEST_SETUP();
  struct Case {
    DType type;
    int64_t in, out, n;
  };
  std::mt19937 rng(400);
  for (const Case& c : {Case{DType::Q8_0, 2560, 13200, 9}, Case{DType::Q4_0, 262144, 7, 130}}) {
    SCOPED_TRACE(testing::Message() << dtype_name(c.type) << " in " << c.in << " out " << c.out << " n " << c.n);
    const auto wv = weight_values(rng, c.out, c.in);
    TwinWeight w = be.weight("output.weight", c.type, c.out, c.in, quantized(c.type, wv, c.out, c.in));
    TwinWeight bias = be.weight_f32("output.bias", 1, c.out, random_values(rng, size_t(c.out)));
    Twin x = filled(be, c.n, c.in, activation_values(rng, size_t(c.n * c.in)));
    Twin y = poisoned(be, c.n, c.out);
    ASSERT_OK(be.cpu->matmul(w.cpu, x.cpu, y.cpu, &bias.cpu));
    ASSERT_OK(be.gpu->matmul(w.gpu, x.gpu, y.gpu, &bias.gpu));
    const double err = be.rel_error(y);
    EXPECT_LE(err, 1e-2);
    worst.add("cublas_f16", err);
  }
  worst.print("tiled");
}

TEST(CudaMatmul, RejectsBadArguments) {
  ANVIL_MATMUL_TEST_SETUP();
  std::mt19937 rng(500);
  const int64_t in = 256, out = 8;
  TwinWeight w = be.weight("w", DType::Q4_K, out, in, quantized(DType::Q4_K, weight_values(rng, out, in), out, in));
  Twin x = filled(be, 3, in, activation_values(rng, 3 * in));
  Twin y = poisoned(be, 3, out);
  ASSERT_OK(be.gpu->matmul(w.gpu, x.gpu, y.gpu, nullptr));

  Twin y_wrong = poisoned(be, 3, out + 1);
  EXPECT_EQ(be.gpu->matmul(w.gpu, x.gpu, y_wrong.gpu, nullptr).code(), StatusCode::invalid_argument);
  Twin x_wrong = filled(be, 3, in - 32, activation_values(rng, 3 * (in - 32)));
  EXPECT_EQ(be.gpu->matmul(w.gpu, x_wrong.gpu, y.gpu, nullptr).code(), StatusCode::invalid_argument);
  Twin y_rows = poisoned(be, 2, out);
  EXPECT_EQ(be.gpu->matmul(w.gpu, x.gpu, y_rows.gpu, nullptr).code(), StatusCode::invalid_argument);
  TwinWeight short_bias = be.weight_f32("b", 1, out - 1, random_values(rng, size_t(out - 1)));
  EXPECT_EQ(be.gpu->matmul(w.gpu, x.gpu, y.gpu, &short_bias.gpu).code(), StatusCode::invalid_argument);
  Twin x16 = be.typed(DType::F16, 3, in);
  settle();
  EXPECT_EQ(be.gpu->matmul(w.gpu, x16.gpu, y.gpu, nullptr).code(), StatusCode::invalid_argument);
  Weight unbound;
  EXPECT_EQ(be.gpu->matmul(unbound, x.gpu, y.gpu, nullptr).code(), StatusCode::invalid_argument);
  // Q8_K is an activation format: uploadable, but no matmul runs it.
  TwinWeight q8k = be.weight("q8k", DType::Q8_K, out, in, std::vector<uint8_t>(size_t(out) * 292, 0));
  EXPECT_EQ(be.gpu->matmul(q8k.gpu, x.gpu, y.gpu, nullptr).code(), StatusCode::unsupported);

  EXPECT_EQ(cuda::matmul_with(own.ctx, "no_such_kernel", w.gpu, x.gpu, y.gpu, nullptr).code(), StatusCode::not_found);
  Twin x9 = filled(be, 9, in, activation_values(rng, 9 * in));
  Twin y9 = poisoned(be, 9, out);
  EXPECT_EQ(cuda::matmul_with(own.ctx, "gemv_int8", w.gpu, x9.gpu, y9.gpu, nullptr).code(), StatusCode::unsupported);
  EXPECT_EQ(cuda::matmul_with(own.ctx, "cublas_sgemm", w.gpu, x.gpu, y.gpu, nullptr).code(), StatusCode::unsupported);
  ASSERT_OK(cuda::matmul_cublas(own.ctx, w.gpu, x9.gpu, y9.gpu, nullptr));
  own.sync();

  // No tokens: nothing to do, and not an error.
  Twin x0 = poisoned(be, 0, in), y0 = poisoned(be, 0, out);
  EXPECT_TRUE(be.gpu->matmul(w.gpu, x0.gpu, y0.gpu, nullptr).is_ok());
  ASSERT_OK(be.gpu->synchronize());
}

// ---------------------------------------------------------------------------- dequantize_rows
struct TypeShape {
  DType type;
  int64_t cols;
};

const TypeShape kDequantShapes[] = {
    {DType::F32, 100},  {DType::F32, 96},   {DType::F16, 100},  {DType::F16, 96},   {DType::BF16, 100},
    {DType::BF16, 96},  {DType::Q4_0, 96},  {DType::Q4_1, 96},  {DType::Q5_0, 96},  {DType::Q5_1, 96},
    {DType::Q8_0, 96},  {DType::Q4_K, 512}, {DType::Q5_K, 512}, {DType::Q6_K, 512},
};

// Device copy of host bytes, freed with the test.
std::shared_ptr<DeviceBuffer> device_copy(TwinBackends& be, const void* host, size_t bytes) {
  auto buf = be.gpu->alloc(std::max<size_t>(bytes, 16)).value();
  EXPECT_EQ(cudaMemcpy(buf->data(), host, bytes, cudaMemcpyHostToDevice), cudaSuccess);
  return buf;
}

// The CPU oracle's rows: ref[r] = quant::dequantize_row of row r.
std::vector<std::vector<float>> reference_rows(DType type, const std::vector<uint8_t>& bytes, int64_t rows,
                                               int64_t cols) {
  const size_t rb = *row_bytes(type, uint64_t(cols));
  std::vector<std::vector<float>> ref(static_cast<size_t>(rows), std::vector<float>(static_cast<size_t>(cols)));
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_TRUE(quant::dequantize_row(type, bytes.data() + size_t(r) * rb, ref[size_t(r)].data(), cols).is_ok());
  return ref;
}

// Runs dequantize_rows into a fresh poisoned device buffer and returns the bytes of the whole
// buffer (so writes past a row or into the gaps of a strided output show up as non-poison).
std::vector<uint8_t> run_dequant(TwinBackends& be, OwnContext& own, const Tensor& w, const int32_t* ids,
                                 int64_t first, int64_t n_rows, DType out_type, size_t offset, size_t stride) {
  const size_t bytes = offset + size_t(n_rows) * stride;
  auto buf = be.gpu->alloc(bytes + 16).value();
  EXPECT_TRUE(cuda::poison(buf->data(), (bytes + 16) / 4 * 4).is_ok());
  settle();
  const Status st =
      cuda::dequantize_rows(own.ctx, w, ids, first, n_rows, out_type, static_cast<char*>(buf->data()) + offset, stride);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  own.sync();
  std::vector<uint8_t> host(bytes);
  EXPECT_EQ(cudaMemcpy(host.data(), buf->data(), bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

// Output row i must be ref[src[i]] exactly (F32 bits, or fp32_to_fp16 of them), and the bytes
// between rows untouched.
void expect_rows(const std::vector<uint8_t>& got, const std::vector<std::vector<float>>& ref,
                 const std::vector<int64_t>& src, DType out_type, size_t offset, size_t stride, int64_t cols) {
  const size_t es = out_type == DType::F32 ? 4 : 2;
  size_t mismatches = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    const uint8_t* row = got.data() + offset + i * stride;
    for (int64_t c = 0; c < cols; ++c) {
      const float want = ref[size_t(src[i])][size_t(c)];
      if (out_type == DType::F32) {
        mismatches += std::memcmp(row + size_t(c) * 4, &want, 4) != 0;
      } else {
        const uint16_t want16 = fp32_to_fp16(want);
        mismatches += std::memcmp(row + size_t(c) * 2, &want16, 2) != 0;
      }
    }
    // The gap between this row and the next must still hold the poison (the buffer was filled
    // with kPoisonBits from its first byte, so byte k holds byte k % 4 of the pattern).
    if (i + 1 < src.size())
      for (size_t k = offset + i * stride + size_t(cols) * es; k < offset + (i + 1) * stride; ++k)
        mismatches += got[k] != uint8_t(kPoisonBits >> (8 * (k % 4)));
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(CudaDequant, RowsAreBitExactForEveryType) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  OwnContext own;
  ASSERT_TRUE(own.ok());
  std::mt19937 rng(600);
  const int64_t rows = 6;
  for (const TypeShape& s : kDequantShapes) {
    SCOPED_TRACE(testing::Message() << dtype_name(s.type) << " cols " << s.cols);
    const auto values = weight_values(rng, rows, s.cols);
    const auto bytes = quantized(s.type, values, rows, s.cols);
    const auto ref = reference_rows(s.type, bytes, rows, s.cols);
    auto dev = device_copy(be, bytes.data(), bytes.size());
    const Tensor w = Tensor::contiguous(dev->data(), s.type, rows, s.cols);

    // Row ids, some out of range (clamped to the first / last row).
    const std::vector<int32_t> ids = {5, 0, 3, 3, -7, 6, 1 << 30, 2};
    const std::vector<int64_t> clamped = {5, 0, 3, 3, 0, 5, 5, 2};
    auto dev_ids = device_copy(be, ids.data(), ids.size() * 4);
    const auto* ids_ptr = static_cast<const int32_t*>(dev_ids->data());

    const size_t f32_row = size_t(s.cols) * 4, f16_row = size_t(s.cols) * 2;
    struct Run {
      const char* what;
      const int32_t* ids;
      int64_t first, n;
      DType out;
      size_t offset, stride;
      std::vector<int64_t> src;
    };
    const Run runs[] = {
        {"f32 rows 1..4, contiguous", nullptr, 1, 4, DType::F32, 0, f32_row, {1, 2, 3, 4}},
        {"f32 one row", nullptr, 5, 1, DType::F32, 0, f32_row, {5}},
        {"f32 ids, padded stride", ids_ptr, 0, 8, DType::F32, 0, f32_row + 32, clamped},
        {"f32 ids 2..6, misaligned", ids_ptr, 2, 5, DType::F32, 4, f32_row + 4, {3, 3, 0, 5, 5}},
        {"f16 rows 0..5, contiguous", nullptr, 0, 6, DType::F16, 0, f16_row, {0, 1, 2, 3, 4, 5}},
        {"f16 ids, odd stride", ids_ptr, 0, 8, DType::F16, 2, f16_row + 6, clamped},
    };
    for (const Run& r : runs) {
      SCOPED_TRACE(r.what);
      const auto got = run_dequant(be, own, w, r.ids, r.first, r.n, r.out, r.offset, r.stride);
      expect_rows(got, ref, r.src, r.out, r.offset, r.stride, s.cols);
    }
  }
}

// Every F16 and BF16 bit pattern (zeros, subnormals, infinities, NaN payloads) as one 256 x 256
// table: the F32 output must equal the CPU's conversion bit for bit.
TEST(CudaDequant, EveryHalfAndBfloatBitPattern) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  OwnContext own;
  ASSERT_TRUE(own.ok());
  std::vector<uint8_t> bytes(65536 * 2);
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    std::memcpy(&bytes[i * 2], &h, 2);
  }
  auto dev = device_copy(be, bytes.data(), bytes.size());
  for (DType type : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtype_name(type));
    const Tensor w = Tensor::contiguous(dev->data(), type, 256, 256);
    const auto ref = reference_rows(type, bytes, 256, 256);
    std::vector<int64_t> all(256);
    for (int64_t r = 0; r < 256; ++r) all[size_t(r)] = r;
    const auto got = run_dequant(be, own, w, nullptr, 0, 256, DType::F32, 0, 256 * 4);
    expect_rows(got, ref, all, DType::F32, 0, 256 * 4, 256);
  }
}

TEST(CudaDequant, RejectsBadArguments) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  OwnContext own;
  ASSERT_TRUE(own.ok());
  auto buf = be.gpu->alloc(1 << 16).value();
  const Tensor w = Tensor::contiguous(buf->data(), DType::Q4_K, 4, 256);
  void* out = static_cast<char*>(buf->data()) + 8192;
  EXPECT_TRUE(cuda::dequantize_rows(own.ctx, w, nullptr, 0, 4, DType::F32, out, 1024).is_ok());
  EXPECT_EQ(cuda::dequantize_rows(own.ctx, w, nullptr, 1, 4, DType::F32, out, 1024).code(),
            StatusCode::invalid_argument);  // rows past the end
  EXPECT_EQ(cuda::dequantize_rows(own.ctx, w, nullptr, 0, 4, DType::F32, out, 1000).code(),
            StatusCode::invalid_argument);  // stride shorter than a row
  EXPECT_EQ(cuda::dequantize_rows(own.ctx, w, nullptr, 0, 4, DType::BF16, out, 1024).code(),
            StatusCode::invalid_argument);  // output type
  EXPECT_EQ(cuda::dequantize_rows(own.ctx, w, nullptr, 0, 4, DType::F32, nullptr, 1024).code(),
            StatusCode::invalid_argument);
  const Tensor q8k = Tensor::contiguous(buf->data(), DType::Q8_K, 4, 256);
  EXPECT_EQ(cuda::dequantize_rows(own.ctx, q8k, nullptr, 0, 4, DType::F32, out, 1024).code(), StatusCode::unsupported);
  EXPECT_TRUE(cuda::dequantize_rows(own.ctx, w, nullptr, 0, 0, DType::F32, nullptr, 0).is_ok());  // nothing to do
  own.sync();
}

// ---------------------------------------------------------------------------- embed
TwinSteps step_of(TwinBackends& be, const std::vector<int32_t>& ids) {
  StepBatch b;
  std::vector<int32_t> pages(size_t((ids.size() + 15) / 16 + 1));
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = int32_t(i);
  b.add_sequence(ids, 0, pages);
  return be.step(b);
}

// Bit-exact for F32 output: the same quant::dequantize_row values the CPU backend writes, into a
// contiguous out and into a column slice of a wider one (the rest left poisoned).
TEST(CudaEmbed, EveryTableTypeMatchesCpuBitExact) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(700);
  const int64_t vocab = 37;
  const std::vector<int32_t> ids = {0, 36, 5, 5, 17, 1, 36, 20, 8};
  const TwinSteps step = step_of(be, ids);
  const int64_t n = int64_t(ids.size());
  for (const TypeShape& s : kDequantShapes)
    for (int64_t dim : {s.cols, s.cols * 5}) {  // 5x: 480 / 500 / 2560 values per row
      SCOPED_TRACE(testing::Message() << dtype_name(s.type) << " dim " << dim);
      const auto values = weight_values(rng, vocab, dim);
      TwinWeight table = be.weight("token_embd.weight", s.type, vocab, dim, quantized(s.type, values, vocab, dim));

      Twin out = poisoned(be, n, dim);
      ASSERT_OK(be.cpu->embed(table.cpu, step.cpu, out.cpu));
      ASSERT_OK(be.gpu->embed(table.gpu, step.gpu, out.gpu));
      const auto got = read(*be.gpu, out.gpu), want = read(*be.cpu, out.cpu);
      EXPECT_LE(rel_error(got, want), 1e-6);
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << "not bit-exact";

      Twin wide = poisoned(be, n, dim + 3);
      const Tensor oc = wide.cpu.slice_cols(1, dim), og = wide.gpu.slice_cols(1, dim);
      ASSERT_OK(be.cpu->embed(table.cpu, step.cpu, oc));
      ASSERT_OK(be.gpu->embed(table.gpu, step.gpu, og));
      const auto got_wide = read(*be.gpu, wide.gpu), want_wide = read(*be.cpu, wide.cpu);
      EXPECT_EQ(std::memcmp(got_wide.data(), want_wide.data(), got_wide.size() * 4), 0)
          << "strided out differs (or the untouched columns were written)";
    }
}

TEST(CudaEmbed, RejectsOutOfRangeIdsWithoutWriting) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(800);
  TwinWeight table = be.weight_f32("token_embd.weight", 10, 8, random_values(rng, 80));
  for (int32_t bad : {10, -1, 1 << 30}) {
    const TwinSteps step = step_of(be, {3, bad, 4});
    Twin out = poisoned(be, 3, 8);
    const Status s = be.gpu->embed(table.gpu, step.gpu, out.gpu);
    EXPECT_EQ(s.code(), StatusCode::invalid_argument);
    EXPECT_NE(s.message().find(std::to_string(bad)), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("vocab size 10"), std::string::npos) << s.message();
    const auto got = read(*be.gpu, out.gpu);
    for (float v : got) EXPECT_TRUE(is_poison(v)) << "embed wrote before rejecting";
  }
  Twin wrong = poisoned(be, 2, 8);
  EXPECT_EQ(be.gpu->embed(table.gpu, step_of(be, {1, 2, 3}).gpu, wrong.gpu).code(), StatusCode::invalid_argument);
}

}  // namespace
}  // namespace anvil::test_cuda
