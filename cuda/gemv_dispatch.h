// Turns a GEMV launch's run-time token count (1..8 per pass) and rows per warp (1, 2, 4) into the
// compile-time N and R its kernel templates take (cuda/gemv_kernel.cuh, gemv_kquant_kernel.cuh,
// gemv_f32_kernel.cuh): f is a lambda templated on <int N, int R> that launches that instance.
#pragma once

#include "core/status.h"

namespace anvil::cuda::gemv_dispatch {

template <int N, class F>
Status with_rows(const char* kernel, int rows_per_warp, F& f) {
  switch (rows_per_warp) {
    case 1: return f.template operator()<N, 1>();
    case 2: return f.template operator()<N, 2>();
    case 4: return f.template operator()<N, 4>();
    default:
      return make_error(StatusCode::invalid_argument, kernel, ": rows_per_warp ", rows_per_warp, " not 1, 2 or 4");
  }
}

// `kernel` names the caller in errors ("gemv", "gemv_f32").
template <class F>
Status with_tokens_and_rows(const char* kernel, int n, int rows_per_warp, F&& f) {
  switch (n) {
    case 1: return with_rows<1>(kernel, rows_per_warp, f);
    case 2: return with_rows<2>(kernel, rows_per_warp, f);
    case 3: return with_rows<3>(kernel, rows_per_warp, f);
    case 4: return with_rows<4>(kernel, rows_per_warp, f);
    case 5: return with_rows<5>(kernel, rows_per_warp, f);
    case 6: return with_rows<6>(kernel, rows_per_warp, f);
    case 7: return with_rows<7>(kernel, rows_per_warp, f);
    case 8: return with_rows<8>(kernel, rows_per_warp, f);
    default: return make_error(StatusCode::internal, kernel, ": ", n, " tokens in one pass (1..8)");
  }
}

}  // namespace anvil::cuda::gemv_dispatch
