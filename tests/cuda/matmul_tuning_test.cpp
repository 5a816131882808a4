// The CUDA matmul's tuner (cuda/matmul_tuning.h): a shape is measured once per token bucket,
// every supported candidate is checked and timed, the choice is cached in memory and on disk,
// ANVIL_FORCE_KERNEL and ANVIL_TUNE=off are honoured, nothing is measured under stream capture,
// and cuda::matmul's result through the tuned choice agrees with the CPU reference.
#include <unistd.h>

#include <cuda_runtime.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "cuda/matmul.h"
#include "cuda/matmul_tuning.h"
#include "cuda/ops.h"
#include "quant/quant.h"
#include "tests/cuda/op_test_util.h"

namespace anvil::test_cuda {
namespace {

// A tuning file of this test program's own, so earlier runs' choices are not read back.
class TuningFile {
 public:
  TuningFile()
      : path_((std::filesystem::temp_directory_path() / ("anvil-cuda-tuning-" + std::to_string(getpid()) + ".json"))
                  .string()),
        env_("ANVIL_TUNE_CACHE", path_.c_str()),
        tune_("ANVIL_TUNE", nullptr),
        cuda_tune_("ANVIL_CUDA_TUNE", "1"),
        force_("ANVIL_FORCE_KERNEL", nullptr) {
    std::filesystem::remove(path_);
  }
  ~TuningFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  ScopedEnv env_, tune_, cuda_tune_, force_;
};

TwinWeight q4k_weight(TwinBackends& be, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<float> v = random_values(rng, size_t(rows * cols), 0.05f, 1.0f);
  std::vector<uint8_t> bytes(size_t(rows) * *row_bytes(DType::Q4_K, uint64_t(cols)));
  EXPECT_TRUE(quant::quantize_rows(DType::Q4_K, v.data(), bytes.data(), cols, rows, 0).is_ok());
  return be.weight("blk.0.ffn_up.weight", DType::Q4_K, rows, cols, std::move(bytes));
}

// y = x W^T on the GPU against the CPU backend's reference candidate.
double matmul_error(TwinBackends& be, const TwinWeight& w, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Twin x = be.tensor(n, w.gpu.t.cols, random_values(rng, size_t(n * w.gpu.t.cols)));
  Twin y = be.poisoned(n, w.gpu.t.rows);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  {
    ScopedEnv reference("ANVIL_FORCE_KERNEL", "matmul:reference");  // the CPU's exact candidate
    EXPECT_TRUE(be.cpu->matmul(w.cpu, x.cpu, y.cpu, nullptr).is_ok());
  }
  const Status st = be.gpu->matmul(w.gpu, x.gpu, y.gpu, nullptr);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return be.rel_error(y);
}

TEST(CudaMatmulTuning, MeasuresOncePerBucketAndCaches) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  TuningFile file;
  KernelTuner& tuner = cuda::matmul_tuner();
  tuner.forget_memory();
  TwinWeight w = q4k_weight(be, 1000, 2560, 1);

  const int before = tuner.measurements();
  EXPECT_LE(matmul_error(be, w, 3, 2), 1e-2);  // bucket n<=4: measured
  EXPECT_EQ(tuner.measurements(), before + 1);
  // Every candidate that supports Q4_K at n = 4 was checked and timed.
  int timed = 0;
  for (const CandidateTiming& t : tuner.last_timings()) {
    std::printf("  %s: %.2f us, error %.3g, %s\n", t.name.c_str(), t.median_us, t.error,
                t.accepted ? "accepted" : "rejected");
    EXPECT_TRUE(t.accepted) << t.name << " error " << t.error;
    EXPECT_GT(t.median_us, 0.0) << t.name;
    timed += t.accepted;
  }
  EXPECT_GE(timed, 2);
  EXPECT_LE(matmul_error(be, w, 4, 3), 1e-2);  // the same bucket: cached
  EXPECT_EQ(tuner.measurements(), before + 1);
  EXPECT_LE(matmul_error(be, w, 1, 4), 1e-2);  // bucket n<=1: measured
  EXPECT_EQ(tuner.measurements(), before + 2);

  // A new process (forget_memory) reads the choice back from the file instead of measuring.
  EXPECT_TRUE(std::filesystem::exists(file.path()));
  tuner.forget_memory();
  EXPECT_LE(matmul_error(be, w, 2, 5), 1e-2);  // bucket n<=2: not in the file yet
  EXPECT_EQ(tuner.measurements(), before + 3);
  tuner.forget_memory();
  EXPECT_LE(matmul_error(be, w, 3, 6), 1e-2);
  EXPECT_EQ(tuner.measurements(), before + 3);
}

TEST(CudaMatmulTuning, ForceOffAndCaptureMeasureNothing) {
  TwinBackends be = ANVIL_REQUIRE_CUDA();
  TuningFile file;
  KernelTuner& tuner = cuda::matmul_tuner();
  tuner.forget_memory();
  TwinWeight w = q4k_weight(be, 777, 512, 7);
  OwnContext own;
  ASSERT_TRUE(own.ok());
  const int before = tuner.measurements();
  {
    ScopedEnv force("ANVIL_FORCE_KERNEL", "matmul:cublas_f16");
    const cuda::MatmulCandidate* c = cuda::tuned_candidate(own.ctx, w.gpu.t, 1);
    ASSERT_NE(c, nullptr);
    EXPECT_STREQ(c->name, "cublas_f16");
  }
  {
    ScopedEnv off("ANVIL_TUNE", "off");
    EXPECT_EQ(cuda::tuned_candidate(own.ctx, w.gpu.t, 8), cuda::heuristic_candidate(w.gpu.t, 8));
    EXPECT_LE(matmul_error(be, w, 8, 9), 1e-2);
  }
  {
    ScopedEnv opt_out("ANVIL_CUDA_TUNE", nullptr);  // measurement is opt-in
    EXPECT_EQ(cuda::tuned_candidate(own.ctx, w.gpu.t, 4), cuda::heuristic_candidate(w.gpu.t, 4));
    ScopedEnv force("ANVIL_FORCE_KERNEL", "matmul:gemv_f32");  // forcing works without it
    const cuda::MatmulCandidate* c = cuda::tuned_candidate(own.ctx, w.gpu.t, 4);
    ASSERT_NE(c, nullptr);
    EXPECT_STREQ(c->name, "gemv_f32");
  }
  EXPECT_EQ(tuner.measurements(), before);

  // Under stream capture an unmeasured shape gets the table order and nothing is measured.
  ASSERT_EQ(cudaStreamBeginCapture(own.ctx.stream, cudaStreamCaptureModeRelaxed), cudaSuccess);
  const cuda::MatmulCandidate* c = cuda::tuned_candidate(own.ctx, w.gpu.t, 2);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(own.ctx.stream, &graph), cudaSuccess);
  if (graph) (void)cudaGraphDestroy(graph);
  EXPECT_EQ(c, cuda::heuristic_candidate(w.gpu.t, 2));
  EXPECT_EQ(tuner.measurements(), before);
}

}  // namespace
}  // namespace anvil::test_cuda
