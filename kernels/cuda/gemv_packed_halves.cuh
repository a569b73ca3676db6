// The int8 lane of the stream kernel at 1-2 rows of A with the codes as f16 magic numbers
// (TESSERA_PACKED_STREAM_HALVES=1): one byte_perm makes a pair of 1152 + q (packed_pairs.h:
// byte_halves) where Int8Rows' byte_pairs goes through fp32, about five instructions a weight.
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

// 1-2 rows of A staged as f16 times 2^-e ([m][k], in order: the int8 pairs are consecutive
// elements), then for each slice (4 units of 16 columns) the sums of rows 0 and 1 of the staged
// values (0 past m), then the block's max |x| while staging.
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
    unsigned* max_bits = reinterpret_cast<unsigned*>(s + slice_count);
    if (threadIdx.x == 0) *max_bits = 0;
    __syncthreads();
    unsigned local = 0;  // |x| as bits: non-negative floats order as their bits do
    for (int64_t e = 8 * int64_t(threadIdx.x); e < int64_t(m) * k; e += 8 * int64_t(blockDim.x)) {
      float v[8];
      load_f32<8>(v, a + e);  // k is a multiple of 16: runs of 8 stay in a row
#pragma unroll
      for (int i = 0; i < 8; ++i) local = max(local, __float_as_uint(fabsf(v[i])));
    }
    local = __reduce_max_sync(0xffffffffu, local);
    if (threadIdx.x % 32 == 0) atomicMax(max_bits, local);
    __syncthreads();
    int exponent = 0;
    frexpf(__uint_as_float(*max_bits), &exponent);  // max |x| < 2^exponent
    const int e = min(max(exponent - 15, 0), 100);
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

}  // namespace tessera::cuda
