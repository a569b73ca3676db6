// CPU reference of lora_batched: for each row with an adapter, v = x A_n^T (its first ranks[n]
// rows of A), then y += s_n v B_n^T, in fp32, y rounded once to its dtype.
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

void lora_batched(const Tensor& y, const Tensor& x, const Tensor& a, const Tensor& b, const Tensor& ranks,
                  const Tensor& scales, const Tensor& index, const LoraBatchShape& s) {
  const int32_t* rank = ranks.data_as<int32_t>();
  const int32_t* which = index.data_as<int32_t>();
  const float* scale = scales.data_as<float>();
  for (int64_t n = 0; n < s.adapters; ++n)
    TS_CHECK(rank[n] >= 0 && rank[n] <= s.rank, "lora_batched: ranks[{}] = {} is outside [0, {}]", n, rank[n], s.rank);
  for (int64_t t = 0; t < s.rows; ++t)
    TS_CHECK(which[t] >= -1 && which[t] < s.adapters, "lora_batched: index[{}] = {} is outside [-1, {})", t, which[t],
             s.adapters);
  F32In xs(x), as(a), bs(b);
  F32Out ys(y, true);
  const float *px = xs.data(), *pa = as.data(), *pb = bs.data();
  float* py = ys.data();
  std::vector<float> v(static_cast<size_t>(s.rank));
  for (int64_t t = 0; t < s.rows; ++t) {
    const int64_t n = which[t];
    if (n < 0 || rank[n] == 0) continue;
    const float* xt = px + t * s.in;
    for (int64_t r = 0; r < rank[n]; ++r) {
      const float* ar = pa + (n * s.rank + r) * s.in;
      float acc = 0;
      for (int64_t k = 0; k < s.in; ++k) acc += xt[k] * ar[k];
      v[r] = acc;
    }
    for (int64_t o = 0; o < s.out; ++o) {
      const float* bo = pb + (n * s.out + o) * s.rank;
      float acc = 0;
      for (int64_t r = 0; r < rank[n]; ++r) acc += v[r] * bo[r];
      py[t * s.out + o] += scale[n] * acc;
    }
  }
  ys.commit();
}

}  // namespace tessera::cpu
