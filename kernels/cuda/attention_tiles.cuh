// Tiles of the tensor-core attention kernels: 64 rows of one head staged in shared memory with
// padded rows, and the ldmatrix patterns that turn them into mma.sync operands (mma_ptx.cuh).
// Every operand is a 16x16 A fragment or a pair of 16x8 B fragments (two adjacent 8-column blocks).
#pragma once

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/mma_ptx.cuh"

namespace tessera::cuda::attn {

constexpr int kWarps = 4;  // each owns 16 rows of a tile
constexpr int kTileThreads = kWarps * 32;
constexpr int kLdProbs = kTile + 8;  // row pitch of a 64x64 16-bit tile

// Row pitch of a [64, D] 16-bit tile: 8 extra elements (16 bytes) put the 8 rows an ldmatrix
// reads in 8 different groups of banks.
template <int kD>
constexpr int ld_rows = kD + 8;

// Queues the copy of rows [row0, row0 + kRows) of head `head` of a [b, s, heads, kD] tensor into a
// padded tile, 16 bytes at a time, by a CTA of kThreads; rows past the sequence end become zeros.
template <typename T, int kD, int kRows = kTile, int kThreads = kTileThreads>
__device__ __forceinline__ void copy_tile_async(T* tile, const T* base, int64_t batch, int64_t row0, int64_t seq,
                                                int64_t heads, int64_t head) {
  constexpr int kVecs = kD / 8;
#pragma unroll
  for (int idx = threadIdx.x; idx < kRows * kVecs; idx += kThreads) {
    const int r = idx / kVecs, c = (idx % kVecs) * 8;
    const int64_t row = row0 + r;
    const bool valid = row < seq;
    const T* src = valid ? base + ((batch * seq + row) * heads + head) * kD + c : base;
    ptx::cp_async_16(tile + r * ld_rows<kD> + c, src, valid);
  }
}

// A = tile[row0 .. row0 + 16][col0 .. col0 + 16].
template <typename T>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const T* tile, int ld, int row0, int col0) {
  const int lane = threadIdx.x % 32;
  ptx::ldmatrix_x4(a, tile + (row0 + lane % 16) * ld + col0 + (lane / 16) * 8);
}

// A = the transpose of tile[col0 .. col0 + 16][row0 .. row0 + 16] (A's rows are tile columns).
template <typename T>
__device__ __forceinline__ void load_a_trans(uint32_t (&a)[4], const T* tile, int ld, int row0, int col0) {
  const int lane = threadIdx.x % 32;
  ptx::ldmatrix_x4_trans(a, tile + (col0 + (lane / 16) * 8 + lane % 8) * ld + row0 + ((lane / 8) % 2) * 8);
}

// B[k][n] = tile[n0 + n][k0 + k] for n < 16, k < 16: the tile's rows are B's columns (K for
// S = Q K^T). b[0], b[1] hold columns 0-7; b[2], b[3] columns 8-15.
template <typename T>
__device__ __forceinline__ void load_b_rows(uint32_t (&b)[4], const T* tile, int ld, int n0, int k0) {
  const int lane = threadIdx.x % 32;
  ptx::ldmatrix_x4(b, tile + (n0 + (lane / 16) * 8 + lane % 8) * ld + k0 + ((lane / 8) % 2) * 8);
}

// B[k][n] = tile[k0 + k][n0 + n]: the tile's rows are B's rows (V for O = P V), read transposed.
template <typename T>
__device__ __forceinline__ void load_b_trans(uint32_t (&b)[4], const T* tile, int ld, int k0, int n0) {
  const int lane = threadIdx.x % 32;
  ptx::ldmatrix_x4_trans(b, tile + (k0 + ((lane / 8) % 2) * 8 + lane % 8) * ld + n0 + (lane / 16) * 8);
}

// The A fragment of columns [16 ks, 16 ks + 16) of a 16-row accumulator block s[kBlocks][4]: the
// accumulator layout of two adjacent 8-column blocks is the A layout, packed to 16 bits.
template <typename T, int kBlocks>
__device__ __forceinline__ void accumulators_as_a(uint32_t (&a)[4], const float (&s)[kBlocks][4], int ks) {
  a[0] = ptx::pack2<T>(s[2 * ks][0], s[2 * ks][1]);
  a[1] = ptx::pack2<T>(s[2 * ks][2], s[2 * ks][3]);
  a[2] = ptx::pack2<T>(s[2 * ks + 1][0], s[2 * ks + 1][1]);
  a[3] = ptx::pack2<T>(s[2 * ks + 1][2], s[2 * ks + 1][3]);
}

// Writes this lane's two key rows of dK (scaled by the softmax scale) and dV, both held as m16n8
// accumulator blocks over the head dim; keys past the sequence end are skipped.
template <typename T, int kDimBlocks>
__device__ __forceinline__ void store_key_grads(const float (&dk)[kDimBlocks][4], const float (&dv)[kDimBlocks][4],
                                                const Params& p, int64_t b, int64_t kvh, const int64_t (&keys)[2]) {
  const int t = threadIdx.x % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (keys[r] >= p.s) continue;
    T* dk_row = static_cast<T*>(p.dk) + p.kv_offset(b, keys[r], kvh) + 2 * t;
    T* dv_row = static_cast<T*>(p.dv) + p.kv_offset(b, keys[r], kvh) + 2 * t;
#pragma unroll
    for (int dt = 0; dt < kDimBlocks; ++dt) {
      *reinterpret_cast<uint32_t*>(dk_row + dt * 8) =
          ptx::pack2<T>(dk[dt][2 * r] * p.scale, dk[dt][2 * r + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dv_row + dt * 8) = ptx::pack2<T>(dv[dt][2 * r], dv[dt][2 * r + 1]);
    }
  }
}

}  // namespace tessera::cuda::attn
