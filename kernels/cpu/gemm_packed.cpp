// CPU reference for gemm_packed: W dequantized to A's dtype (fp32 on the CPU, where models
// compute in fp32), then gemm. The CPU has one kernel, so `kernel` is not looked at.
#include "kernels/cpu/cpu_ops.h"

namespace tessera::cpu {

void gemm_packed(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha, float beta,
                 const Tensor& bias, PackedGemmKernel) {
  const Tensor b = Tensor::empty(w.shape, a.dtype());
  dequantize(b, w);
  gemm(c, a, b, s, alpha, beta, bias);
}

}  // namespace tessera::cpu
