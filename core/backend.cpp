// The Backend interface's default implementations (core/backend.h).
#include "core/backend.h"

#include <vector>

#include "core/op_checks.h"

namespace anvil {

Status Backend::sample(const Tensor& logits, std::span<const SampleRequest> requests, std::span<int32_t> ids) {
  ANVIL_RETURN_IF_ERROR(check_sample(logits, requests, ids.size()));
  std::vector<float> row(size_t(logits.cols));
  SampleScratch scratch;
  for (int64_t i = 0; i < logits.rows; ++i) {
    ANVIL_RETURN_IF_ERROR(copy_to_host(row.data(), logits.slice_rows(i, 1)));
    auto id = sample_row(row, requests[size_t(i)], &scratch);
    if (!id) return id.status();
    ids[size_t(i)] = *id;
  }
  return Status::ok();
}

Status Backend::matmul_group(const Tensor& x, std::span<const MatmulTarget> targets) {
  for (const MatmulTarget& t : targets) {
    if (!t.w) return make_error(StatusCode::invalid_argument, "matmul_group: a target has no weight");
    ANVIL_RETURN_IF_ERROR(matmul(*t.w, x, t.y, t.bias));
  }
  return Status::ok();
}

Status Backend::add_rms_norm(Tensor x, const Tensor& h, const Weight* w, float eps, Tensor out) {
  ANVIL_RETURN_IF_ERROR(add(x, h, x));
  return rms_norm(x, w, eps, out);
}

Status Backend::qk_norm_rope_store(const Tensor& q_src, Tensor q, Tensor k, const Tensor& v, const QkNormRope& p,
                                   const KvLayer& kv, const DeviceStep& step) {
  ANVIL_RETURN_IF_ERROR(check_qk_norm_rope(q_src, q, k, p));
  const int32_t hd = p.rope_q.head_dim;
  if (p.q_norm) ANVIL_RETURN_IF_ERROR(rms_norm(q_src, p.q_norm, p.eps, q.reshape_cols(hd)));
  if (p.k_norm) ANVIL_RETURN_IF_ERROR(rms_norm(k.reshape_cols(hd), p.k_norm, p.eps, k.reshape_cols(hd)));
  ANVIL_RETURN_IF_ERROR(rope(q, p.rope_q, step));
  ANVIL_RETURN_IF_ERROR(rope(k, p.rope_k, step));
  return kv_store(kv, k, v, step);
}

}  // namespace anvil
