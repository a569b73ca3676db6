#include "kernels/sampling_row.h"

namespace tessera {

Tensor sampling_params(std::span<const SamplingRow> rows) {
  Tensor t = Tensor::empty({static_cast<int64_t>(rows.size()), 8}, DType::I32);
  if (!rows.empty()) std::memcpy(t.data(), rows.data(), rows.size_bytes());
  return t;
}

}  // namespace tessera
