// The stream kernel's lanes at 1-2 rows of A with the codes as f16 magic numbers
// (TESSERA_PACKED_STREAM_HALVES=1). int8: one byte_perm makes a pair of 1152 + q (packed_pairs.h:
// byte_halves) where Int8Rows' byte_pairs goes through fp32, about five instructions a weight.
// int4 (Int4Halves, below): the high nibbles stay in place, 1024 + 16 q, so a word of 8 nibbles
// takes one shift and four masks (nibble_halves) instead of three shifts and four masks.
// The mma then takes f16 activations: A is staged once a block as f16 times 2^-e, e the least
// that leaves |x| below 2^15 (0 for any usual activation), with each slice's sums of the staged
// values; a step takes 1152 times its slice's sums away from its columns, and the tile's end
// applies each row's scale times 2^e. Against Int8Rows' products (q x in A's type, fp32 sums) the
// activations are rounded to f16 instead (exact for bf16 in f16's normal range; below 2^-14 they
// keep f16's subnormal steps of 2^-24, times 2^e) and each sum carries 1152 sum(x) until it is
// taken away (fp32: a few bits of the sum's precision).
#pragma once

#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/gemv_packed_policies.cuh"

namespace tessera::cuda {

// e for the staging below, from every thread of the block (two __syncthreads): the least e >= 0
// that leaves max |x| over A's m rows of k below 2^15 in f16 (a NaN or infinity: any). scratch: a
// word of shared memory.
template <typename T>
__device__ __forceinline__ int halves_exponent(const T* a, int64_t k, int m, unsigned* scratch) {
  if (threadIdx.x == 0) *scratch = 0;
  __syncthreads();
  unsigned local = 0;  // |x| as bits: non-negative floats order as their bits do
  for (int64_t e = 8 * int64_t(threadIdx.x); e < int64_t(m) * k; e += 8 * int64_t(blockDim.x)) {
    float v[8];
    load_f32<8>(v, a + e);  // k is a multiple of 16: runs of 8 stay in a row
#pragma unroll
    for (int i = 0; i < 8; ++i) local = max(local, __float_as_uint(fabsf(v[i])));
  }
  local = __reduce_max_sync(0xffffffffu, local);
  if (threadIdx.x % 32 == 0) atomicMax(scratch, local);
  __syncthreads();
  int exponent = 0;
  frexpf(__uint_as_float(*scratch), &exponent);  // max |x| < 2^exponent
  return min(max(exponent - 15, 0), 100);
}

// 1-2 rows of A staged as f16 times 2^-e ([m][k], in order: the int8 pairs are consecutive
// elements), then for each slice (4 units of 16 columns) the sums of rows 0 and 1 of the staged
// values (0 past m), then halves_exponent's word.
struct StagedHalvesX {
  static constexpr int kSliceColumns = 4 * packed_units::kUnit;
  __host__ __device__ static int slices(int64_t k) { return int((k + kSliceColumns - 1) / kSliceColumns); }
  static size_t bytes(int64_t k, int m) {
    return size_t(m) * size_t(k) * sizeof(__half) + size_t(slices(k)) * sizeof(float2) + sizeof(unsigned);
  }
  const __half* x;
  const float2* sums;
  float pow2;  // 2^e
  int slice_count;

  // Every thread of the block, after the wait for A (with __syncthreads).
  template <typename T>
  __device__ StagedHalvesX(void* shared, const T* a, int64_t k, int m) : slice_count(slices(k)) {
    __half* h = static_cast<__half*>(shared);
    float2* s = reinterpret_cast<float2*>(h + size_t(m) * size_t(k));
    const int e = halves_exponent(a, k, m, reinterpret_cast<unsigned*>(s + slice_count));
    const float down = ldexpf(1.0f, -e);
    pow2 = ldexpf(1.0f, e);
    for (int sl = threadIdx.x; sl < slice_count; sl += blockDim.x) {
      float row_sums[2] = {0.0f, 0.0f};
      for (int i = 0; i < m; ++i)
        for (int64_t c = int64_t(sl) * kSliceColumns; c < min(int64_t(sl + 1) * kSliceColumns, k); c += 8) {
          float v[8];
          load_f32<8>(v, a + int64_t(i) * k + c);
          alignas(16) __half out[8];
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            out[j] = __float2half_rn(v[j] * down);
            row_sums[i] += __half2float(out[j]);
          }
          *reinterpret_cast<uint4*>(h + int64_t(i) * k + c) = *reinterpret_cast<const uint4*>(out);
        }
      s[sl] = make_float2(row_sums[0], row_sums[1]);
    }
    x = h;
    sums = s;
    __syncthreads();
  }
};

// int8 at 1-2 rows of A as above; its rows and loads are Int8Rows'.
struct Int8Halves : Int8Rows {
  static constexpr int kMaxRows = kGroupTokens;
  static size_t shared_bytes(int64_t k, int m) { return StagedHalvesX::bytes(k, m); }

  template <typename T>
  struct Lane {
    StagedHalvesX x;
    const __half* row;  // row g of the staged A (row 0 where g >= m: never read)
    bool token;         // lanes g past A's rows multiply zeros
    int units, t, g;
    __device__ Lane(const T* a, int64_t k, int m, int lane, void* shared, int units_)
        : x(shared, a, k, m), units(units_), t(lane % 4), g(lane / 4) {
      token = g < m;
      row = x.x + int64_t(token ? g : 0) * k;
    }
    // acc[2r + i] += row g + 8r of the tile times row 2t + i of A over the slice (its 4 units,
    // lane t's the t-th), the codes raw[0] and raw[1] (a unit past K: any, against zero activations).
    __device__ void step(float (&acc)[4], const Pairs::Raw (&raw)[2], int slice) const {
      const int u = 4 * slice + t;
      uint32_t b[packed_pairs::kPairs] = {};
      if (u < units && token) {
        const uint4* from = reinterpret_cast<const uint4*>(row + int64_t(u) * packed_units::kUnit);
        const uint4 v0 = from[0], v1 = from[1];
        b[0] = v0.x, b[1] = v0.y, b[2] = v0.z, b[3] = v0.w, b[4] = v1.x, b[5] = v1.y, b[6] = v1.z, b[7] = v1.w;
      }
      uint32_t lo[packed_pairs::kPairs], hi[packed_pairs::kPairs];
      packed_pairs::byte_halves(lo, raw[0].w);
      packed_pairs::byte_halves(hi, raw[1].w);
#pragma unroll
      for (int s = 0; s < packed_pairs::kPairs / 2; ++s) {
        const uint32_t fragment[4] = {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]};
        ptx::mma_16816<__half>(acc, fragment, b[2 * s], b[2 * s + 1]);
      }
      // Columns 2t and 2t + 1 are rows 0 and 1 of A at t == 0 only (at most 2 rows).
      const float2 sum = t == 0 && slice < x.slice_count ? x.sums[slice] : make_float2(0.0f, 0.0f);
      acc[0] = fmaf(-packed_pairs::kByteBase, sum.x, acc[0]);
      acc[1] = fmaf(-packed_pairs::kByteBase, sum.y, acc[1]);
      acc[2] = fmaf(-packed_pairs::kByteBase, sum.x, acc[2]);
      acc[3] = fmaf(-packed_pairs::kByteBase, sum.y, acc[3]);
    }
    template <typename Rows>
    __device__ void partials(float* partial, const float (&acc)[4], const Rows& rows) const {
      int8_row_partials(partial, acc, rows, g, t, x.pow2);
    }
  };
};

// 1-2 rows of A staged for the int4 halves step: as StagedGroupX's B fragments (its layout, so
// GroupFragments reads them; x_pairs order,
// unit `units` zeros), in f16 times 2^-e, the even elements (those that meet the high nibbles, 1024
// + 16 q) a sixteenth more; then for each unit (and the zero one) (1024 T, S) of rows 0 and 1: T
// the sum of the staged values, S the sum of x as the codes see it (the even ones times 16), so
// that a unit's sum of (q - z) x is d - 1024 T - z S; then halves_exponent's word.
struct StagedGroupHalvesX {
  using Pairs = packed_pairs::Int4WidePairs;
  static constexpr int kUnitWords = StagedGroupX::kUnitWords;
  static size_t bytes(int64_t k, int m) {
    const size_t units = size_t(k / Pairs::kWeights) + 1;
    return units * size_t(m) * kUnitWords * sizeof(uint4) + units * sizeof(float4) + sizeof(unsigned);
  }
  const uint4* pairs;  // [m][units + 1][kUnitWords]
  const float4* sums;  // [units + 1]: 1024 T and S of row 0, then of row 1
  float pow2;          // 2^e
  int units;

  // Every thread of the block, after the wait for A (with __syncthreads).
  template <typename T>
  __device__ StagedGroupHalvesX(void* shared, const T* a, int64_t k, int m, int units_) : units(units_) {
    uint4* p = static_cast<uint4*>(shared);
    float4* s = reinterpret_cast<float4*>(p + size_t(m) * (units + 1) * kUnitWords);
    const int e = halves_exponent(a, k, m, reinterpret_cast<unsigned*>(s + units + 1));
    const float down = ldexpf(1.0f, -e);
    pow2 = ldexpf(1.0f, e);
    for (int u = threadIdx.x; u <= units; u += blockDim.x) {
      float row_sums[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // T and S of rows 0 and 1
      for (int i = 0; i < m; ++i) {
        uint32_t x[Pairs::kWeights / 2] = {}, b[Pairs::kWeights / 2];
        if (u < units)
#pragma unroll
          for (int j = 0; j < kUnitWords; ++j) {
            float v[8];
            load_f32<8>(v, a + int64_t(i) * k + int64_t(u) * Pairs::kWeights + 8 * j);
            alignas(16) __half h[8];
#pragma unroll
            for (int c = 0; c < 8; ++c) {
              h[c] = __float2half_rn(v[c] * (c % 2 == 0 ? down * 0.0625f : down));
              const float staged = __half2float(h[c]);
              row_sums[2 * i] += staged;
              row_sums[2 * i + 1] += c % 2 == 0 ? 16.0f * staged : staged;
            }
            const uint4 hv = *reinterpret_cast<const uint4*>(h);
            x[4 * j] = hv.x, x[4 * j + 1] = hv.y, x[4 * j + 2] = hv.z, x[4 * j + 3] = hv.w;
          }
        Pairs::x_pairs(b, x);
#pragma unroll
        for (int j = 0; j < kUnitWords; ++j)
          p[(size_t(i) * (units + 1) + u) * kUnitWords + j] = make_uint4(b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]);
      }
      s[u] = make_float4(1024.0f * row_sums[0], row_sums[1], 1024.0f * row_sums[2], row_sums[3]);
    }
    pairs = p;
    sums = s;
    __syncthreads();
  }
};

// int4 at 1-2 rows of A as above; its rows, loads and sums' partials are Int4Group's (each lane's
// B columns its own unit's: rows 0 and 1 of A).
struct Int4Halves : Int4Group {
  static size_t shared_bytes(int64_t k, int m) { return StagedGroupHalvesX::bytes(k, m); }

  template <typename T>
  struct Lane {
    StagedGroupHalvesX x;
    GroupFragments b_of;
    __device__ Lane(const T* a, int64_t k, int m, int lane, void* shared, int units)
        : x(shared, a, k, m, units), b_of(x.pairs, units, m, lane) {}
    // acc[2r + i] += row g + 8r of the tile times row i of A over the lane's unit of the slice.
    __device__ void step(float (&acc)[4], const Pairs::Raw (&raw)[2], int slice) const {
      uint32_t b[Pairs::kWeights / 2], lo[Pairs::kWeights / 2], hi[Pairs::kWeights / 2];
      const int u = b_of.load(b, slice, x.units);
      packed_pairs::nibble_halves(lo, raw[0].w);
      packed_pairs::nibble_halves(hi, raw[1].w);
      float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int s = 0; s < Pairs::kWeights / 4; ++s) {
        const uint32_t fragment[4] = {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]};
        ptx::mma_16816<__half>(d, fragment, b[2 * s], b[2 * s + 1]);
      }
      const float4 sums = x.sums[u];
      const float offset[2] = {sums.x, sums.z}, sum_x[2] = {sums.y, sums.w};
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float scale = packed_units::f16_to_float(raw[r].scale), zero = float(raw[r].zero);
#pragma unroll
        for (int i = 0; i < 2; ++i) acc[2 * r + i] = fmaf(scale, d[2 * r + i] - fmaf(zero, sum_x[i], offset[i]), acc[2 * r + i]);
      }
    }
    template <typename Rows>
    __device__ void partials(float* partial, const float (&acc)[4], const Rows&) const {
      const float scaled[4] = {acc[0] * x.pow2, acc[1] * x.pow2, acc[2] * x.pow2, acc[3] * x.pow2};
      own_group_partials(partial, scaled, int(threadIdx.x % 32));
    }
  };
};

}  // namespace tessera::cuda
