// The sizes of one row-major gemm, worked out once by ops::gemm for both backends.
#pragma once

#include <cstdint>

namespace tessera {

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0;  // row lengths of A and B as stored
};

}  // namespace tessera
