// CPU reference gemm: OpenBLAS sgemm on fp32 copies of the operands.
#include <cblas.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

void gemm(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
          const Tensor& bias) {
  TS_CHECK(s.ldc == 0 || s.ldc == s.n, "gemm: the CPU reference writes C whole (ldc {} for n {})", s.ldc, s.n);
  F32In x(a), y(b);
  F32Out z(c, beta != 0.0f);
  float* out = z.data();
  if (s.k == 0) {
    for (int64_t i = 0; i < s.m * s.n; ++i) out[i] = beta == 0.0f ? 0.0f : beta * out[i];
  } else {
    cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans, s.trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(s.m), static_cast<int>(s.n), static_cast<int>(s.k), alpha, x.data(),
                static_cast<int>(s.lda), y.data(), static_cast<int>(s.ldb), beta, out, static_cast<int>(s.n));
  }
  if (bias.defined()) {
    F32In bias_f32(bias);
    const float* pb = bias_f32.data();
#pragma omp parallel for if (s.m * s.n > (1 << 16))
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j) out[i * s.n + j] += pb[j];
  }
  z.commit();
}

}  // namespace tessera::cpu
