// CPU reference for row-wise softmax cross-entropy; logsumexp in double.
#include <cmath>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"
#include "kernels/cpu/indices.h"

namespace tessera::cpu {

void cross_entropy_rows(const Tensor& loss, const Tensor& logits, const Tensor& labels, float grad_scale,
                        const Tensor& grad) {
  const int64_t vocab = logits.size(-1), rows = loss.numel();
  const std::vector<int64_t> target = load_indices(labels);
  for (int64_t n = 0; n < rows; ++n)
    TS_CHECK(target[n] == -100 || (target[n] >= 0 && target[n] < vocab),
             "cross_entropy_rows: label {} of row {} is neither -100 nor in [0, {})", target[n], n, vocab);
  const F32In z(logits);
  std::vector<float> g(grad.defined() ? rows * vocab : 0);
  float* out = loss.data_as<float>();
#pragma omp parallel for if (rows * vocab > (1 << 16))
  for (int64_t n = 0; n < rows; ++n) {
    const float* row = z.data() + n * vocab;
    float* grad_row = g.data() + (grad.defined() ? n * vocab : 0);
    if (target[n] == -100) {
      out[n] = 0.0f;
      if (grad.defined()) std::fill(grad_row, grad_row + vocab, 0.0f);
      continue;
    }
    float top = row[0];
    for (int64_t v = 1; v < vocab; ++v) top = std::max(top, row[v]);
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - top);
    const double lse = top + std::log(sum);
    out[n] = static_cast<float>(lse - row[target[n]]);
    if (!grad.defined()) continue;
    for (int64_t v = 0; v < vocab; ++v)
      grad_row[v] = (static_cast<float>(std::exp(row[v] - lse)) - (v == target[n] ? 1.0f : 0.0f)) * grad_scale;
  }
  // Written after every row is read: grad may be logits itself.
  if (grad.defined()) store_f32(grad.data(), g.data(), grad.dtype(), rows * vocab);
}

}  // namespace tessera::cpu
