// Backend::matmul_group on CUDA (cuda::matmul_group): the projections that read one activation,
// with the int8 GEMV's targets sharing one quantized x and one launch per weight type
// (cuda/gemv.h's launch_gemv_prequantized_group).
//
// Oracles: each target run alone through the same backend's matmul, which the grouped launch must
// equal bit for bit (a row's dot product does not depend on which launch or warp computes it);
// and the CPU backend's exact reference matmul, within gemv_int8's 1e-2 (tests/cuda/matmul_test.cpp
// explains the bound).
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/gemv.h"
#include "quant/quant.h"
#include "tests/cuda/op_test_util.h"

namespace anvil::test_cuda {
namespace {

std::vector<uint8_t> quantized_weight(std::mt19937& rng, DType type, int64_t rows, int64_t cols) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), mag(0.3f, 0.6f);
  std::vector<float> v(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float offset = (u(rng) < 0 ? -1.0f : 1.0f) * mag(rng);
    for (int64_t i = 0; i < cols; ++i) v[size_t(r * cols + i)] = offset + 0.4f * u(rng);
  }
  std::vector<uint8_t> bytes(size_t(rows) * *row_bytes(type, uint64_t(cols)));
  EXPECT_TRUE(quant::quantize_rows(type, v.data(), bytes.data(), cols, rows, 0).is_ok());
  return bytes;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(CudaMatmulGroup, GroupedGemvEqualsSeparateMatmulsBitForBit) {
  ScopedEnv tune("ANVIL_TUNE", "off");
  ScopedEnv cuda_tune("ANVIL_CUDA_TUNE", nullptr);
  ScopedEnv fused("ANVIL_CUDA_FUSED", "1");
  ScopedEnv reference("ANVIL_FORCE_KERNEL", "matmul:reference");  // the CPU's exact candidate; CUDA ignores it
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(41);
  const int64_t in = 512;
  // q and k share Q4_K (one launch); v is Q6_K (its own); gate/up-like Q5_K pair of odd sizes.
  struct Spec {
    const char* name;
    DType type;
    int64_t out;
    bool bias;
  };
  const std::vector<std::vector<Spec>> groups = {
      {{"attn_q", DType::Q4_K, 300, false}, {"attn_k", DType::Q4_K, 64, true}, {"attn_v", DType::Q6_K, 64, false}},
      {{"ffn_gate", DType::Q5_K, 129, false}, {"ffn_up", DType::Q5_K, 7, false}},
      {{"a", DType::Q8_0, 33, false}, {"b", DType::Q8_0, 1, false}, {"c", DType::Q8_0, 65, true},
       {"d", DType::Q8_0, 2, false}},  // four: a launch of three, then one
  };
  for (const auto& specs : groups) {
    std::vector<TwinWeight> ws, biases;
    ws.reserve(specs.size());
    biases.reserve(specs.size());
    for (const Spec& s : specs) {
      ws.push_back(be.weight(std::string("blk.0.") + s.name + ".weight", s.type, s.out, in,
                             quantized_weight(rng, s.type, s.out, in)));
      biases.push_back(be.weight_f32(std::string("blk.0.") + s.name + ".bias", 1, s.out,
                                     random_values(rng, size_t(s.out))));
    }
    for (int64_t n : {1, 2, 5, 8, 9, 20}) {
      const std::string what = std::string(specs[0].name) + " group, n " + std::to_string(n);
      Twin x = be.tensor(n, in, random_values(rng, size_t(n * in), 0.5f, 1.5f));
      std::vector<Twin> grouped, alone;
      std::vector<MatmulTarget> t_cpu, t_gpu;
      for (size_t i = 0; i < specs.size(); ++i) {
        grouped.push_back(be.poisoned(n, specs[i].out));
        alone.push_back(be.poisoned(n, specs[i].out));
      }
      for (size_t i = 0; i < specs.size(); ++i) {
        const Weight* b_cpu = specs[i].bias ? &biases[i].cpu : nullptr;
        const Weight* b_gpu = specs[i].bias ? &biases[i].gpu : nullptr;
        t_cpu.push_back({&ws[i].cpu, grouped[i].cpu, b_cpu});
        t_gpu.push_back({&ws[i].gpu, grouped[i].gpu, b_gpu});
      }
      ASSERT_OK(be.cpu->matmul_group(x.cpu, t_cpu));
      ASSERT_OK(be.gpu->matmul_group(x.gpu, t_gpu));
      for (size_t i = 0; i < specs.size(); ++i)
        ASSERT_OK(be.gpu->matmul(ws[i].gpu, x.gpu, alone[i].gpu, specs[i].bias ? &biases[i].gpu : nullptr));
      for (size_t i = 0; i < specs.size(); ++i) {
        EXPECT_TRUE(same_bits(read(*be.gpu, grouped[i].gpu), read(*be.gpu, alone[i].gpu)))
            << what << ": " << specs[i].name << " differs from its own matmul";
        EXPECT_LE(be.rel_error(grouped[i]), 1e-2) << what << ": " << specs[i].name << " against the CPU";
      }
    }
  }
}

TEST(CudaMatmulGroup, RefusesBadTargets) {
  ScopedEnv fused("ANVIL_CUDA_FUSED", "1");
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  std::mt19937 rng(42);
  TwinWeight w = be.weight("blk.0.attn_q.weight", DType::Q4_K, 16, 256, quantized_weight(rng, DType::Q4_K, 16, 256));
  Twin x = be.tensor(1, 256, random_values(rng, 256));
  Twin y = be.poisoned(1, 16), y_bad = be.poisoned(1, 15);
  const MatmulTarget no_weight[] = {{nullptr, y.gpu}};
  EXPECT_EQ(be.gpu->matmul_group(x.gpu, no_weight).code(), StatusCode::invalid_argument);
  const MatmulTarget bad_shape[] = {{&w.gpu, y.gpu}, {&w.gpu, y_bad.gpu}};
  EXPECT_EQ(be.gpu->matmul_group(x.gpu, bad_shape).code(), StatusCode::invalid_argument);
  // Nothing was written by the refused group (validation comes before any launch).
  for (float v : read(*be.gpu, y.gpu)) EXPECT_TRUE(std::isnan(v));

  // The launcher itself: one type and width per launch, at most three matrices.
  cuda::GemvParams p;
  p.weight_type = DType::Q4_K;
  p.weight = w.gpu.t.data;
  p.weight_row_stride = int64_t(w.gpu.t.row_stride);
  p.in = 256;
  p.out = 16;
  p.n = 1;
  p.x = static_cast<const float*>(x.gpu.data);
  p.x_stride = 256;
  p.y = static_cast<float*>(y.gpu.data);
  p.y_stride = 16;
  auto scratch = be.gpu->alloc(cuda::gemv_scratch_bytes(1, 256)).value();
  p.scratch = scratch->data();
  p.scratch_bytes = scratch->size();
  cuda::GemvParams other = p;
  other.weight_type = DType::Q5_K;
  const cuda::GemvParams mixed[] = {p, other};
  EXPECT_EQ(cuda::launch_gemv_prequantized_group(mixed, nullptr).code(), StatusCode::invalid_argument);
  const cuda::GemvParams four[] = {p, p, p, p};
  EXPECT_EQ(cuda::launch_gemv_prequantized_group(four, nullptr).code(), StatusCode::invalid_argument);
}

}  // namespace
}  // namespace anvil::test_cuda
