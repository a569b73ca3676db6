// The sizes of one row-major gemm, worked out once by ops::gemm for both backends.
#pragma once

#include <cstdint>

namespace tessera {

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0;  // row lengths of A and B as stored
};

// Which GPU kernel ops::gemm_packed runs: the choice by M (Auto), the fused gemv (Fused: an error
// where it cannot run), or dequantize into a workspace + cuBLASLt (Dequantize). The CPU has one.
enum class PackedGemmKernel { Auto, Fused, Dequantize };

}  // namespace tessera
