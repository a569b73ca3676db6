// The sizes of one row-major gemm, worked out once by ops::gemm for both backends.
#pragma once

#include <cstdint>

namespace tessera {

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0;  // row lengths of A and B as stored
  // C's row length as stored, 0 for n. Only the CUDA backend's own callers set it (a column block
  // of a wider C: gemm_packed's chunks); ops::gemm never does, and the CPU refuses it.
  int64_t ldc = 0;
};

// Which GPU kernel ops::gemm_packed runs: the choice by M (Auto), the fused gemv (Fused: an error
// where it cannot run), or dequantize into a workspace + cuBLASLt (Dequantize). The CPU has one.
// DequantizeChunked dequantizes blocks of rows of W (about 16 MB each, one workspace reused, so it
// stays in L2 between its write and the gemm's read) for a column block of C each.
enum class PackedGemmKernel { Auto, Fused, Dequantize, DequantizeChunked };

// Which CUDA kernel ops::gemm runs for a few rows against a row-major weight (C = A W^T with
// M <= 4: a decode step's projections and lm_head): Auto (the measured choice by M), CuBlas
// (cuBLASLt always), Gemv (kernels/cuda/gemv.cu) or Fused (the gemv only in the fused decode ops,
// project_many / project_swiglu / project_add, where it folds the norms and residual adds;
// cuBLASLt for a plain gemm such as lm_head, which it streamed at 4.32 TB/s against the gemv's
// 3.90 at 1B M = 1, session 10 call B); cuBLASLt wherever the one asked for cannot run. (A tensor-core skinny gemm for M <= 64 lost to cuBLASLt at every M >= 2 and to the gemv at
// M = 1 on the H200, session 7 call C, and was removed.)
// (A gemv taking 5-16 rows, 4 weight rows per warp, lost too: 1B batch 16 at 3,802 tok/s against
// 10,203 with cuBLASLt, session 8 call B.)
enum class SmallMKernel { Auto, CuBlas, Gemv, Fused };
struct SmallMChoice {
  SmallMKernel kernel = SmallMKernel::Auto;
};

}  // namespace tessera
