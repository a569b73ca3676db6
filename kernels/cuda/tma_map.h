// Host side of the TMA loads of the Hopper kernels: tensor maps (the descriptors a TMA load reads)
// of the [b, s, heads, d] activations, built through the driver's entry point so that nothing
// links libcuda (machines without a GPU still load the binaries).
#pragma once

#include <cuda.h>

#include <cstdint>

#include "core/dtype.h"

namespace tessera::cuda {

// A tensor map of a 16-bit [b, s, heads, d] tensor whose box is `rows` consecutive rows of one
// head and 64 columns (one 128-byte panel), stored 128-byte swizzled (sm90_ptx.cuh's tile layout).
// Coordinates, innermost first: column, head, row, batch. Rows past the end load as zeros.
CUtensorMap head_rows_map(const void* base, DType dtype, int64_t b, int64_t s, int64_t heads, int64_t d, int rows);

}  // namespace tessera::cuda
