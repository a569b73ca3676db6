// Shared by the attention kernels: the argument block, the mask, and the launchers that
// kernels/cuda/attention.cu chooses between.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "kernels/attention_shape.h"
#include "kernels/attention_variants.h"
#include "kernels/cuda/cuda_common.cuh"

namespace tessera::cuda::attn {

constexpr float kLog2e = 1.4426950408889634f;  // softmax runs in base 2: exp(x) = exp2(x * log2 e)
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kTile = 64;  // query rows and key rows per tile of the tensor-core kernels
constexpr int kBlockRows = 128;  // a Hopper CTA's rows: its query block (forward) or key block (backward)

// Pointers and sizes of one call; the kernels cast the data pointers to their element type.
// q, out, dout, dq: [b, s, hq, d]; k, v, dk, dv: [b, s, hkv, d]; lse, delta: [b, hq, s].
struct Params {
  const void *q = nullptr, *k = nullptr, *v = nullptr, *dout = nullptr;
  void *out = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
  float* lse = nullptr;
  const float* lse_in = nullptr;
  const float* delta = nullptr;  // rowsum(dout * out)
  float* dq_accum = nullptr;     // f32 [b, s, hq, d], summed into with atomics
  const int32_t* segments = nullptr;
  const int32_t* segment_ranges = nullptr;  // [b, tiles, 2]: lowest and highest id of each tile
  // ops::document_bounds [2, b, s]: each row's document start and end, -1 where ids decrease
  const int32_t* doc_bounds = nullptr;
  const int32_t* order = nullptr;  // heaviest_first: the CTAs' blocks, the most work first
  int64_t b = 0, s = 0, hq = 0, hkv = 0, d = 0, group = 1;
  float scale = 1.0f;

  __device__ int64_t q_offset(int64_t bi, int64_t i, int64_t h) const { return ((bi * s + i) * hq + h) * d; }
  __device__ int64_t kv_offset(int64_t bi, int64_t j, int64_t h) const { return ((bi * s + j) * hkv + h) * d; }
  __device__ int64_t row_offset(int64_t bi, int64_t h, int64_t i) const { return (bi * hq + h) * s + i; }
  __device__ int32_t segment(int64_t bi, int64_t i) const { return segments ? segments[bi * s + i] : 0; }
  // The first and last row of row i's document (doc_bounds; 0 and s - 1 without one), -1 in a batch
  // row whose ids decrease.
  __device__ int32_t doc_first(int64_t bi, int64_t i) const { return doc_bounds ? doc_bounds[bi * s + i] : 0; }
  __device__ int32_t doc_last(int64_t bi, int64_t i) const {
    return doc_bounds ? doc_bounds[(b + bi) * s + i] : int32_t(s - 1);
  }
  // True when no row of tiles [first, last] shares a segment with a row of tile `other` (64-row
  // tiles of queries or keys): the kernels skip such pairs.
  __device__ bool tiles_disjoint(int64_t bi, int64_t first, int64_t last, int64_t other) const {
    if (!segment_ranges) return false;
    const int64_t tiles = (s + kTile - 1) / kTile;
    const int32_t* o = segment_ranges + (bi * tiles + other) * 2;
    for (int64_t tile = first; tile <= last; ++tile) {
      const int32_t* r = segment_ranges + (bi * tiles + tile) * 2;
      if (!(r[1] < o[0] || o[1] < r[0])) return false;
    }
    return true;
  }
  // True when every row of query tiles [q_first, q_last] and of key tiles [k_first, k_last] (64-row
  // tiles, clamped to the sequence) lies in one segment, as in a long document or with no segment
  // ids: the pair then needs only the causal mask, not the per-element segment test.
  __device__ bool one_segment(int64_t bi, int64_t q_first, int64_t q_last, int64_t k_first, int64_t k_last) const {
    if (!segment_ranges) return segments == nullptr;
    const int64_t tiles = (s + kTile - 1) / kTile;
    const int32_t* base = segment_ranges + bi * tiles * 2;
    const int32_t id = base[q_first * 2];
    auto all_id = [&](int64_t first, int64_t last) {
      for (int64_t tile = first; tile <= min(last, tiles - 1); ++tile)
        if (base[tile * 2] != id || base[tile * 2 + 1] != id) return false;
      return true;
    };
    return all_id(q_first, q_last) && all_id(k_first, k_last);
  }
};

// Work items of a grid of blocks x heads x batch rows: item = block + blocks (head + heads batch)
// when a CTA takes its own (cta_index() in a grid dim3(blocks, heads, batch)).
struct WorkGrid {
  int64_t blocks, heads, batch;
};
__device__ __forceinline__ int64_t cta_index() {
  return blockIdx.x + int64_t(gridDim.x) * (blockIdx.y + int64_t(gridDim.y) * blockIdx.z);
}
__device__ __forceinline__ WorkGrid launch_grid() { return {gridDim.x, gridDim.y, gridDim.z}; }

// Where work item `item` lies: `rank` 0 is the block with the most causal work. With heavy_first,
// every head's rank-0 item comes before any rank-1 item (CTAs start in index order), so the
// longest run in the first wave instead of trailing in the last; otherwise ranks ascend within
// each head.
struct CtaWork {
  int64_t rank, head, batch;
};
__device__ __forceinline__ CtaWork cta_work(bool heavy_first, int64_t item, WorkGrid grid) {
  if (!heavy_first) return {item % grid.blocks, item / grid.blocks % grid.heads, item / (grid.blocks * grid.heads)};
  const int64_t per_rank = grid.heads * grid.batch;
  const int64_t rest = item % per_rank;
  return {item / per_rank, rest % grid.heads, rest / grid.heads};
}

// The block, head and batch row of work item `item` when blocks come from Params::order: the
// heads of one block are adjacent items.
struct BlockWork {
  int64_t block, head, batch;
};
__device__ __forceinline__ BlockWork ordered_work(const int32_t* order, int64_t item, WorkGrid grid) {
  const int64_t ordered = order[item / grid.heads];
  return {ordered % grid.blocks, item % grid.heads, ordered / grid.blocks};
}

// Query i sees key j (both in [0, s)) when j <= i and they share a segment; seg_i, seg_j come
// from Params::segment (all zero without segment ids).
__device__ __forceinline__ bool sees(int64_t i, int64_t j, int32_t seg_i, int32_t seg_j) {
  return j <= i && seg_i == seg_j;
}

// Simple kernels, one query (or key) row per CTA: any floating dtype, head dims up to 256.
void rows_forward(const Params& p, DType dtype, cudaStream_t stream);
void rows_backward(const Params& p, DType dtype, cudaStream_t stream);

// Tensor-core kernels: bf16/f16, head dims where flash_supports is true, 16-byte aligned rows.
inline bool flash_supports(int64_t head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 96 || head_dim == 128;
}

// Calls fn(T* tag, std::integral_constant<int, D>) for the tensor-core kernels' dtype T and head
// dim D: the one place that instantiates them.
template <typename Fn>
void dispatch_flash(DType dtype, int64_t head_dim, Fn&& fn) {
  auto by_dim = [&](auto* tag) {
    switch (head_dim) {
      case 32: return fn(tag, std::integral_constant<int, 32>{});
      case 64: return fn(tag, std::integral_constant<int, 64>{});
      case 96: return fn(tag, std::integral_constant<int, 96>{});
      case 128: return fn(tag, std::integral_constant<int, 128>{});
      default: throw Error("attention: no tensor-core kernel for head dim " + std::to_string(head_dim));
    }
  };
  if (dtype == DType::BF16) return by_dim(static_cast<__nv_bfloat16*>(nullptr));
  if (dtype == DType::F16) return by_dim(static_cast<__half*>(nullptr));
  throw Error("attention: tensor-core kernels take bf16 or f16, got " + std::string(dtype_name(dtype)));
}

void flash_forward(const Params& p, DType dtype, cudaStream_t stream);

// Hopper kernels (wgmma and TMA, attention_*_sm90.cu), faster where they apply: bf16/f16 at head
// dims 64 and 128 on an sm_90 GPU, in a build that includes sm_90a.
bool sm90_supports(int64_t head_dim);
// dispatch_flash restricted to the Hopper kernels' head dims.
template <typename Fn>
void dispatch_sm90(DType dtype, int64_t head_dim, Fn&& fn) {
  dispatch_flash(dtype, head_dim, [&](auto* tag, auto dim) {
    if constexpr (decltype(dim)::value == 64 || decltype(dim)::value == 128)
      fn(tag, dim);
    else
      throw Error("attention: the sm_90 kernels take head dims 64 and 128");
  });
}
// Variants of the Hopper kernels, each adding one change to the one before, kept selectable
// (TESSERA_ATTN_FWD / TESSERA_ATTN_BWD = v1, v2, ...; kernels/attention_variants.h) until measured:
//   forward  v1: the segment test decided after S = Q K^T; v2: decided before it (from the
//            kernel parameter first); v3: v2 with the heaviest query tiles of all heads first;
//            v4: v3 not loading the key tiles that share no document with the CTA's queries (v3
//            loads and passes over them); v5: v4 issuing each tile's S = Q K^T before the last
//            tile's O += P V, so that a warpgroup's softmax runs while its previous product does.
//   backward v1, v2, v3: the same three steps; v4: v3 adding dQ into its fp32 buffer four values
//            per atomic (float4) instead of two; v5: v3 with each warpgroup's 64 x 64 dQ block
//            written to shared memory and added by TMA as whole tiles (two Q/dO stages at head
//            dim 64, where the block takes the third one's room); v6: v5 walking a CTA's items
//            query tile by query tile (all heads of the group) instead of head by head, so that
//            a tile without the keys' documents is ruled out once per group, not once per head.
//   forward  v6: v3 reading only the key tiles from the document start of the CTA's first query
//            (Params::doc_bounds; none of the per-tile tests of v4 in the loop), masking by each
//            row's document start instead of comparing ids, the CTAs taking their query blocks
//            heaviest first by that true work (Params::order).
//            v7: v6 persistent, a CTA per SM taking every gridDim.x-th block, its producer
//            loading the next block's Q and first K/V tiles while the consumers finish this one.
//   backward v7: v5 with the same bounds: a key block visits the query tiles up to its last key's
//            document end, masks by each key's document end, and takes its block by true work;
//            v8: v7 with each warpgroup adding the dQ of its own 64 keys for all of an item's
//            queries (twice the tile additions), so that the two never wait for each other's dS
//            (head dim 64; at 128 it runs v7: two dQ blocks there serialise the wgmmas).
//   backward v9: v6 taking P^T = exp2 alone in items that need no mask (the mask pass only where
//            one does), the row statistics in pairs; v10: v9 with each warpgroup issuing dV as
//            soon as P^T is packed (dS^T's arithmetic runs under it; dS^T takes the packed P^T) and
//            dK after dQ (dQ's store and TMA add run under dK); v11: v10 issuing the next item's S^T
//            before this item's dQ goes out, so the tensor cores have it while dQ is stored;
//            v12: v7's document bounds with v10's warpgroups.
// Where a batch row's ids decrease (documents need not be runs), v6 and v7 visit every tile up to
// the diagonal (from it) and compare ids.
constexpr bool forward_uses_document_bounds(int variant) { return variant >= 6; }
constexpr bool backward_uses_document_bounds(int variant) { return variant == 7 || variant == 8 || variant == 12; }
// The blocks of kBlockRows rows of every batch row as items batch * blocks + block, ordered by the
// number of blocks of the other side they visit (from ops::document_bounds' [2, b, s]), descending:
// query blocks of the forward, or key blocks of the backward (by_keys).
Tensor heaviest_first(const Tensor& bounds, bool by_keys, cudaStream_t stream);
void sm90_forward(const Params& p, DType dtype, cudaStream_t stream, int variant);
void sm90_backward(const Params& p, DType dtype, cudaStream_t stream, int variant);  // dk, dv and p.dq_accum
void flash_backward(const Params& p, DType dtype, cudaStream_t stream);  // dk, dv and p.dq_accum

}  // namespace tessera::cuda::attn
