// Dequantize + OpenBLAS sgemm: the prefill candidate. W is dequantized to f32 one tile of rows
// at a time (threads of the pool), then one sgemm multiplies all n tokens by that tile
// (OpenBLAS's own threads). Tiling bounds the scratch memory: a whole 9728 x 2560 W in f32 would
// be 100 MB per call, a tile is at most kTileBytes; a tile still has hundreds of rows, enough
// for sgemm to run at full rate.
#include <cblas.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "cpu/matmul_candidates.h"
#include "quant/quant.h"

namespace anvil::cpu {

namespace {

// 8 MiB of f32 weights per tile (L3-sized on the EPYC this was written on): 819 rows at
// in = 2560, 215 rows at in = 9728.
constexpr size_t kTileBytes = size_t(8) << 20;

}  // namespace

std::string blas_description() {
  const char* cfg = openblas_get_config();
  return cfg ? std::string("OpenBLAS ") + cfg : std::string("OpenBLAS");
}

bool matmul_blas_supports(const MatmulArgs& a) {
  // sgemm needs rows of x and y at whole-float strides (always true for F32 tensors).
  return quant::has_reference(a.w->type) && a.w->type != DType::Q8_K && a.x->row_stride % sizeof(float) == 0 &&
         a.y.row_stride % sizeof(float) == 0;
}

Status matmul_blas(const MatmulArgs& a) {
  const Tensor& w = *a.w;
  const Tensor& x = *a.x;
  const int64_t in = w.cols, out = w.rows, n = x.rows;
  const int64_t tile_rows = std::clamp<int64_t>(int64_t(kTileBytes / (sizeof(float) * size_t(in))), 16, out);
  std::vector<float> tile(size_t(tile_rows * in));

  // OpenBLAS keeps its own thread pool; match it to ours so the two never oversubscribe.
  static std::mutex threads_mu;
  {
    std::lock_guard lk(threads_mu);
    if (openblas_get_num_threads() != a.pool->size()) openblas_set_num_threads(a.pool->size());
  }

  for (int64_t o0 = 0; o0 < out; o0 += tile_rows) {
    const int64_t rows = std::min(tile_rows, out - o0);
    Status failure;
    std::mutex failure_mu;
    a.pool->parallel_for(rows, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        Status s = quant::dequantize_row(w.type, w.row<const uint8_t>(o0 + r), tile.data() + r * in, in);
        if (!s.is_ok()) {
          std::lock_guard lk(failure_mu);
          failure = s;
          return;
        }
      }
    });
    ANVIL_RETURN_IF_ERROR(failure);
    // y[:, o0:o0+rows] = x (n x in) * tile^T (in x rows)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(n), blasint(rows), blasint(in), 1.0f,
                x.row<const float>(0), blasint(std::max<size_t>(x.row_stride / sizeof(float), size_t(in))), tile.data(),
                blasint(in), 0.0f, a.y.row<float>(0) + o0,
                blasint(std::max<size_t>(a.y.row_stride / sizeof(float), size_t(out))));
  }
  return Status::ok();
}

}  // namespace anvil::cpu
