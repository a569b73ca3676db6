// The two schemes' lanes of the persistent packed gemv (gemv_packed_stream.cu: weights loaded
// into registers): what a lane loads of a unit of
// its two rows of a 16-row tile, and how it multiplies a slice (4 units, lane t of a quad taking
// the t-th) and leaves a tile's sums for the block.
#pragma once

#include "kernels/cuda/gemv_packed_group.cuh"
#include "kernels/cuda/gemv_packed_out.cuh"
#include "kernels/cuda/gemv_packed_unit.cuh"
#include "kernels/packed_pairs.h"

namespace tessera::cuda {

// Lane (g, t)'s B fragments in 1-2 rows of A staged as StagedGroupX lays them out ([m][units +
// 1][4 uint4], unit `units` zeros): a holder's (t == g / 2, row g % 2 of A) is its own unit's, the
// others read the zero unit.
struct GroupFragments {
  const uint4* b_row;  // row g % 2 of A where lane (g, t) holds it, else row 0
  bool holds_x;
  int t;
  __device__ GroupFragments(const uint4* pairs, int units, int m, int lane) : t(lane % 4) {
    const int g = lane / 4;
    holds_x = t == g / 2 && g % 2 < m;
    b_row = pairs + size_t(holds_x ? g % 2 : 0) * (units + 1) * StagedGroupX::kUnitWords;
  }
  // The lane's unit of the slice (past the last unit: the zero one), its fragment into b.
  __device__ int load(uint32_t (&b)[packed_pairs::Int4WidePairs::kWeights / 2], int slice, int units) const {
    const int u = min(4 * slice + t, units);
    const uint4* from = b_row + size_t(holds_x ? u : units) * StagedGroupX::kUnitWords;
#pragma unroll
    for (int j = 0; j < StagedGroupX::kUnitWords; ++j) {
      const uint4 v = from[j];
      b[4 * j] = v.x, b[4 * j + 1] = v.y, b[4 * j + 2] = v.z, b[4 * j + 3] = v.w;
    }
    return u;
  }
};

// int4 (Int4WidePairs units of 32 weights): each row's 16 bytes of codes and the unit's scale and
// zero; the group arithmetic with each lane's columns its own unit's (own_group_step), on A staged
// in shared memory as B fragments with each unit's sums (StagedGroupX). kSymmetric: every weight
// of the launch symmetric (zero 8), known when compiled: no zero pointers, loads or selects, and
// own_group_step's base a constant.
template <bool kSymmetric>
struct Int4GroupOf {
  using Pairs = packed_pairs::Int4WidePairs;
  static constexpr int kMaxRows = kGroupTokens;
  // Where the lane's two rows of a tile start (found once a tile: no row products a step).
  struct Rows {
    const uint8_t* codes[2];
    const uint16_t* scales[2];
    const uint8_t* zeros[2];  // null: symmetric (zero 8)
    int group_shift;
  };
  template <typename Lr>
  __device__ static Rows rows_of(const Lr& lr) {
    Rows out;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const packed_units::Int4Reader& r = lr.reader(h).r;
      out.codes[h] = r.codes + lr.row[h] * (r.cols / 2);
      out.scales[h] = r.scales + lr.row[h] * r.groups;
      if constexpr (!kSymmetric) out.zeros[h] = r.zeros ? r.zeros + lr.row[h] * r.groups : nullptr;
    }
    out.group_shift = lr.reader(0).r.group_shift;
    return out;
  }
  // Unit u of the lane's two rows.
  __device__ static void load(Pairs::Raw (&raw)[2], const Rows& rows, int u) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      packed_units::load_words(raw[h].w, rows.codes[h] + Pairs::kWeights / 2 * u);
      const int group = (Pairs::kWeights * u) >> rows.group_shift;
      raw[h].scale = rows.scales[h][group];
      if constexpr (kSymmetric) raw[h].zero = 8;
      else raw[h].zero = rows.zeros[h] ? rows.zeros[h][group] : uint8_t(8);
    }
  }
  static size_t shared_bytes(int64_t k, int m) { return StagedGroupX::bytes(k, m); }

  template <typename T>
  struct Lane {
    StagedGroupX x;
    GroupFragments b_of;
    // Stages A (every thread of the block, after the wait for it).
    __device__ Lane(const T* a, int64_t k, int m, int lane, void* shared, int units)
        : x(shared, a, k, m, units), b_of(x.pairs, units, m, lane) {}
    // kChains: own_group_step's mma chains (TESSERA_PACKED_STREAM_CHAINS).
    template <int kChains = 1>
    __device__ void step(float (&acc)[4], const Pairs::Raw (&raw)[2], int slice) const {
      uint32_t b[Pairs::kWeights / 2];
      const int u = b_of.load(b, slice, x.units);
      const float2 sums = x.sums[u];
      const float sum_x[2] = {sums.x, sums.y};
      own_group_step<T, kChains>(acc, raw, b, sum_x);
    }
    template <typename Rows>
    __device__ void partials(float* partial, const float (&acc)[4], const Rows&) const {
      own_group_partials(partial, acc, int(threadIdx.x % 32));
    }
  };
};

using Int4Group = Int4GroupOf<false>;

template <typename Policy>
constexpr bool kInt4Policy = std::is_same_v<typename Policy::Pairs, packed_pairs::Int4WidePairs>;

// int8 (Int8Pairs units of 16 weights): each row's 16 bytes of codes, multiplied as they are
// (exact in A's 16-bit type), each row's scale applied to its sum.
struct Int8Rows {
  using Pairs = packed_pairs::Int8Pairs;
  static constexpr int kMaxRows = kTokens;
  struct Rows {
    const uint8_t* codes[2];
  };
  template <typename Lr>
  __device__ static Rows rows_of(const Lr& lr) {
    Rows out;
#pragma unroll
    for (int h = 0; h < 2; ++h) out.codes[h] = lr.reader(h).r.codes + lr.row[h] * lr.reader(h).r.cols;
    return out;
  }
  __device__ static void load(Pairs::Raw (&raw)[2], const Rows& rows, int u) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      packed_units::load_words(raw[h].w, rows.codes[h] + Pairs::kWeights * u);
      raw[h].scale = 1.0f;
    }
  }
  static size_t shared_bytes(int64_t, int) { return 0; }

  template <typename T>
  struct Lane {
    const T* x;
    bool token;  // lanes g past A's rows multiply zeros
    int units, t, g;
    __device__ Lane(const T* a, int64_t k, int m, int lane, void*, int units_) : units(units_), t(lane % 4), g(lane / 4) {
      token = g < m;
      x = a + int64_t(token ? g : 0) * k;
    }
    __device__ void step(float (&acc)[4], const Pairs::Raw (&raw)[2], int slice) const {
      const int u = 4 * slice + t;
      uint4 xs[Pairs::kWeights / 8];
#pragma unroll
      for (int j = 0; j < Pairs::kWeights / 8; ++j)
        xs[j] = u < units && token ? *reinterpret_cast<const uint4*>(x + Pairs::run(u, j)) : make_uint4(0, 0, 0, 0);
      mma_unit_step<T, Pairs>(acc, raw, u < units, xs);
    }
    // acc: rows g and g + 8 of the tile (times their scales), columns (rows of A) 2t and 2t + 1.
    template <typename Rows>
    __device__ void partials(float* partial, const float (&acc)[4], const Rows& rows) const {
      const float lo = rows.reader(0).r.scales[rows.row[0]], hi = rows.reader(1).r.scales[rows.row[1]];
      partial[g * kTokens + 2 * t] = acc[0] * lo;
      partial[g * kTokens + 2 * t + 1] = acc[1] * lo;
      partial[(g + 8) * kTokens + 2 * t] = acc[2] * hi;
      partial[(g + 8) * kTokens + 2 * t + 1] = acc[3] * hi;
    }
  };
};

// The warps that multiply one tile together: warps [first, first + count) of the block, and this
// thread's place among their threads.
struct TileGroup {
  int first, count, thread;
};

// A tile's end in the persistent packed gemvs, in every warp of its group alike: each warp leaves
// its sums (l's, for rows g and g + 8) in its row of partial, the group's warps meet (sync: their
// barrier), they store the tile's outputs, and the sums restart.
template <int kWarps, int kTileRows, int kTokens, bool kSwiglu, typename Lane, typename Reader, typename Sync>
__device__ __forceinline__ void finish_tile(float (&partial)[kWarps][kTileRows * kTokens], const Lane& l,
                                            float (&acc)[4], const PackedStack<Reader>& s, int tile, int g, int warp,
                                            const TileGroup& group, int m, DType c_dtype, float alpha, float beta,
                                            Sync sync) {
  l.partials(partial[warp], acc, lane_rows<kTileRows, kSwiglu>(s, tile, g));
  sync();
  store_warps_out<kWarps, kTileRows, kTokens>(partial, s, tile, group.first, group.count, group.thread,
                                              32 * group.count, m, c_dtype, alpha, beta);
#pragma unroll
  for (int i = 0; i < 4; ++i) acc[i] = 0.0f;
}

}  // namespace tessera::cuda
