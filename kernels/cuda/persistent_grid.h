// The grid of a persistent kernel: only the blocks that fit on the GPU at once, each walking its
// share of the work items, so that a block's fixed costs (a norm prologue, the first loads) are
// paid once per block rather than once per item, and no half-empty last wave is left.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tessera::cuda {

// Blocks of `kernel` (threads each, `shared` bytes of dynamic shared memory, any attribute it
// needs for them already set) resident on `device` at once: SMs x occupancy, asked once per
// (kernel, threads, shared, device). At least 1.
int resident_blocks(const void* kernel, int threads, size_t shared, int device);

// Blocks for `items` work items, `per_block` of them at a time in each block (its warps): all
// `resident` blocks, or fewer where the items do not need them all (every warp then has work from
// the start; those with one item fewer finish a round early). At least 1.
unsigned persistent_blocks(int64_t items, int per_block, int resident);

}  // namespace tessera::cuda
