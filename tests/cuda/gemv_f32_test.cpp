// cuda::launch_gemv_f32 (the exact decode GEMV, cuda/gemv_f32.h) against the CPU reference, and
// its matmul candidate "gemv_f32" through cuda::matmul_with.
//
// Reference: weights quantized with quant::quantize_row, dequantized with quant::dequantize_row,
// dot products accumulated in double. Bound:
// max |y - ref| / max |ref| <= 1e-5 per token, i.e. f32 summation order only (int8 activations
// would be ~1e-3). Inputs: weight rows offset + scale * u with |offset| in [0.3, 0.6] (so the
// K-quant mins carry weight) and x = 0.5 + u, u in [-1, 1): every dot product has a large common
// part, so max |ref| is a sound scale even for one row, and one misplaced weight or activation
// moves y by ~1e-3 of it. Outputs are poisoned (NaN) before each run; y's padding columns and
// x's padding (1e30) catch writes past `out` and reads past `in`.
// On a machine without a GPU every test skips, printing why.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "cuda/gemv_f32.h"
#include "cuda/matmul.h"
#include "cuda/ops.h"
#include "quant/quant.h"
#include "tests/cuda/op_test_util.h"

namespace anvil::test_cuda {
namespace {

constexpr double kBound = 1e-5;
constexpr uint32_t kPoisonBits = 0x7fc0dead;

class DeviceMemory {
 public:
  explicit DeviceMemory(size_t bytes) : bytes_(bytes) {
    if (cudaMalloc(&ptr_, std::max<size_t>(bytes, 16)) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceMemory() { cudaFree(ptr_); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_;
};

bool is_poison(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b == kPoisonBits;
}

int weight_align(DType t) { return t == DType::Q4_K || t == DType::Q5_K ? 16 : 2; }

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
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = 0.5f + u(rng);
  return v;
}

// One quantized matrix with padded rows, on the host and the device, and its dequantized rows.
struct Matrix {
  DType type;
  int64_t in, out, row_stride;
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // [out, in], quant::dequantize_row of each row
  std::unique_ptr<DeviceMemory> dev;
};

Matrix make_matrix(DType type, int64_t in, int64_t out, uint32_t seed) {
  std::mt19937 rng(seed);
  Matrix m{type, in, out, 0, {}, {}, nullptr};
  const int64_t packed = int64_t(*row_bytes(type, uint64_t(in)));
  m.row_stride = packed + weight_align(type) * int64_t(seed % 3);  // padded rows too
  m.bytes.assign(size_t(out * m.row_stride), 0xab);
  m.deq.resize(size_t(out * in));
  const std::vector<float> w = weight_values(rng, out, in);
  for (int64_t r = 0; r < out; ++r) {
    uint8_t* row = &m.bytes[size_t(r * m.row_stride)];
    EXPECT_TRUE(quant::quantize_row(type, &w[size_t(r * in)], row, in).is_ok());
    EXPECT_TRUE(quant::dequantize_row(type, row, &m.deq[size_t(r * in)], in).is_ok());
  }
  m.dev = std::make_unique<DeviceMemory>(m.bytes.size());
  EXPECT_NE(m.dev->get(), nullptr);
  EXPECT_EQ(cudaMemcpy(m.dev->get(), m.bytes.data(), m.bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
  return m;
}

// Activations for n tokens with padded rows (the padding is 1e30, so reading it shows), on the
// device, and the double-precision reference y = W x for them.
struct Tokens {
  int n;
  int64_t x_stride;
  std::vector<float> x;
  std::vector<double> ref;  // [n, out]
  std::unique_ptr<DeviceMemory> dev;
};

Tokens make_tokens(const Matrix& m, int n, std::mt19937& rng) {
  Tokens t{n, m.in + 4 * (1 + n % 2), {}, {}, nullptr};
  t.x.assign(size_t(n * t.x_stride), 1e30f);
  const std::vector<float> v = activation_values(rng, size_t(n * m.in));
  for (int k = 0; k < n; ++k) std::copy_n(&v[size_t(k * m.in)], m.in, &t.x[size_t(k * t.x_stride)]);
  t.ref.assign(size_t(n * m.out), 0.0);
  for (int k = 0; k < n; ++k)
    for (int64_t r = 0; r < m.out; ++r) {
      double acc = 0;
      const float* w = &m.deq[size_t(r * m.in)];
      const float* x = &t.x[size_t(k * t.x_stride)];
      for (int64_t i = 0; i < m.in; ++i) acc += double(w[i]) * double(x[i]);
      t.ref[size_t(k * m.out + r)] = acc;
    }
  t.dev = std::make_unique<DeviceMemory>(t.x.size() * 4);
  EXPECT_EQ(cudaMemcpy(t.dev->get(), t.x.data(), t.x.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  return t;
}

// Runs one GEMV into a poisoned y with padded rows; returns the worst error over the tokens
// (infinity when an output is unwritten) and checks y's padding stayed poisoned.
double run_case(const Matrix& m, const Tokens& t, int rows_per_warp) {
  const int64_t y_stride = m.out + 3;
  DeviceMemory dy(size_t(t.n * y_stride) * 4);
  EXPECT_TRUE(cuda::poison(dy.get(), dy.bytes()).is_ok());
  cuda::GemvF32Params p;
  p.weight_type = m.type;
  p.weight = m.dev->get();
  p.weight_row_stride = m.row_stride;
  p.in = m.in;
  p.out = m.out;
  p.n = t.n;
  p.x = static_cast<const float*>(t.dev->get());
  p.x_stride = t.x_stride;
  p.y = static_cast<float*>(dy.get());
  p.y_stride = y_stride;
  p.rows_per_warp = rows_per_warp;
  const Status st = cuda::launch_gemv_f32(p, nullptr);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> y(size_t(t.n * y_stride));
  EXPECT_EQ(cudaMemcpy(y.data(), dy.get(), y.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);

  double worst = 0;
  for (int k = 0; k < t.n; ++k) {
    double max_ref = 1e-30, max_err = 0;
    for (int64_t r = 0; r < m.out; ++r) {
      const double ref = t.ref[size_t(k * m.out + r)];
      const float got = y[size_t(k * y_stride + r)];
      max_ref = std::max(max_ref, std::fabs(ref));
      max_err = std::isfinite(got) ? std::max(max_err, std::fabs(double(got) - ref)) : INFINITY;
    }
    worst = std::max(worst, max_err / max_ref);
    for (int64_t r = m.out; r < y_stride; ++r)
      EXPECT_TRUE(is_poison(y[size_t(k * y_stride + r)])) << "token " << k << ": wrote y past out at " << r;
  }
  return worst;
}

void check_type(DType type, std::initializer_list<int64_t> ins) {
  if (const std::string why = cuda::unavailable_reason(); !why.empty()) GTEST_SKIP() << "no GPU: " << why;
  double worst = 0;
  uint32_t seed = 1;
  std::mt19937 rng(uint32_t(type) * 977 + 5);
  for (int64_t in : ins)
    for (int64_t out : {1, 7, 37, 300}) {
      const Matrix m = make_matrix(type, in, out, seed++);
      for (int n : {1, 2, 3, 5, 8}) {
        const Tokens t = make_tokens(m, n, rng);
        for (int rpw : {0, 1, 2, 4}) {
          SCOPED_TRACE(testing::Message() << dtype_name(type) << " in " << in << " out " << out << " n " << n
                                          << " rows_per_warp " << rpw << " row_stride " << m.row_stride);
          const double err = run_case(m, t, rpw);
          EXPECT_LE(err, kBound);
          worst = std::max(worst, err);
        }
      }
    }
  std::printf("gemv_f32 %s: worst max|y - ref| / max|ref| = %.3g\n", std::string(dtype_name(type)).c_str(), worst);
}

TEST(CudaGemvF32, Q4KMatchesReference) { check_type(DType::Q4_K, {256, 768, 2560}); }
// Q5_K: uniform inputs spread over all 32 levels, so about half the values carry a qh bit.
TEST(CudaGemvF32, Q5KMatchesReference) { check_type(DType::Q5_K, {256, 768, 2560}); }
TEST(CudaGemvF32, Q6KMatchesReference) { check_type(DType::Q6_K, {256, 768, 2560}); }
// Q8_0: 34-byte blocks at both 4-byte phases (the kernel's two load cases), odd block counts.
TEST(CudaGemvF32, Q8_0MatchesReference) { check_type(DType::Q8_0, {32, 96, 2560}); }

TEST(CudaGemvF32, RejectsBadParams) {
  if (const std::string why = cuda::unavailable_reason(); !why.empty()) GTEST_SKIP() << "no GPU: " << why;
  DeviceMemory w(8192), x(8192), y(4096);
  cuda::GemvF32Params p;
  p.weight_type = DType::Q4_K;
  p.weight = w.get();
  p.weight_row_stride = 144;
  p.in = 256;
  p.out = 4;
  p.n = 2;
  p.x = static_cast<const float*>(x.get());
  p.x_stride = 256;
  p.y = static_cast<float*>(y.get());
  p.y_stride = 4;
  ASSERT_TRUE(cuda::launch_gemv_f32(p, nullptr).is_ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  auto expect = [&](cuda::GemvF32Params bad, StatusCode code, const char* what) {
    EXPECT_EQ(cuda::launch_gemv_f32(bad, nullptr).code(), code) << what;
  };
  cuda::GemvF32Params b = p;
  b.weight_type = DType::Q4_0;
  expect(b, StatusCode::unsupported, "Q4_0");
  b.weight_type = DType::F32;
  expect(b, StatusCode::unsupported, "F32");
  b = p;
  b.n = 0;
  expect(b, StatusCode::invalid_argument, "n = 0");
  b.n = 9;
  expect(b, StatusCode::invalid_argument, "n = 9");
  b = p;
  b.in = 300;
  expect(b, StatusCode::invalid_argument, "in not a multiple of 256");
  b = p;
  b.out = 0;
  expect(b, StatusCode::invalid_argument, "out = 0");
  b = p;
  b.weight_row_stride = 140;
  expect(b, StatusCode::invalid_argument, "short row stride");
  b.weight_row_stride = 152;
  expect(b, StatusCode::invalid_argument, "Q4_K row stride not 16-byte aligned");
  b = p;
  b.weight = static_cast<const uint8_t*>(w.get()) + 2;
  expect(b, StatusCode::invalid_argument, "misaligned Q4_K weights");
  b = p;
  b.x = static_cast<const float*>(x.get()) + 1;
  expect(b, StatusCode::invalid_argument, "x not 16-byte aligned");
  b = p;
  b.x_stride = 258;
  expect(b, StatusCode::invalid_argument, "x_stride not a multiple of 4");
  b.x_stride = 252;
  expect(b, StatusCode::invalid_argument, "x_stride < in");
  b = p;
  b.y_stride = 3;
  expect(b, StatusCode::invalid_argument, "y_stride < out");
  b = p;
  b.y = nullptr;
  expect(b, StatusCode::invalid_argument, "null y");
  b = p;
  b.rows_per_warp = 3;
  expect(b, StatusCode::invalid_argument, "rows_per_warp 3");
  // One token: its stride is never used, so any stride >= in is fine.
  b = p;
  b.n = 1;
  b.x_stride = 258;
  EXPECT_TRUE(cuda::launch_gemv_f32(b, nullptr).is_ok());
  // Q6_K / Q8_0 need 2-byte alignment only.
  b = p;
  b.weight_type = DType::Q8_0;
  b.weight = static_cast<const uint8_t*>(w.get()) + 2;
  b.weight_row_stride = 8 * 34 + 2;
  EXPECT_TRUE(cuda::launch_gemv_f32(b, nullptr).is_ok());
  b.weight_row_stride = 8 * 34 + 1;
  expect(b, StatusCode::invalid_argument, "odd Q8_0 row stride");
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// ---------------------------------------------------------------------------- through matmul
Twin settled(Twin t) {
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // cuda::poison runs on the legacy stream
  return t;
}

// The candidate against the CPU backend (its matmul forced to the reference candidate), with a
// bias, on contiguous x / y and on column slices: x at column 1 of a wider tensor (not 16-byte
// aligned, odd stride: the candidate's aligned-copy path) and y at column 3 (the rest must stay
// poisoned).
TEST(CudaGemvF32, MatmulCandidateMatchesCpu) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  ScopedEnv force_reference("ANVIL_FORCE_KERNEL", "matmul:reference");
  OwnContext own;
  ASSERT_TRUE(own.ok());
  std::mt19937 rng(900);
  double worst = 0;
  for (DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_0})
    for (int64_t in : {type == DType::Q8_0 ? int64_t(96) : int64_t(512), int64_t(2560)})
      for (int64_t out : {7, 300}) {
        std::vector<uint8_t> bytes(size_t(out) * *row_bytes(type, uint64_t(in)));
        const std::vector<float> wv = weight_values(rng, out, in);
        ASSERT_OK(quant::quantize_rows(type, wv.data(), bytes.data(), in, out, 0));
        TwinWeight w = be.weight("blk.0.ffn_down.weight", type, out, in, std::move(bytes));
        TwinWeight bias = be.weight_f32("blk.0.ffn_down.bias", 1, out, random_values(rng, size_t(out)));
        for (int64_t n : {1, 3, 8}) {
          SCOPED_TRACE(testing::Message() << dtype_name(type) << " in " << in << " out " << out << " n " << n);
          Twin x = settled(be.tensor(n, in, activation_values(rng, size_t(n * in))));
          Twin y = settled(be.poisoned(n, out));
          ASSERT_OK(be.cpu->matmul(w.cpu, x.cpu, y.cpu, &bias.cpu));
          ASSERT_OK(cuda::matmul_with(own.ctx, "gemv_f32", w.gpu, x.gpu, y.gpu, &bias.gpu));
          own.sync();
          double err = be.rel_error(y);
          EXPECT_LE(err, kBound) << "contiguous";
          worst = std::max(worst, err);

          Twin xw = settled(be.tensor(n, in + 5, activation_values(rng, size_t(n * (in + 5)))));
          Twin yw = settled(be.poisoned(n, out + 5));
          const Tensor xc = xw.cpu.slice_cols(1, in), xg = xw.gpu.slice_cols(1, in);
          const Tensor yc = yw.cpu.slice_cols(3, out), yg = yw.gpu.slice_cols(3, out);
          ASSERT_OK(be.cpu->matmul(w.cpu, xc, yc, &bias.cpu));
          ASSERT_OK(cuda::matmul_with(own.ctx, "gemv_f32", w.gpu, xg, yg, &bias.gpu));
          own.sync();
          err = rel_error(read(*be.gpu, yg), read(*be.cpu, yc));
          EXPECT_LE(err, kBound) << "strided, misaligned x";
          worst = std::max(worst, err);
          const std::vector<float> wide = read(*be.gpu, yw.gpu);
          for (int64_t t = 0; t < n; ++t)
            for (int64_t c = 0; c < out + 5; ++c)
              if (c < 3 || c >= 3 + out)
                ASSERT_TRUE(is_poison(wide[size_t(t * (out + 5) + c)])) << "wrote y column " << c << " of token " << t;
        }
        // More than 8 tokens: not this candidate's.
        Twin x9 = settled(be.tensor(9, in, activation_values(rng, size_t(9 * in))));
        Twin y9 = settled(be.poisoned(9, out));
        EXPECT_EQ(cuda::matmul_with(own.ctx, "gemv_f32", w.gpu, x9.gpu, y9.gpu, nullptr).code(),
                  StatusCode::unsupported);
      }
  std::printf("gemv_f32 via matmul_with: worst max|y - ref| / max|ref| = %.3g\n", worst);
}

TEST(CudaGemvF32, CandidateIsListedWithItsBound) {
  bool found = false;
  for (const auto& c : cuda::matmul_candidates())
    if (std::string(c.name) == "gemv_f32") {
      found = true;
      EXPECT_EQ(c.tolerance, 1e-5);
    }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace anvil::test_cuda
