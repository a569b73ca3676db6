// L2 prefetches of the packed weights a fused gemv block is about to read (TESSERA_PACKED_PREFETCH):
// a tile's rows are consecutive rows of one weight (or of gate, then of up), so each part of them
// (codes, scales, zeros) is one contiguous range, asked for by a few bulk prefetches from one thread.
// The lanes' own loads then find their bytes in L2 instead of each waiting on HBM with only a slice
// or two of its own in flight (session 10's ncu of the int4 stream kernel: 48% of DRAM bandwidth,
// 1.15 eligible warps a scheduler, its register ring ~20 KB in flight an SM). A hint: no result
// changes, and a range not asked for is still read.
#pragma once

#include <cstdint>

#include "kernels/cuda/gemv_packed_out.cuh"
#include "kernels/packed_pairs.h"
#include "kernels/packed_units.h"

namespace tessera::cuda {

// The bulk prefetch's piece: large enough that a tile takes a few instructions.
constexpr uintptr_t kPrefetchPiece = 16 << 10;

// Asks L2 for the 16-byte-aligned interior of [p, p + bytes): the bulk prefetch needs 16-byte
// ends, and the at most 15 bytes left out at each end are read by the loads as ever.
__device__ __forceinline__ void prefetch_l2(const void* p, int64_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t begin = (start + 15) & ~uintptr_t(15), end = (start + uintptr_t(bytes)) & ~uintptr_t(15);
  for (uintptr_t at = begin; at < end; at += kPrefetchPiece) {
    const uint32_t size = uint32_t(end - at < kPrefetchPiece ? end - at : kPrefetchPiece);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(at), "r"(size) : "memory");
  }
#else
  (void)p, (void)bytes;
#endif
}

// Rows [r0, r1) of a weight, part by part (nf4 is not prefetched: v1 reads it through tables).
__device__ __forceinline__ void prefetch_rows(const packed_units::Int8Reader& r, int64_t r0, int64_t r1) {
  prefetch_l2(r.codes + r0 * r.cols, (r1 - r0) * r.cols);  // the scales: 4 bytes a row
}
__device__ __forceinline__ void prefetch_rows(const packed_units::Int4Reader& r, int64_t r0, int64_t r1) {
  prefetch_l2(r.codes + r0 * (r.cols / 2), (r1 - r0) * (r.cols / 2));
  prefetch_l2(r.scales + r0 * r.groups, (r1 - r0) * r.groups * int64_t(sizeof(uint16_t)));
  if (r.zeros) prefetch_l2(r.zeros + r0 * r.groups, (r1 - r0) * r.groups);
}
__device__ __forceinline__ void prefetch_rows(const packed_units::Q8_0Reader& r, int64_t r0, int64_t r1) {
  const int64_t row_bytes = r.cols / quant_math::kGgmlBlock * quant_math::kQ8_0Bytes;
  prefetch_l2(r.records + r0 * row_bytes, (r1 - r0) * row_bytes);
}
__device__ __forceinline__ void prefetch_rows(const packed_units::Q4_0Reader& r, int64_t r0, int64_t r1) {
  const int64_t row_bytes = r.cols / quant_math::kGgmlBlock * quant_math::kQ4_0Bytes;
  prefetch_l2(r.records + r0 * row_bytes, (r1 - r0) * row_bytes);
}
__device__ __forceinline__ void prefetch_rows(const packed_units::Nf4Reader&, int64_t, int64_t) {}
// The pair readers (the tensor-core kernels') read what their unit reader reads.
template <typename Pairs>
__device__ __forceinline__ auto prefetch_rows(const Pairs& p, int64_t r0, int64_t r1) -> decltype(p.r, void()) {
  prefetch_rows(p.r, r0, r1);
}

// The rows of tile `tile` of kRows (tile_of's), rows past a weight's last left out.
template <int kRows, typename Reader>
__device__ __forceinline__ void prefetch_tile(const PackedStack<Reader>& s, int tile) {
  const TileOf t = tile_of<kRows>(s, tile);
  if (s.swiglu) {
    const int64_t end = t.row0 + kRows / 2 < s.n[0] ? t.row0 + kRows / 2 : s.n[0];
    prefetch_rows(s.w[0], t.row0, end);
    prefetch_rows(s.w[1], t.row0, end);
  } else {
    const int64_t n = s.n[t.weight];
    prefetch_rows(s.w[t.weight], t.row0, t.row0 + kRows < n ? t.row0 + kRows : n);
  }
}

}  // namespace tessera::cuda
