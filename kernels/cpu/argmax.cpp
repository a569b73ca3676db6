// CPU reference for argmax_rows: the first maximum of each row and its log-softmax (in double).
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

void argmax_rows(const Tensor& index, const Tensor& logprob, const Tensor& logits) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const F32In z(logits);
  int32_t* picked = index.data_as<int32_t>();
  float* lp = logprob.data_as<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = z.data() + r * vocab;
    int64_t best = 0;
    for (int64_t v = 1; v < vocab; ++v)
      if (row[v] > row[best]) best = v;
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - double(row[best]));
    picked[r] = static_cast<int32_t>(best);
    lp[r] = static_cast<float>(-std::log(sum));
  }
}

}  // namespace tessera::cpu
