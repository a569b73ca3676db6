// Tiles of the tensor-core attention kernels: 64 rows of one head, staged in shared memory with
// padded rows. The backward multiplies them with nvcuda::wmma 16x16x16 fragments (bf16/f16 in,
// fp32 accumulate); the forward with mma.sync (mma_ptx.cuh).
#pragma once

#include <mma.h>

#include "kernels/cuda/attention_common.cuh"

namespace tessera::cuda::attn {

namespace wmma = nvcuda::wmma;

constexpr int kWarps = 4;         // each owns 16 rows of a tile
constexpr int kTileThreads = kWarps * 32;
constexpr int kLdScores = kTile + 4;  // f32 row pitch of score tiles
constexpr int kLdProbs = kTile + 8;   // 16-bit row pitch of probability tiles

// Row pitch of a [64, D] 16-bit tile: 8 extra elements shift rows across banks and keep every
// 16-row, 16-column fragment 32-byte aligned as wmma requires.
template <int kD>
constexpr int ld_rows = kD + 8;

template <typename T>
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major>;
template <typename T>
using FragAt = wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major>;  // A read transposed
template <typename T>
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major>;
template <typename T>
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major>;  // B read transposed
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// Copies rows [row0, row0 + 64) of head `head` from a [b, s, heads, kD] tensor into a padded
// shared tile, 16 bytes at a time; rows past the sequence end become zeros.
template <typename T, int kD>
__device__ __forceinline__ void load_tile(T* tile, const T* base, int64_t batch, int64_t row0, int64_t seq,
                                          int64_t heads, int64_t head) {
  constexpr int kVecs = kD / 8;
  for (int idx = threadIdx.x; idx < kTile * kVecs; idx += kTileThreads) {
    const int r = idx / kVecs, c = (idx % kVecs) * 8;
    const int64_t row = row0 + r;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (row < seq) val = *reinterpret_cast<const uint4*>(base + ((batch * seq + row) * heads + head) * kD + c);
    *reinterpret_cast<uint4*>(tile + r * ld_rows<kD> + c) = val;
  }
}

}  // namespace tessera::cuda::attn
