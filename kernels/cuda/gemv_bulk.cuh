// The gemv's bulk form (kernels/gemv_form.h GemvForm::Bulk): each warp walks the persistent
// form's rows (g, g + warps, ...), but its weight bytes come by bulk copies (cp.async.bulk, one
// instruction of lane 0 per chunk of one round, 2,048 elements) into the warp's own ring of
// `slots` chunk buffers in shared memory, each with an mbarrier that completes when the chunk has
// landed. A warp thus keeps slots x 4 KB in flight with few registers (the persistent form keeps
// 4-8 KB in 64 registers a lane), issues the whole ring before the PDL wait, and its tail still
// streams. The rings fill ~200 KB of each SM (bulk_slots): session 11 call D2 measured bytes in
// flight as the lever (lm_head at 64 / 128 / 192 KB a SM: 2.1 / 3.2 / 3.9 TB/s; cuBLASLt keeps
// ~200 KB), one block a SM unless TESSERA_GEMV_BLOCKS_PER_SM asks for more, smaller, rings. The lanes read a chunk exactly as row_dot reads a round (lane l's 16 bytes at
// l * 8 + u * 256), so every sum is added in the rows form's order: the same bits.
#pragma once

#include <cstdint>

#include "kernels/cuda/gemv_row.cuh"
#include "kernels/cuda/sm90_ptx.cuh"

namespace tessera::cuda::gemv {

constexpr int kMaxSlots = 16;             // chunks in flight per warp, at most
constexpr int kChunk = kUnroll * kStep;   // elements per chunk: one round of row_dot
constexpr int64_t kBulkSharedPerSm = 200 * 1024;  // the rings and input stages of an SM's blocks

// The rings of the block's warps in dynamic shared memory, after the input stage's bytes.
inline int64_t bulk_ring_bytes(int slots, int64_t element_bytes) {
  return int64_t(kWarps) * slots * kChunk * element_bytes;
}
// Where the rings start: past the input stage's `input_bytes`, on a 128-byte boundary.
inline int64_t bulk_ring_offset(int64_t input_bytes) { return (input_bytes + 127) / 128 * 128; }
// Slots a warp's ring gets when `blocks` blocks share an SM's kBulkSharedPerSm, each with
// ring_offset bytes before its rings: 2 to kMaxSlots.
inline int bulk_slots(int64_t ring_offset, int blocks, int64_t element_bytes) {
  const int64_t fit = (kBulkSharedPerSm / blocks - ring_offset) / bulk_ring_bytes(1, element_bytes);
  return static_cast<int>(fit < 2 ? 2 : fit > kMaxSlots ? kMaxSlots : fit);
}

// One warp's stream of chunks: chunk i is chunk i % per_row of the warp's row i / per_row
// (row_of(j): the j-th row of its sequence, k elements), in slot i % slots.
template <typename T, typename RowOf>
struct ChunkStream {
  T* ring;         // slots * kChunk elements
  uint64_t* full;  // slots mbarriers, each initialised for one arrival
  RowOf row_of;
  int k, per_row, count, slots;

  // Lane 0: chunk i's copy into its slot (whose previous chunk every lane has read).
  __device__ void issue(int i) const {
    const int slot = i % slots, k0 = (i % per_row) * kChunk;
    const uint32_t bytes = static_cast<uint32_t>(min(kChunk, k - k0)) * sizeof(T);
    sm90::fence_proxy_async();  // the lanes' reads of the slot before the copy's writes
    sm90::barrier_arrive_expect(&full[slot], bytes);
    sm90::bulk_load(ring + slot * kChunk, row_of(i / per_row) + k0, bytes, &full[slot]);
  }
  // Every lane: waits for chunk i; its elements.
  __device__ const T* wait(int i) const {
    const int slot = i % slots;
    sm90::barrier_wait(&full[slot], (i / slots) & 1);
    return ring + slot * kChunk;
  }
  // acc += chunk i against rows a[m, :] (lda apart) at the chunk's k, as row_dot adds a round;
  // then (lane 0) the chunk `slots` on goes out into the freed slot.
  template <int M>
  __device__ void consume(float (&acc)[M], int i, const T* a, int64_t lda, int lane) const {
    const T* chunk = wait(i);
    const int k0 = (i % per_row) * kChunk;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int at = lane * kVec + u * kStep;
      if (k0 + at < k) accumulate<T, M>(acc, *reinterpret_cast<const uint4*>(chunk + at), a, lda, k0 + at);
    }
    __syncwarp();
    if (lane == 0 && i + slots < count) issue(i + slots);
  }
};

// The warp's stream over `rows` rows of its sequence: barriers set up (lane 0, then the warp
// synchronised) and the first `slots` chunks issued. Call before the PDL wait (weights only).
template <typename T, typename RowOf>
__device__ ChunkStream<T, RowOf> start_stream(T* ring, uint64_t* full, RowOf row_of, int k, int rows, int slots,
                                              int lane) {
  const int per_row = (k + kChunk - 1) / kChunk;
  const ChunkStream<T, RowOf> s{ring, full, row_of, k, per_row, rows * per_row, slots};
  if (lane == 0) {
    for (int slot = 0; slot < slots; ++slot) sm90::barrier_init(&full[slot], 1);
    sm90::fence_barrier_init();
    for (int i = 0; i < slots && i < s.count; ++i) s.issue(i);
  }
  __syncwarp();
  return s;
}

// This warp's ring of `slots` chunks in the block's dynamic shared memory, `offset` bytes in.
template <typename T>
__device__ __forceinline__ T* warp_ring(int64_t offset, int warp, int slots) {
  extern __shared__ __align__(16) unsigned char gemv_shared[];
  return reinterpret_cast<T*>(gemv_shared + offset) + int64_t(warp) * slots * kChunk;
}

// Rows of the persistent split: warp `first` of `stride` takes rows first, first + stride, ...
// of `rows`; how many.
__device__ __forceinline__ int rows_of_warp(int first, int stride, int rows) {
  return first < rows ? (rows - first + stride - 1) / stride : 0;
}

// c = alpha * a @ W^T + beta * c over the stacked weights ws (gemv_row.cuh Weights), as
// persistent_gemm_kernel with S = 1 gives it.
template <typename T, typename C, int M, typename Input>
__global__ void __launch_bounds__(kWarps * 32) bulk_gemm_kernel(Weights<T, C> ws, const T* a, int k, float alpha,
                                                                float beta, Input input, int64_t ring_offset,
                                                                int slots) {
  __shared__ uint64_t full[kWarps][kMaxSlots];
  let_next_kernel_start();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int first = blockIdx.x * kWarps + warp, stride = gridDim.x * kWarps;
  const auto row_of = [&](int j) { return ws.row_data(first + j * stride, k); };
  const auto s = start_stream(warp_ring<T>(ring_offset, warp, slots), full[warp], row_of, k,
                              rows_of_warp(first, stride, ws.rows()), slots, lane);
  const T* x = staged_input<T>(input, a, M, k);  // every warp, with rows or not
  float acc[M];
  for (int i = 0; i < s.count; ++i) {
    if (i % s.per_row == 0)
#pragma unroll
      for (int m = 0; m < M; ++m) acc[m] = 0.0f;
    s.template consume<M>(acc, i, x, k, lane);
    if (i % s.per_row == s.per_row - 1) {
      warp_sum(acc);
      if (lane == 0) ws.store(first + (i / s.per_row) * stride, acc, alpha, beta);
    }
  }
}

// out [M, n_total] = silu(a @ gate^T) * (a @ up^T), as persistent_swiglu_kernel gives it: the
// warp's columns g, g + warps, ..., each its gate row then its up row in one stream.
template <typename T, int M, typename Input>
__global__ void __launch_bounds__(kWarps * 32) bulk_swiglu_kernel(T* out, const T* a, const T* gate, const T* up,
                                                                  int n_total, int k, Input input,
                                                                  int64_t ring_offset, int slots) {
  __shared__ uint64_t full[kWarps][kMaxSlots];
  let_next_kernel_start();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int first = blockIdx.x * kWarps + warp, stride = gridDim.x * kWarps;
  const auto column = [&](int j) { return first + (j / 2) * stride; };  // row j: gate (even) or up (odd)
  const auto row_of = [&](int j) { return (j % 2 ? up : gate) + static_cast<int64_t>(column(j)) * k; };
  const auto s = start_stream(warp_ring<T>(ring_offset, warp, slots), full[warp], row_of, k,
                              2 * rows_of_warp(first, stride, n_total), slots, lane);
  const T* x = staged_input<T>(input, a, M, k);
  float acc[M], g[M];
  for (int i = 0; i < s.count; ++i) {
    if (i % s.per_row == 0)
#pragma unroll
      for (int m = 0; m < M; ++m) acc[m] = 0.0f;
    s.template consume<M>(acc, i, x, k, lane);
    if (i % s.per_row != s.per_row - 1) continue;
    warp_sum(acc);
    const int j = i / s.per_row;
    if (j % 2 == 0) {
#pragma unroll
      for (int m = 0; m < M; ++m) g[m] = acc[m];
    } else if (lane == 0) {
#pragma unroll
      for (int m = 0; m < M; ++m)
        out[static_cast<int64_t>(m) * n_total + column(j)] = swiglu_value<T>(g[m], acc[m]);
    }
  }
}

}  // namespace tessera::cuda::gemv
