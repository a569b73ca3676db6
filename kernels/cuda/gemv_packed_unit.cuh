// The arithmetic of the tensor-core packed gemv (gemv_mma_kernel in gemv_packed_mma.cu) for one
// unit: lane (g, t) of a warp turns the unit's weights of its two rows, g and g + 8 of a 16-row
// tile, into the A fragment's registers (kernels/packed_pairs.h) and multiplies them with the
// unit's activations of row g of A, paired as the weights are, as the B fragment; fp32 sums.
#pragma once

#include <type_traits>

#include "kernels/cuda/mma_ptx.cuh"
#include "kernels/packed_pairs.h"

namespace tessera::cuda {

// acc += unit's products, raw[0] and raw[1] its loads of rows g and g + 8 (zeros where !in_range,
// past the last unit: the whole warp calls it, as mma.sync needs), xs its runs of 8 activations.
template <typename T, typename Pairs>
__device__ __forceinline__ void mma_unit_step(float (&acc)[4], const typename Pairs::Raw (&raw)[2], bool in_range,
                                              const uint4 (&xs)[Pairs::kWeights / 8]) {
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kPairs = Pairs::kWeights / 2, kRuns = Pairs::kWeights / 8;
  uint32_t lo[kPairs] = {}, hi[kPairs] = {}, b[kPairs], xr[kPairs];
  if (in_range) {
    Pairs::template pairs<kBf16>(raw[0], lo);
    Pairs::template pairs<kBf16>(raw[1], hi);
  }
#pragma unroll
  for (int j = 0; j < kRuns; ++j) xr[4 * j] = xs[j].x, xr[4 * j + 1] = xs[j].y, xr[4 * j + 2] = xs[j].z, xr[4 * j + 3] = xs[j].w;
  Pairs::x_pairs(b, xr);
  // k-step s: pairs 2s (columns 2t, 2t + 1 of the fragment) and 2s + 1 (columns 2t + 8, 2t + 9).
#pragma unroll
  for (int s = 0; s < kPairs / 2; ++s) {
    const uint32_t fragment[4] = {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]};
    ptx::mma_16816<T>(acc, fragment, b[2 * s], b[2 * s + 1]);
  }
}

}  // namespace tessera::cuda
