// gemm_packed on the GPU: the fused gemv for decode-sized products (kernels/cuda/gemv_packed.cu),
// dequantize into a workspace in A's dtype + cuBLASLt for the rest (prefill, training), whole or
// in blocks of rows that stay in L2 between the dequantize and the gemm (DequantizeChunked).
#include <algorithm>

#include "core/error.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemv_packed.h"

namespace tessera::cuda {

namespace {

constexpr int64_t kChunkBytes = int64_t(16) << 20;  // a third of an H100/H200's L2

// Rows [first, first + rows) of a packed matrix as views of its parts: every scheme but nf4 (whose
// blocks run over the flattened tensor) keeps its parts row by row.
PackedTensor packed_rows(const PackedTensor& w, int64_t first, int64_t rows) {
  PackedTensor out{w.spec, {rows, w.shape[1]}, {}};
  for (const Tensor& part : w.parts) out.parts.push_back(part.narrow(first, rows));
  return out;
}

// C = A W^T a block of W's rows (C's columns) at a time, through one reused workspace.
void dequantize_gemm_chunked(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha,
                             float beta, const Tensor& bias) {
  const int64_t row_bytes = s.k * int64_t(dtype_size(a.dtype()));
  const int64_t chunk = std::max<int64_t>(128, kChunkBytes / row_bytes / 128 * 128);
  const Tensor workspace = Tensor::empty({std::min(chunk, s.n) * s.k}, a.dtype(), a.device());
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t rows = std::min(chunk, s.n - first);
    const Tensor b = workspace.flat_slice(0, rows * s.k).view({rows, s.k});
    dequantize(b, packed_rows(w, first, rows));
    GemmShape block = s;
    block.n = rows;
    block.ldc = s.n;
    gemm(c.flat_slice(first, (s.m - 1) * s.n + rows), a, b, block, alpha, beta,
         bias.defined() ? bias.flat_slice(first, rows) : Tensor());
  }
}

}  // namespace

void gemm_packed(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha, float beta,
                 const Tensor& bias, PackedGemmKernel kernel) {
  if (kernel == PackedGemmKernel::Auto || kernel == PackedGemmKernel::Fused) {
    const std::string unfit = fused_gemv_unfit(a, w, s);
    if (kernel == PackedGemmKernel::Fused && !unfit.empty())
      throw Error("gemm_packed: the fused kernel cannot compute A " + a.str() + " times " + w.str() + ": " + unfit);
    if (unfit.empty() && (kernel == PackedGemmKernel::Fused || s.m <= ops::kFusedPackedRows))
      return fused_gemv(c, a, w, s, alpha, beta, bias);
  }
  if (kernel == PackedGemmKernel::DequantizeChunked && s.trans_b && w.spec.scheme != QuantScheme::NF4)
    return dequantize_gemm_chunked(c, a, w, s, alpha, beta, bias);
  const Tensor b = Tensor::empty(w.shape, a.dtype(), a.device());
  dequantize(b, w);
  gemm(c, a, b, s, alpha, beta, bias);
}

}  // namespace tessera::cuda
