// Host side of the TMA loads of the Hopper kernels: tensor maps (the descriptors a TMA load reads)
// of the [b, s, heads, d] activations, built through the driver's entry point so that nothing
// links libcuda (machines without a GPU still load the binaries).
#pragma once

#include <cuda.h>

#include <cstdint>

#include "core/dtype.h"

namespace tessera::cuda {

// A tensor map of a [b, s, heads, d] tensor of bf16, f16 or f32 whose box is `rows` consecutive
// rows of one head and one 128-byte panel of columns (64 16-bit or 32 fp32 values), stored
// 128-byte swizzled (sm90_ptx.cuh's tile layout). Coordinates, innermost first: column, head, row,
// batch. Rows past the end load as zeros and are left out of stores and reductions.
CUtensorMap head_rows_map(const void* base, DType dtype, int64_t b, int64_t s, int64_t heads, int64_t d, int rows);

}  // namespace tessera::cuda
