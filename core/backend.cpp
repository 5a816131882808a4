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

}  // namespace anvil
