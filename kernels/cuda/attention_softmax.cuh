// The per-row work of the forward attention kernels, shared by the mma.sync and wgmma versions:
// scores sit in m16n8 accumulator layout (s[block][e]: row g + 8 (e / 2) of the warp's 16, key
// 8 block + 2t + e % 2, for lane 4g + t), so a lane holds two rows and a row's scores sit in the
// 4 lanes of one quad.
#pragma once

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/mma_ptx.cuh"

namespace tessera::cuda::attn {

// Sets to -inf the scores a query may not see: keys after it (which includes keys past the
// sequence end) and, when by_segment (Params::one_segment is false for the tiles), keys of another
// segment. rows and seg_rows are this lane's two query rows and their segment ids; key0 is the
// first key of the tile.
template <int kKeyBlocks>
__device__ __forceinline__ void mask_scores(float (&s)[kKeyBlocks][4], const Params& p, int64_t b, int64_t key0,
                                            const int64_t (&rows)[2], const int32_t (&seg_rows)[2], bool by_segment) {
  const int t = threadIdx.x % 4;
#pragma unroll
  for (int nt = 0; nt < kKeyBlocks; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t j = key0 + nt * 8 + 2 * t + e % 2;
      bool ok = j <= rows[e / 2];
      if (by_segment) ok = ok && j < p.s && p.segment(b, j) == seg_rows[e / 2];
      if (!ok) s[nt][e] = -INFINITY;
    }
  }
}

// Sets to -inf the scores of keys before their query's document start: row_first holds that start
// for this lane's two rows (ops::document_bounds), key0 is the first key of the tile.
template <int kKeyBlocks>
__device__ __forceinline__ void mask_before_documents(float (&s)[kKeyBlocks][4], int64_t key0,
                                                      const int32_t (&row_first)[2]) {
  const int t = threadIdx.x % 4;
#pragma unroll
  for (int nt = 0; nt < kKeyBlocks; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (key0 + nt * 8 + 2 * t + e % 2 < row_first[e / 2]) s[nt][e] = -INFINITY;
}

// Online softmax in base 2 over this lane's two rows.
template <int kKeyBlocks>
struct RowSoftmax {
  float m[2] = {-INFINITY, -INFINITY};  // running max of the scaled scores
  float l[2] = {0.0f, 0.0f};            // this lane's share of the row sum
  float scale2;                         // softmax scale times log2(e)

  // Turns a tile's (masked) scores into unnormalised probabilities and returns in alpha the
  // factor by which the output accumulated so far must be rescaled.
  __device__ __forceinline__ void update(float (&s)[kKeyBlocks][4], float (&alpha)[2]) {
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kKeyBlocks; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) tile_max[e / 2] = fmaxf(tile_max[e / 2], s[nt][e]);
    float shift[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      const float m_new = fmaxf(m[r], tile_max[r] * scale2);
      shift[r] = m_new == -INFINITY ? 0.0f : m_new;  // nothing seen yet: keep exp2 finite
      alpha[r] = ptx::exp2_approx(m[r] - shift[r]);
      m[r] = m_new;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int nt = 0; nt < kKeyBlocks; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = ptx::exp2_approx(fmaf(s[nt][e], scale2, -shift[e / 2]));
        l[e / 2] += s[nt][e];
      }
    }
  }

  // Writes row r's normalised output o (m16n8 accumulator blocks over the head dim) and its
  // log-sum-exp; rows past the sequence end are skipped.
  template <typename T, int kDimBlocks>
  __device__ __forceinline__ void store(const float (&o)[kDimBlocks][4], const Params& p, int64_t b, int64_t h,
                                        const int64_t (&rows)[2]) {
    const int t = threadIdx.x % 4;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
      l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
      if (rows[r] >= p.s) continue;
      const float inv_l = 1.0f / l[r];  // l >= 1: the diagonal key is always seen
      T* out = static_cast<T*>(p.out) + p.q_offset(b, rows[r], h) + 2 * t;
#pragma unroll
      for (int dt = 0; dt < kDimBlocks; ++dt)
        *reinterpret_cast<uint32_t*>(out + dt * 8) = ptx::pack2<T>(o[dt][2 * r] * inv_l, o[dt][2 * r + 1] * inv_l);
      if (t == 0) p.lse[p.row_offset(b, h, rows[r])] = (m[r] + log2f(l[r])) * kLn2;
    }
  }
};

// Scales this lane's two output rows by the softmax rescaling factors.
template <int kDimBlocks>
__device__ __forceinline__ void rescale(float (&o)[kDimBlocks][4], const float (&alpha)[2]) {
#pragma unroll
  for (int dt = 0; dt < kDimBlocks; ++dt) {
    o[dt][0] *= alpha[0];
    o[dt][1] *= alpha[0];
    o[dt][2] *= alpha[1];
    o[dt][3] *= alpha[1];
  }
}

}  // namespace tessera::cuda::attn
