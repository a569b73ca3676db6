// gemm_packed on the GPU: the fused gemv for decode-sized products (kernels/cuda/gemv_packed.cu),
// dequantize into a workspace in A's dtype + cuBLASLt for the rest (prefill, training).
#include "core/error.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemv_packed.h"

namespace tessera::cuda {

void gemm_packed(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha, float beta,
                 const Tensor& bias, PackedGemmKernel kernel) {
  if (kernel != PackedGemmKernel::Dequantize) {
    const std::string unfit = fused_gemv_unfit(a, w, s);
    if (kernel == PackedGemmKernel::Fused && !unfit.empty())
      throw Error("gemm_packed: the fused kernel cannot compute A " + a.str() + " times " + w.str() + ": " + unfit);
    if (unfit.empty() && (kernel == PackedGemmKernel::Fused || s.m <= ops::kFusedPackedRows))
      return fused_gemv(c, a, w, s, alpha, beta, bias);
  }
  const Tensor b = Tensor::empty(w.shape, a.dtype(), a.device());
  dequantize(b, w);
  gemm(c, a, b, s, alpha, beta, bias);
}

}  // namespace tessera::cuda
