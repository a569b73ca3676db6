// The arithmetic of the int4 group kernels (gemv_group_kernel in gemv_packed_mma.cu, the streaming
// one of gemv_packed_stream.cu), for 1-2 rows of A. The tensor cores multiply the codes as they are
// unpacked (128 + q in bf16, 1024 + q in f16: exact, no pair subtraction or product), and each
// group's fp32 partial sum gets its own scale and zero after:
// sum((q - z) s x) = s (sum((base + q) x) - (base + z) sum(x)), with each group's sum(x) worked out
// once a block into shared memory. So that an mma's sums stay apart by group, the 8 columns of B
// are (row of A, lane t of the quad) pairs: column 4i + t holds row i of A over the k of lane t's
// group only (zero elsewhere), so column 4i + t of the result is the partial sum of lane t's group.
// Its weights are (q - z) s exactly, not rounded to A's dtype.
//
// A tile is 16 rows of W (the mma's M); lane (g, t) of a warp (g = lane / 4, t = lane % 4) holds
// rows g and g + 8, and a "slice" of a tile is 4 consecutive units (kernels/packed_pairs.h:
// Int4WidePairs, 32 weights each), lane t taking unit 4 * slice + t.
#pragma once

#include <type_traits>

#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/mma_ptx.cuh"
#include "kernels/packed_pairs.h"

namespace tessera::cuda {

constexpr int kTileRows = 16, kTokens = 8;  // the mma's M and N
constexpr int kGroupTokens = 2;             // rows of A the group kernels take

// Bytes of the sums of x: one float per group of 32 columns and row of A.
inline size_t group_shared_bytes(int64_t k, int m) {
  return size_t(k / packed_pairs::Int4WidePairs::kWeights) * size_t(m) * sizeof(float);
}

// The sum of the 32 activations at p (a unit's).
template <typename T>
__device__ __forceinline__ float unit_x_sum(const T* p) {
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    float v[8];
    load_f32<8>(v, p + 8 * j);
#pragma unroll
    for (int i = 0; i < 8; ++i) sum += v[i];
  }
  return sum;
}

// x_sums[i * units + u] = sum of row i of A over unit u's 32 columns, by the block's threads
// (then __syncthreads).
template <typename T>
__device__ __forceinline__ void group_x_sums(float* x_sums, const T* a, int64_t k, int m, int units) {
  for (int e = threadIdx.x; e < m * units; e += blockDim.x)
    x_sums[e] = unit_x_sum(a + int64_t(e / units) * k + int64_t(e % units) * packed_pairs::Int4WidePairs::kWeights);
  __syncthreads();
}

// What lane (g, t) multiplies with: its B column is g, row g / 4 of A over lane g % 4's k (held by
// lanes t == g % 4 only); its result columns 2t and 2t + 1 are row t / 2 of A, groups of lanes
// 2 (t % 2) and 2 (t % 2) + 1.
template <typename T>
struct GroupLane {
  const T* x;
  bool holds_x;
  int token, first_lane, g, t;

  __device__ __forceinline__ GroupLane(const T* a, int64_t k, int m, int lane)
      : g(lane / 4), t(lane % 4) {
    holds_x = t == g % 4 && g / 4 < m;
    x = a + int64_t(holds_x ? g / 4 : 0) * k;
    token = t / 2;
    first_lane = 2 * (t % 2);
  }
};

// acc += this lane's share of slice `slice` (units 4 slice .. 4 slice + 3, of `units`), whose codes,
// scales and zeros of rows g and g + 8 are raw[0] and raw[1] (zero past the last unit). The whole
// warp calls it (mma.sync).
template <typename T>
__device__ __forceinline__ void group_step(float (&acc)[4], const packed_pairs::Int4WidePairs::Raw (&raw)[2],
                                           int slice, int units, int m, const float* x_sums, const GroupLane<T>& l) {
  using Pairs = packed_pairs::Int4WidePairs;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kPairs = Pairs::kWeights / 2, kRuns = Pairs::kWeights / 8;
  constexpr uint32_t kMagic = kBf16 ? 0x43004300u : 0x64006400u;  // 128 or 1024 in each half
  constexpr float kBase = kBf16 ? 128.0f : 1024.0f;
  const int u0 = 4 * slice, u = u0 + l.t;
  uint4 xs[kRuns];
#pragma unroll
  for (int j = 0; j < kRuns; ++j)
    xs[j] = u < units && l.holds_x ? *reinterpret_cast<const uint4*>(l.x + Pairs::run(u, j)) : make_uint4(0, 0, 0, 0);
  uint32_t lo[kPairs], hi[kPairs], b[kPairs], xr[kPairs];
#pragma unroll
  for (int j = 0; j < kRuns; ++j)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      lo[4 * j + q] = ((raw[0].w[j] >> (4 * q)) & 0x000f000fu) | kMagic;
      hi[4 * j + q] = ((raw[1].w[j] >> (4 * q)) & 0x000f000fu) | kMagic;
    }
#pragma unroll
  for (int j = 0; j < kRuns; ++j) xr[4 * j] = xs[j].x, xr[4 * j + 1] = xs[j].y, xr[4 * j + 2] = xs[j].z, xr[4 * j + 3] = xs[j].w;
  Pairs::x_pairs(b, xr);
  float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int s = 0; s < kPairs / 2; ++s) {
    const uint32_t fragment[4] = {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]};
    ptx::mma_16816<T>(d, fragment, b[2 * s], b[2 * s + 1]);
  }
  // d: rows g and g + 8, columns 2t and 2t + 1 = groups of lanes first_lane and first_lane + 1.
  const uint32_t mine[2] = {uint32_t(raw[0].scale) | uint32_t(raw[0].zero) << 16,
                            uint32_t(raw[1].scale) | uint32_t(raw[1].zero) << 16};
#pragma unroll
  for (int col = 0; col < 2; ++col) {
    const int from = l.first_lane + col, from_u = u0 + from;
    const float sum_x = l.token < m && from_u < units ? x_sums[l.token * units + from_u] : 0.0f;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const uint32_t theirs = __shfl_sync(0xffffffffu, mine[r], 4 * l.g + from);
      const float scale = packed_units::f16_to_float(uint16_t(theirs)), zero = float(theirs >> 16);
      acc[2 * r + col] = fmaf(scale, d[2 * r + col] - (kBase + zero) * sum_x, acc[2 * r + col]);
    }
  }
}

// The warp's sums of rows g and g + 8 for row `token` of A into partial[tile row * kTokens + row of
// A] (this lane's two columns, then its neighbour's two).
template <typename T>
__device__ __forceinline__ void group_partials(float* partial, const float (&acc)[4], const GroupLane<T>& l) {
  float sums[2] = {acc[0] + acc[1], acc[2] + acc[3]};
#pragma unroll
  for (int r = 0; r < 2; ++r) sums[r] += __shfl_xor_sync(0xffffffffu, sums[r], 1);
  if (l.t % 2 == 0) {
    partial[l.g * kTokens + l.token] = sums[0];
    partial[(l.g + 8) * kTokens + l.token] = sums[1];
  }
}

// The same arithmetic with each lane's result columns its own unit's (the stream kernel's): B
// column n is row n % 2 of A over lane n / 2's unit, so lane (g, t)'s columns 2t and 2t + 1 are
// rows 0 and 1 of A over its own unit u: each partial sum gets the scale and zero the lane loaded
// itself (no shuffles a step), and the quad's lanes add their sums once a tile. The activations
// come staged (StagedGroupX below): b holds lane (g, t)'s B fragment, row g % 2 of A over unit
// u' = 4 slice + g / 2 where t == g / 2 and zeros elsewhere; sum_x the sums of rows 0 and 1 of A
// over the lane's own unit (zeros past the last unit or row).

// acc[2r + i] += row g + 8r of the tile times row i of A over the lane's unit, whose codes, scales
// and zeros of rows g and g + 8 are raw[0] and raw[1]. The whole warp calls it (mma.sync). kChains
// 2 sums the unit's 8 mmas in two chains (half the dependent latency, 4 registers more).
template <typename T, int kChains = 1>
__device__ __forceinline__ void own_group_step(float (&acc)[4], const packed_pairs::Int4WidePairs::Raw (&raw)[2],
                                               const uint32_t (&b)[packed_pairs::Int4WidePairs::kWeights / 2],
                                               const float (&sum_x)[2]) {
  using Pairs = packed_pairs::Int4WidePairs;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kPairs = Pairs::kWeights / 2, kRuns = Pairs::kWeights / 8;
  constexpr uint32_t kMagic = kBf16 ? 0x43004300u : 0x64006400u;  // 128 or 1024 in each half
  constexpr float kBase = kBf16 ? 128.0f : 1024.0f;
  uint32_t lo[kPairs], hi[kPairs];
#pragma unroll
  for (int j = 0; j < kRuns; ++j)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      lo[4 * j + q] = ((raw[0].w[j] >> (4 * q)) & 0x000f000fu) | kMagic;
      hi[4 * j + q] = ((raw[1].w[j] >> (4 * q)) & 0x000f000fu) | kMagic;
    }
  static_assert(kChains == 1 || kChains == 2);
  float chain[kChains][4] = {};
#pragma unroll
  for (int s = 0; s < kPairs / 2; ++s) {
    const uint32_t fragment[4] = {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]};
    ptx::mma_16816<T>(chain[s % kChains], fragment, b[2 * s], b[2 * s + 1]);
  }
  float d[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) d[e] = kChains == 1 ? chain[0][e] : chain[0][e] + chain[kChains - 1][e];
  // d[2r + i]: row g + 8r, row i of A, over the lane's unit.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float scale = packed_units::f16_to_float(raw[r].scale), base = kBase + float(raw[r].zero);
#pragma unroll
    for (int i = 0; i < 2; ++i) acc[2 * r + i] = fmaf(scale, d[2 * r + i] - base * sum_x[i], acc[2 * r + i]);
  }
}

// 1-2 rows of A staged in the block's shared memory for own_group_step: for each row i < m and
// unit u, its 32 activations as the 16 pairs of x_pairs (64 bytes; unit `units` of each row is
// zeros), then for each unit (and the zero one) the sums of rows 0 and 1 (0 past m).
struct StagedGroupX {
  static constexpr int kUnitWords = packed_pairs::Int4WidePairs::kWeights / 8;  // uint4s a unit
  static size_t bytes(int64_t k, int m) {
    const size_t units = size_t(k / packed_pairs::Int4WidePairs::kWeights) + 1;
    return units * size_t(m) * kUnitWords * sizeof(uint4) + units * sizeof(float2);
  }
  const uint4* pairs;  // [m][units + 1][kUnitWords]
  const float2* sums;  // [units + 1]
  int units;

  // Every thread of the block, after the wait for A (then __syncthreads).
  template <typename T>
  __device__ StagedGroupX(void* shared, const T* a, int64_t k, int m, int units_) : units(units_) {
    using Pairs = packed_pairs::Int4WidePairs;
    uint4* p = static_cast<uint4*>(shared);
    float2* s = reinterpret_cast<float2*>(p + size_t(m) * (units + 1) * kUnitWords);
    for (int u = threadIdx.x; u <= units; u += blockDim.x) {
      float row_sums[2] = {0.0f, 0.0f};
      for (int i = 0; i < m; ++i) {
        uint32_t x[Pairs::kWeights / 2] = {}, b[Pairs::kWeights / 2];
        if (u < units) {
          const T* from = a + int64_t(i) * k + int64_t(u) * Pairs::kWeights;
          row_sums[i] = unit_x_sum(from);
#pragma unroll
          for (int j = 0; j < kUnitWords; ++j) {
            const uint4 v = *reinterpret_cast<const uint4*>(from + 8 * j);
            x[4 * j] = v.x, x[4 * j + 1] = v.y, x[4 * j + 2] = v.z, x[4 * j + 3] = v.w;
          }
        }
        Pairs::x_pairs(b, x);
#pragma unroll
        for (int j = 0; j < kUnitWords; ++j)
          p[(size_t(i) * (units + 1) + u) * kUnitWords + j] = make_uint4(b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]);
      }
      s[u] = make_float2(row_sums[0], row_sums[1]);
    }
    pairs = p;
    sums = s;
    __syncthreads();
  }
};

// The warp's sums of rows g and g + 8 for rows 0 and 1 of A into partial[tile row * kTokens + row
// of A]: the quad's lanes (its units) added up, written by lane t == 0 (lane = 4g + t).
__device__ __forceinline__ void own_group_partials(float* partial, const float (&acc)[4], int lane) {
  float sums[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    sums[e] = acc[e] + __shfl_xor_sync(0xffffffffu, acc[e], 1);
    sums[e] += __shfl_xor_sync(0xffffffffu, sums[e], 2);
  }
  const int g = lane / 4;
  if (lane % 4 == 0) {
    partial[g * kTokens] = sums[0];
    partial[g * kTokens + 1] = sums[1];
    partial[(g + 8) * kTokens] = sums[2];
    partial[(g + 8) * kTokens + 1] = sums[3];
  }
}

}  // namespace tessera::cuda
