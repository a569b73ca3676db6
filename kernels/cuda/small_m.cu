// Whether a gemm gets the small-M gemv (small_m.h): the shapes it takes, then the choice.
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/small_m.h"
#include "kernels/ops.h"

namespace tessera::cuda {

namespace {

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data()) % 16 == 0; }

// The shapes of operands of dtype `in` that the gemv takes (their alignment aside).
bool eligible_shape(DType in, const GemmShape& s) {
  if (s.m < 1 || s.m > kGemvMaxRows || s.trans_a || !s.trans_b) return false;
  if (in != DType::BF16 && in != DType::F16) return false;
  if (s.k % 8 != 0 || s.lda != s.k || s.ldb != s.k || s.ldc != 0) return false;
  return s.n <= INT32_MAX && s.k <= INT32_MAX;
}

bool chosen() { return ops::small_m_choice().kernel != SmallMKernel::CuBlas; }

}  // namespace

bool gemv_takes(const Tensor& a, const Tensor& b, const GemmShape& s) {
  return chosen() && eligible_shape(a.dtype(), s) && aligned16(a) && aligned16(b);
}

bool gemv_folds(int64_t rows, const Tensor& weight, bool norm) {
  static_assert(kGemvMaxRows == ops::kFoldedGemvRows);
  if (weight.ndim() != 2) return false;
  GemmShape s;
  s.m = rows;
  s.n = weight.size(0);
  s.k = s.lda = s.ldb = weight.size(1);
  s.trans_b = true;
  const bool takes = chosen() && eligible_shape(weight.dtype(), s) && aligned16(weight);
  return takes && (!norm || gemv_norm_fits(rows, s.k, weight.dtype()));
}

bool small_m_gemm(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
                  const Tensor& bias) {
  if (bias.defined() || ops::small_m_choice().kernel == SmallMKernel::Fused || !gemv_takes(a, b, s)) return false;
  // Auto is the gemv (bench/skinny_gemm_bench, session 7 call C: it wins at M = 1 on lm_head and
  // the 8B projections; cuBLASLt wins 8B down at M = 1 by 6%).
  gemv_rows(c, a, b, s, alpha, beta);
  return true;
}

}  // namespace tessera::cuda
