// CPU reference for the token embedding: row gather forward, row scatter-add backward.
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"
#include "kernels/cpu/indices.h"

namespace tessera::cpu {

namespace {
void check_ids(const std::vector<int64_t>& ids, int64_t vocab) {
  for (size_t n = 0; n < ids.size(); ++n)
    TS_CHECK(ids[n] >= 0 && ids[n] < vocab, "embedding: id {} at position {} is outside [0, {})", ids[n], n, vocab);
}
}  // namespace

void embedding_forward(const Tensor& out, const Tensor& weight, const Tensor& ids) {
  const std::vector<int64_t> rows = load_indices(ids);
  check_ids(rows, weight.size(0));
  const size_t row_bytes = static_cast<size_t>(weight.size(1)) * dtype_size(weight.dtype());
  const char* src = static_cast<const char*>(weight.data());
  char* dst = static_cast<char*>(out.data());
  for (size_t n = 0; n < rows.size(); ++n) std::memcpy(dst + n * row_bytes, src + rows[n] * row_bytes, row_bytes);
}

void embedding_backward(const Tensor& dweight, const Tensor& dout, const Tensor& ids) {
  const std::vector<int64_t> rows = load_indices(ids);
  check_ids(rows, dweight.size(0));
  const int64_t h = dweight.size(1);
  F32In grad(dout);
  float* dw = dweight.data_as<float>();
  for (size_t n = 0; n < rows.size(); ++n)
    for (int64_t j = 0; j < h; ++j) dw[rows[n] * h + j] += grad.data()[n * h + j];
}

}  // namespace tessera::cpu
