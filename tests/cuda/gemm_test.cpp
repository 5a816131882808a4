// cuda::launch_gemm_mma (the tensor-core GEMM on quantized weights) against CPU references in
// double. Weights are random rows quantized with quant::quantize_row; two references:
//   - exact: weights from quant::dequantize_row, f32 activations. The spec bound is normwise,
//     ||y - ref|| / ||ref|| <= 1e-2 over the whole output. Why 1e-2: the kernel rounds x and every
//     dequantized weight to f16 (unit roundoff u = 2^-11 = 4.9e-4, plus the rounding of the
//     per-sub-block scale and min); with random signs these errors add like a random walk, so the
//     normwise error is a small multiple of u (~1e-3 seen in the model below: weights near zero
//     lose relative accuracy in scale * q - min). 1e-2 is the spec's bound for f16 operands
//     (bf16 would sit between 1e-3 and 1e-2) and leaves room for worse-conditioned inputs; the
//     tight check below catches the bugs the loose bound could hide.
//   - f16 model: x rounded to f16 and each weight computed as the kernel does it — one f16
//     rounding of fl16(d * sc) * q - fl16(dmin * m) (Q4_K, Q5_K), of fl16(d * sc) * (q - 32)
//     (Q6_K), of d * q (Q8_0) — written here from the block layouts in quant/blocks.h, not from
//     the kernel. Only the f32 accumulation separates the kernel from it, so max |y - model| is
//     bounded by 1e-4 of the token's output scale: one wrong sub-block scale (~4e-2), one swapped
//     pair of quants (~7e-3 at in = 2560) or a misplaced row all fail it.
// Outputs are NaN-poisoned before each run (an unwritten element fails), y's padding columns must
// stay poisoned, x's padding holds 1e30 (read by mistake it would saturate to 65504 and fail), and
// the scratch is poisoned too (the split-K counters must be zeroed by the launch itself).
// Shapes cover n = 1, 15, 17, 100, 512, out not a multiple of any tile, padded row strides
// (Q6_K: rows only 2-byte aligned), every tile configuration and forced k splits.
// On a machine without a GPU every GPU test skips, printing why.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "cuda/device.h"
#include "cuda/gemm.h"
#include "cuda/ops.h"
#include "quant/blocks.h"
#include "quant/quant.h"

namespace anvil::cuda {
namespace {

constexpr double kSpecBound = 1e-2;   // normwise, vs exact f32 dequantized weights and activations
constexpr double kModelBound = 1e-4;  // max elementwise / token scale, vs the f16 model

class DeviceMem {
 public:
  explicit DeviceMem(size_t bytes) : bytes_(bytes) {
    if (cudaMalloc(&ptr_, std::max<size_t>(bytes, 16)) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceMem() { cudaFree(ptr_); }
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_;
};

class CudaGemmMma : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << "no GPU: " << why;
  }
};

// Round to the nearest f16 value (ties to even), exactly, from a double (no double rounding
// through float): 11 significant bits, subnormal spacing 2^-24 below 2^-14.
double round_f16(double v) {
  if (v == 0.0 || !std::isfinite(v)) return v;
  int e = 0;
  std::frexp(v, &e);  // |v| in [2^(e-1), 2^e)
  const double ulp = std::ldexp(1.0, std::max(e - 11, -24));
  return std::nearbyint(v / ulp) * ulp;
}

// One row of `in` weights the way the kernel sees them (see the file comment).
std::vector<double> model_row(DType type, const uint8_t* row, int64_t in) {
  std::vector<double> w(static_cast<size_t>(in));
  using namespace quant;
  for (int64_t b = 0; b < in / (type == DType::Q8_0 ? 32 : 256); ++b) {
    double* out = w.data() + b * (type == DType::Q8_0 ? 32 : 256);
    if (type == DType::Q4_K || type == DType::Q5_K) {
      const bool q5 = type == DType::Q5_K;
      const uint8_t* blk = row + b * (q5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K));
      uint16_t d16, dmin16;
      std::memcpy(&d16, blk, 2);
      std::memcpy(&dmin16, blk + 2, 2);
      const uint8_t* scales = blk + 4;
      const uint8_t* qh = q5 ? blk + 16 : nullptr;
      const uint8_t* qs = blk + (q5 ? 48 : 16);
      const double d = fp16_to_fp32(d16), dmin = fp16_to_fp32(dmin16);
      for (int c = 0; c < 4; ++c)
        for (int half = 0; half < 2; ++half) {
          uint8_t sc, m;
          unpack_scale_min_k4(2 * c + half, scales, sc, m);
          const double dsc = round_f16(d * sc), dm = round_f16(dmin * m);
          for (int l = 0; l < 32; ++l) {
            int q = half ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
            if (q5) q |= ((qh[l] >> (2 * c + half)) & 1) << 4;
            out[64 * c + 32 * half + l] = round_f16(dsc * q - dm);
          }
        }
    } else if (type == DType::Q6_K) {
      BlockQ6_K blk;
      std::memcpy(&blk, row + b * sizeof(BlockQ6_K), sizeof blk);
      const double d = fp16_to_fp32(blk.d);
      for (int h = 0; h < 2; ++h)
        for (int g = 0; g < 4; ++g)
          for (int l = 0; l < 32; ++l) {
            const uint8_t ql = blk.ql[64 * h + 32 * (g & 1) + l];
            const int lo = g < 2 ? ql & 15 : ql >> 4;
            const int hi = (blk.qh[32 * h + l] >> (2 * g)) & 3;
            const double dsc = round_f16(d * blk.scales[8 * h + 2 * g + l / 16]);
            out[128 * h + 32 * g + l] = round_f16(dsc * ((lo | (hi << 4)) - 32));
          }
    } else {  // Q8_0
      BlockQ8_0 blk;
      std::memcpy(&blk, row + b * sizeof(BlockQ8_0), sizeof blk);
      const double d = fp16_to_fp32(blk.d);
      for (int l = 0; l < 32; ++l) out[l] = round_f16(d * blk.qs[l]);
    }
  }
  return w;
}

struct Case {
  DType type;
  int64_t in, out, n;
  int config = -1;  // -1: the launcher's choice
  int split_k = 0;  // 0: the launcher's choice
  uint32_t seed = 1;
  bool via_context = false;  // scratch and stream from a Context
};

struct Errors {
  double normwise = 0, model = 0;
};

// Runs one GEMM and checks it; returns its errors. `repeat_bitwise`: run twice, results must be
// bitwise equal (split-K sums in a fixed order).
Errors run_case(const Case& cs, bool repeat_bitwise = false) {
  std::mt19937 rng(cs.seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t packed = int64_t(*row_bytes(cs.type, uint64_t(cs.in)));
  const int64_t pad_unit = cs.type == DType::Q6_K ? 2 : 16;
  const int64_t row_stride = packed + pad_unit * (cs.seed % 3);
  const int64_t x_stride = cs.in + 4 * (cs.seed % 2), y_stride = cs.out + 3;

  // Weights: a per-row scale and offset so the K-quant scales and mins both matter.
  std::vector<float> w(size_t(cs.out * cs.in));
  std::vector<uint8_t> wq(size_t(cs.out * row_stride), 0xab);
  for (int64_t r = 0; r < cs.out; ++r) {
    const float scale = 0.2f + std::fabs(u(rng)), offset = 0.5f * u(rng);
    for (int64_t i = 0; i < cs.in; ++i) w[size_t(r * cs.in + i)] = scale * u(rng) + offset;
    EXPECT_TRUE(quant::quantize_row(cs.type, &w[size_t(r * cs.in)], &wq[size_t(r * row_stride)], cs.in).is_ok());
  }
  std::vector<float> x(size_t(cs.n * x_stride), 1e30f);  // the padding must never be read
  for (int64_t t = 0; t < cs.n; ++t)
    for (int64_t i = 0; i < cs.in; ++i) x[size_t(t * x_stride + i)] = 2.0f * u(rng);

  GemmParams p;
  p.weight_type = cs.type;
  p.weight_row_stride = row_stride;
  p.in = cs.in;
  p.out = cs.out;
  p.n = cs.n;
  p.x_stride = x_stride;
  p.y_stride = y_stride;
  p.config = cs.config;
  p.split_k = cs.split_k;
  const size_t scratch_bytes = gemm_scratch_bytes(p);
  EXPECT_GT(scratch_bytes, 0u);

  DeviceMem dw(wq.size()), dx(x.size() * 4), dy(size_t(cs.n * y_stride) * 4), dscratch(scratch_bytes);
  EXPECT_TRUE(dw.get() && dx.get() && dy.get() && dscratch.get());
  EXPECT_EQ(cudaMemcpy(dw.get(), wq.data(), wq.size(), cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(dx.get(), x.data(), x.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  p.weight = dw.get();
  p.x = static_cast<const float*>(dx.get());
  p.y = static_cast<float*>(dy.get());
  p.scratch = dscratch.get();
  p.scratch_bytes = scratch_bytes;

  std::vector<float> y(size_t(cs.n * y_stride)), y_first;
  for (int run = 0; run < (repeat_bitwise ? 2 : 1); ++run) {
    EXPECT_TRUE(poison(dy.get(), dy.bytes()).is_ok());
    EXPECT_TRUE(poison(dscratch.get(), dscratch.bytes() / 4 * 4).is_ok());
    if (cs.via_context) {
      Context ctx;
      int device = 0;
      EXPECT_EQ(cudaGetDevice(&device), cudaSuccess);
      EXPECT_EQ(cudaDeviceGetAttribute(&ctx.sm_count, cudaDevAttrMultiProcessorCount, device), cudaSuccess);
      GemmParams q = p;
      q.scratch = nullptr;
      q.scratch_bytes = 0;
      const Status st = launch_gemm_mma(q, ctx);
      EXPECT_TRUE(st.is_ok()) << st.to_string();
      EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    } else {
      const Status st = launch_gemm_mma(p, nullptr);
      EXPECT_TRUE(st.is_ok()) << st.to_string();
    }
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(y.data(), dy.get(), y.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    if (run == 0) y_first = y;
  }
  if (repeat_bitwise) EXPECT_EQ(std::memcmp(y.data(), y_first.data(), y.size() * 4), 0) << "results differ between runs";

  // References, in double.
  std::vector<double> xh(size_t(cs.n * cs.in));
  for (int64_t t = 0; t < cs.n; ++t)
    for (int64_t i = 0; i < cs.in; ++i) xh[size_t(t * cs.in + i)] = round_f16(x[size_t(t * x_stride + i)]);
  std::vector<float> wd(size_t(cs.in));
  std::vector<double> scale(size_t(cs.n), 0.0), sq_terms(size_t(cs.n), 0.0);
  std::vector<double> ref(size_t(cs.n * cs.out)), model(size_t(cs.n * cs.out));
  for (int64_t r = 0; r < cs.out; ++r) {
    EXPECT_TRUE(quant::dequantize_row(cs.type, &wq[size_t(r * row_stride)], wd.data(), cs.in).is_ok());
    const std::vector<double> wm = model_row(cs.type, &wq[size_t(r * row_stride)], cs.in);
    for (int64_t t = 0; t < cs.n; ++t) {
      const float* xt = &x[size_t(t * x_stride)];
      const double* xht = &xh[size_t(t * cs.in)];
      double acc = 0, accm = 0;
      for (int64_t i = 0; i < cs.in; ++i) {
        const double term = double(wd[size_t(i)]) * double(xt[i]);
        acc += term;
        sq_terms[size_t(t)] += term * term;
        accm += wm[size_t(i)] * xht[i];
      }
      ref[size_t(t * cs.out + r)] = acc;
      model[size_t(t * cs.out + r)] = accm;
    }
  }

  Errors e;
  uint32_t poison_bits = 0x7fc0dead;
  float poison_value;
  std::memcpy(&poison_value, &poison_bits, 4);
  double err2 = 0, ref2 = 0;
  int64_t unwritten = 0, overwritten = 0;
  for (int64_t t = 0; t < cs.n; ++t) {
    double row_max = 0;
    for (int64_t r = 0; r < cs.out; ++r) row_max = std::max(row_max, std::fabs(model[size_t(t * cs.out + r)]));
    row_max = std::max({row_max, std::sqrt(sq_terms[size_t(t)] / double(cs.out)), 1e-30});
    for (int64_t r = 0; r < cs.out; ++r) {
      const float got = y[size_t(t * y_stride + r)];
      if (!std::isfinite(got)) {
        ++unwritten;
        e.normwise = e.model = INFINITY;
        continue;
      }
      const double d = double(got) - ref[size_t(t * cs.out + r)];
      err2 += d * d;
      ref2 += ref[size_t(t * cs.out + r)] * ref[size_t(t * cs.out + r)];
      e.model = std::max(e.model, std::fabs(double(got) - model[size_t(t * cs.out + r)]) / row_max);
    }
    for (int64_t r = cs.out; r < y_stride; ++r)  // y's padding must stay poisoned
      if (std::memcmp(&y[size_t(t * y_stride + r)], &poison_value, 4) != 0) ++overwritten;
  }
  EXPECT_EQ(unwritten, 0) << "outputs not written (or not finite)";
  EXPECT_EQ(overwritten, 0) << "outputs written past out";
  if (std::isfinite(e.normwise)) e.normwise = std::sqrt(err2 / std::max(ref2, 1e-300));
  return e;
}

struct Worst {
  Errors e;
  void check(const Case& cs, const Errors& got) {
    SCOPED_TRACE(testing::Message() << dtype_name(cs.type) << " in " << cs.in << " out " << cs.out << " n " << cs.n
                                    << " config " << cs.config << " split_k " << cs.split_k);
    EXPECT_LE(got.normwise, kSpecBound);
    EXPECT_LE(got.model, kModelBound);
    e.normwise = std::max(e.normwise, got.normwise);
    e.model = std::max(e.model, got.model);
  }
  void print(const char* what) const {
    std::printf("%s: normwise error vs exact %.3g, max error vs the f16 model %.3g (of the token's scale)\n", what,
                e.normwise, e.model);
  }
};

// The shapes of the brief: odd n, out not a multiple of any tile, a few k tiles and many.
void run_shapes(DType type) {
  Worst worst;
  uint32_t seed = 11;
  const Case cases[] = {
      {type, 256, 1, 1},   {type, 512, 70, 15},  {type, 768, 130, 17}, {type, 2560, 200, 100},
      {type, 1024, 160, 512}, {type, 4864, 40, 33},  // many k tiles: the launcher splits k
  };
  for (Case cs : cases) {
    cs.seed = seed++;
    worst.check(cs, run_case(cs));
  }
  worst.print(std::string(dtype_name(type)).c_str());
}

// Every tile configuration, with the launcher's split and forced splits (1, 3), on one shape
// whose n and out are multiples of no tile.
void run_configs(DType type) {
  Worst worst;
  uint32_t seed = 101;
  for (int config = 0; config < gemm_config_count(); ++config)
    for (int split : {0, 1, 3}) {
      Case cs{type, 1536, 333, 77, config, split, seed++};
      GemmParams probe;
      probe.weight_type = type;
      probe.in = cs.in;
      probe.out = cs.out;
      probe.n = cs.n;
      probe.config = config;
      probe.split_k = split;
      if (gemm_scratch_bytes(probe) == 0) {  // this configuration does not fit this type
        std::printf("%s: config %s not available\n", std::string(dtype_name(type)).c_str(), gemm_config_name(config));
        continue;
      }
      worst.check(cs, run_case(cs, /*repeat_bitwise=*/split == 3));
    }
  worst.print((std::string(dtype_name(type)) + " (all configs)").c_str());
}

TEST_F(CudaGemmMma, Q4KShapes) { run_shapes(DType::Q4_K); }
TEST_F(CudaGemmMma, Q5KShapes) { run_shapes(DType::Q5_K); }
TEST_F(CudaGemmMma, Q6KShapes) { run_shapes(DType::Q6_K); }
TEST_F(CudaGemmMma, Q8_0Shapes) { run_shapes(DType::Q8_0); }
TEST_F(CudaGemmMma, Q4KConfigs) { run_configs(DType::Q4_K); }
TEST_F(CudaGemmMma, Q5KConfigs) { run_configs(DType::Q5_K); }
TEST_F(CudaGemmMma, Q6KConfigs) { run_configs(DType::Q6_K); }
TEST_F(CudaGemmMma, Q8_0Configs) { run_configs(DType::Q8_0); }

// A prefill-sized Qwen3-4B-like shape through the launcher's own plan, and the Context entry point.
TEST_F(CudaGemmMma, Q4KPrefillShapeAndContext) {
  Worst worst;
  worst.check({DType::Q4_K, 2560, 1100, 64}, run_case({DType::Q4_K, 2560, 1100, 64, -1, 0, 7}));
  Case cs{DType::Q4_K, 1024, 300, 40, -1, 0, 8, true};
  worst.check(cs, run_case(cs, true));
  worst.print("Q4_K (prefill shape, Context)");
}

TEST_F(CudaGemmMma, RejectsBadParams) {
  DeviceMem w(1 << 16), x(1 << 16), y(1 << 16);
  GemmParams p;
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
  DeviceMem scratch(gemm_scratch_bytes(p));
  p.scratch = scratch.get();
  p.scratch_bytes = scratch.bytes();
  ASSERT_TRUE(launch_gemm_mma(p, nullptr).is_ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  auto expect = [&](GemmParams bad, StatusCode code, const char* what) {
    EXPECT_EQ(launch_gemm_mma(bad, nullptr).code(), code) << what;
  };
  GemmParams b = p;
  b.weight_type = DType::Q4_0;
  expect(b, StatusCode::unsupported, "Q4_0");
  b = p;
  b.in = 300;
  expect(b, StatusCode::invalid_argument, "in not a multiple of 256");
  b = p;
  b.weight_row_stride = 140;
  expect(b, StatusCode::invalid_argument, "short row stride");
  b = p;
  b.weight_row_stride = 152;
  expect(b, StatusCode::invalid_argument, "Q4_K row stride not 16-byte aligned");
  b = p;
  b.weight = static_cast<const uint8_t*>(w.get()) + 2;
  expect(b, StatusCode::invalid_argument, "misaligned Q4_K weights");
  b = p;
  b.scratch_bytes = 16;
  expect(b, StatusCode::invalid_argument, "small scratch");
  b = p;
  b.n = 0;
  expect(b, StatusCode::invalid_argument, "n = 0");
  b = p;
  b.y = nullptr;
  expect(b, StatusCode::invalid_argument, "null y");
  b = p;
  b.x_stride = 255;
  expect(b, StatusCode::invalid_argument, "x_stride < in");
  b = p;
  b.config = gemm_config_count();
  expect(b, StatusCode::invalid_argument, "config out of range");
  b = p;
  b.split_k = -1;
  expect(b, StatusCode::invalid_argument, "split_k < 0");
}

// No GPU needed.
TEST(CudaGemmMmaSupports, TypesAndShapes) {
  EXPECT_TRUE(gemm_mma_supports(DType::Q4_K, 2560, 9728, 512));
  EXPECT_TRUE(gemm_mma_supports(DType::Q5_K, 256, 1, 1));
  EXPECT_TRUE(gemm_mma_supports(DType::Q6_K, 9728, 2560, 32));
  EXPECT_TRUE(gemm_mma_supports(DType::Q8_0, 2560, 4096, 64));
  EXPECT_FALSE(gemm_mma_supports(DType::Q8_0, 96, 4096, 64));  // in not a multiple of 256
  EXPECT_FALSE(gemm_mma_supports(DType::Q4_0, 2560, 4096, 64));
  EXPECT_FALSE(gemm_mma_supports(DType::F16, 2560, 4096, 64));
  EXPECT_FALSE(gemm_mma_supports(DType::Q4_K, 2560, 0, 64));
  EXPECT_FALSE(gemm_mma_supports(DType::Q4_K, 2560, 64, 0));
  EXPECT_EQ(gemm_config_count(), 6);
  EXPECT_STREQ(gemm_config_name(0), "m64n32");
}

}  // namespace
}  // namespace anvil::cuda
