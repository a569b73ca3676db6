// The bulk-copy packed gemv (TESSERA_PACKED_GEMV=bulk): the stream kernel's lanes
// (kernels/cuda/gemv_packed_policies.cuh: int4 at 1-2 rows of A, each lane's result columns its
// own unit's on A staged as B fragments; int8 at 1-8, the codes multiplied as they are) with the
// weights brought into shared memory by the tensor memory accelerator instead of each lane's
// loads. Session 10's ncu of the stream kernel on the 8B int4 gate_up (2.32 TB/s, 48% of DRAM)
// found its bytes in flight bound by the registers of each lane's ring (123 registers, 22%
// occupancy), each warp load covering 8 half lines (64 bytes of 8 rows), and ~230 instructions a
// slice of which the unpacking and the mmas are 64: the rest addresses, scale loads and each
// tile's bookkeeping. Here a producer warp keeps `stages` chunks of a tile in flight (16 rows x
// 1024-4096 weights, chunk_weights: each row's codes, scales and zeros one bulk copy each,
// counted on the chunk's "full" mbarrier), and the block's 8 consumer warps multiply out of
// shared memory: consumer warp w takes slices w, w + 8, ... of each chunk, then arrives on the
// chunk's "empty" mbarrier, which lets the producer copy the chunk `stages` on into that slot. At
// a tile's last chunk the consumers' sums meet in shared memory (named barrier 1) and 128 of them
// store the tile. One wave of persistent blocks walks the tiles (block b: tiles b, b + gridDim,
// ...), the ring running on across tiles; the first chunks are copied before the kernel waits for
// the one that wrote A.
#include "kernels/cuda/gemv_packed_bulk.cuh"

#include <algorithm>
#include <bit>
#include <type_traits>

#include "core/error.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemv_packed_policies.cuh"
#include "kernels/cuda/persistent_grid.h"
#include "kernels/cuda/sm90_ptx.cuh"
#include "kernels/kernel_variant.h"

namespace tessera::cuda {

namespace pp = packed_pairs;

namespace {

constexpr int kConsumers = 8, kThreads = (kConsumers + 1) * 32;
constexpr int kChunkRows = kTileRows;
constexpr size_t kBarrierBytes = 256;          // the ring's mbarriers: 2 x 16 stages at most
constexpr size_t kBulkSharedMax = 200 << 10;   // of the H200's 227 KB a block, with partial[]

// Where a chunk's bytes sit in its slot of the ring: 16 rows of codes, then of scales, then of
// zeros (int4; none where symmetric), each row padded so that the quarter warps' reads of rows g
// and g + 1 (64 bytes of each) fall in different banks.
struct ChunkLayout {
  int weights;                    // of each row (chunk_weights)
  int code_bytes, code_stride;    // a row's; + 64
  int scale_bytes, scale_stride;  // int4: 2 weights / group; + 16 (int8: 0; its rows' scales are read at the end)
  int zero_bytes, zero_stride;    // int4 asymmetric: weights / group; + 16 (else 0)
  int group_shift;
  int slot_bytes;                 // 16 rows of each
  uint32_t copied;                // bytes the bulk copies bring: 16 rows of each, unpadded
};

// A chunk's weights of each row: TESSERA_PACKED_BULK_CHUNK = 1024 (the default until measured),
// 2048 or 4096, halved down to a divisor of K, and for int4 at least 16 groups (so that each row's
// scales and zeros are whole 16-byte copies). Session 11 call D1: 1024 moved 288 bytes a bulk copy
// (a row's 512 bytes of codes, 64 of scales) and the 8B int4 gate_up ran at 1.29 TB/s, 27% of DRAM,
// its consumers mostly waiting: wider chunks move more bytes a copy.
int chunk_weights(const QuantSpec& spec, int64_t k) {
  const int least = spec.scheme == QuantScheme::Int4 ? std::max(1024, 16 * int(spec.group_size)) : 1024;
  int weights = std::max(least, env_choice("TESSERA_PACKED_BULK_CHUNK", {1024, 2048, 4096}, false, 1024));
  while (weights > least && k % weights != 0) weights /= 2;
  return weights;
}

ChunkLayout layout_of(const QuantSpec& spec, int64_t k) {
  const bool int4 = spec.scheme == QuantScheme::Int4;
  const int group = int4 ? int(spec.group_size) : 1;
  ChunkLayout l{};
  l.weights = chunk_weights(spec, k);
  l.code_bytes = int4 ? l.weights / 2 : l.weights;
  l.code_stride = l.code_bytes + 64;
  l.scale_bytes = int4 ? 2 * (l.weights / group) : 0;
  l.scale_stride = int4 ? l.scale_bytes + 16 : 0;
  l.zero_bytes = int4 && !spec.symmetric ? l.weights / group : 0;
  l.zero_stride = l.zero_bytes ? l.zero_bytes + 16 : 0;
  l.group_shift = std::countr_zero(unsigned(group));
  l.slot_bytes = kChunkRows * (l.code_stride + l.scale_stride + l.zero_stride);
  l.copied = uint32_t(kChunkRows * (l.code_bytes + l.scale_bytes + l.zero_bytes));
  return l;
}

template <typename Policy>
size_t shared_bytes(const ChunkLayout& l, int stages, int64_t k, int m) {
  return kBarrierBytes + size_t(stages) * size_t(l.slot_bytes) + Policy::shared_bytes(k, m);
}

// TESSERA_PACKED_BULK_STAGES = 2, 4 (the default until measured), 6, 8 or 12 chunks in each block's
// ring, fewer where they and the staged A would pass kBulkSharedMax (at least 2: else no fit).
template <typename Policy>
int stages_within(const ChunkLayout& l, int64_t k, int m) {
  int stages = env_choice("TESSERA_PACKED_BULK_STAGES", {2, 4, 6, 8, 12}, false, 4);
  while (stages > 2 && shared_bytes<Policy>(l, stages, k, m) > kBulkSharedMax) --stages;
  return stages;
}

__device__ __forceinline__ void consumers_sync() {
  asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers * 32) : "memory");
}

// The codes of `row` (int4: two a byte; int8: one).
__device__ __forceinline__ const uint8_t* row_codes(const pp::Int4WidePairs& w, int64_t row) {
  return w.r.codes + row * (w.r.cols / 2);
}
__device__ __forceinline__ const uint8_t* row_codes(const pp::Int8Pairs& w, int64_t row) {
  return w.r.codes + row * w.r.cols;
}

template <typename Policy, bool kSwiglu, typename T>
__global__ void __launch_bounds__(kThreads, 2)
    gemv_bulk_kernel(PackedStack<typename Policy::Pairs> s, DType c_dtype, const T* a, int64_t k, int m, float alpha,
                     float beta, int tiles, ChunkLayout cl, int stages) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using Pairs = typename Policy::Pairs;
  using Raw = typename Pairs::Raw;
  constexpr bool kInt4 = std::is_same_v<Policy, Int4Group>;
  let_next_kernel_start();
  extern __shared__ __align__(128) uint8_t shared[];
  __shared__ float partial[2][kConsumers][kTileRows * kTokens];  // by tile parity: one barrier a tile
  uint64_t* full = reinterpret_cast<uint64_t*>(shared);
  uint64_t* empty = full + stages;
  uint8_t* ring = shared + kBarrierBytes;
  void* staged = ring + size_t(stages) * cl.slot_bytes;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int units = int(k / Pairs::kWeights), chunks = int(k / cl.weights);
  const int items = (tiles - int(blockIdx.x) + int(gridDim.x) - 1) / int(gridDim.x) * chunks;
  const bool producer = warp == kConsumers;
  if (threadIdx.x == 0) {
    for (int i = 0; i < stages; ++i) {
      sm90::barrier_init(&full[i], 1);
      sm90::barrier_init(&empty[i], kConsumers);
    }
    sm90::fence_barrier_init();
  }
  __syncthreads();

  // Item i: chunk i % chunks of the block's tile i / chunks, into slot i % stages. Lanes 0-15 copy
  // the codes of rows 0-15, lanes 16-31 the same rows' scales and zeros.
  auto produce = [&](int i, int slot) {
    uint8_t* to = ring + size_t(slot) * cl.slot_bytes;
    if (lane == 0) sm90::barrier_arrive_expect(&full[slot], cl.copied);
    __syncwarp();
    const int tile = int(blockIdx.x) + i / chunks * int(gridDim.x), chunk = i % chunks, r = lane % kChunkRows;
    const RowOf row = row_of<kTileRows>(s, tile_of<kTileRows>(s, tile), r);
    const Pairs& w = s.w[row.weight];
    if (lane < kChunkRows) {
      sm90::bulk_load(to + r * cl.code_stride, row_codes(w, row.row) + int64_t(chunk) * cl.code_bytes,
                      uint32_t(cl.code_bytes), &full[slot]);
    } else if constexpr (kInt4) {
      const int64_t group0 = row.row * w.r.groups + int64_t(chunk) * (cl.weights >> cl.group_shift);
      uint8_t* scales = to + kChunkRows * cl.code_stride;
      sm90::bulk_load(scales + r * cl.scale_stride, w.r.scales + group0, uint32_t(cl.scale_bytes), &full[slot]);
      if (cl.zero_bytes)
        sm90::bulk_load(scales + kChunkRows * cl.scale_stride + r * cl.zero_stride, w.r.zeros + group0,
                        uint32_t(cl.zero_bytes), &full[slot]);
    }
  };
  int next = 0;  // the producer's next item
  if (producer)
    for (; next < min(stages, items); ++next) produce(next, next);  // weights only: before the wait
  wait_for_previous_kernel();                                      // which wrote A
  const typename Policy::template Lane<T> l(a, k, m, lane, staged, units);  // every thread (int4: a __syncthreads)

  if (producer) {
    for (int slot = next % stages, round = next / stages; next < items; ++next) {
      sm90::barrier_wait(&empty[slot], (round & 1) ^ 1);  // the consumers are done with item next - stages
      produce(next, slot);
      if (++slot == stages) slot = 0, ++round;
    }
    return;
  }

  // Lane (g, t)'s bytes in a slot: its rows g and g + 8, unit t of slice 0.
  const int g = lane / 4, t = lane % 4;
  int code_at[2], scale_at[2], zero_at[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = g + 8 * h;
    code_at[h] = r * cl.code_stride + 16 * t;
    scale_at[h] = kChunkRows * cl.code_stride + r * cl.scale_stride;
    zero_at[h] = kChunkRows * (cl.code_stride + cl.scale_stride) + r * cl.zero_stride;
  }
  const int slices = cl.weights / (4 * Pairs::kWeights);  // a chunk's
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int slot = 0, phase = 0, chunk = 0, tile = int(blockIdx.x), parity = 0;
  for (int i = 0; i < items; ++i) {
    sm90::barrier_wait(&full[slot], uint32_t(phase));
    const uint8_t* from = ring + size_t(slot) * cl.slot_bytes;
    for (int slice = warp; slice < slices; slice += kConsumers) {
      Raw raw[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {  // 16 bytes of codes a unit, either scheme
        const uint4 v = *reinterpret_cast<const uint4*>(from + code_at[h] + 64 * slice);
        raw[h].w[0] = v.x, raw[h].w[1] = v.y, raw[h].w[2] = v.z, raw[h].w[3] = v.w;
        if constexpr (kInt4) {
          const int group = ((4 * slice + t) * Pairs::kWeights) >> cl.group_shift;
          raw[h].scale = reinterpret_cast<const uint16_t*>(from + scale_at[h])[group];
          raw[h].zero = cl.zero_bytes ? from[zero_at[h] + group] : uint8_t(8);
        } else {
          raw[h].scale = 1.0f;  // the row's, applied to its sum
        }
      }
      if constexpr (kInt4) l.template step<2>(acc, raw, chunk * slices + slice);
      else l.step(acc, raw, chunk * slices + slice);
    }
    __syncwarp();
    if (lane == 0) sm90::barrier_arrive(&empty[slot]);
    if (++slot == stages) slot = 0, phase ^= 1;
    if (++chunk == chunks) {  // the tile's last chunk, in every consumer alike
      finish_tile<kConsumers, kTileRows, kTokens, kSwiglu>(partial[parity], l, acc, s, tile, g, warp,
                                                           TileGroup{0, kConsumers, int(threadIdx.x)}, m, c_dtype,
                                                           alpha, beta, [] { consumers_sync(); });
      chunk = 0;
      tile += int(gridDim.x);
      parity ^= 1;
    }
  }
#endif
}

// One wave of blocks (as many as fit an SM, times the SMs), each walking the same number of tiles.
template <typename Policy, bool kSwiglu, typename T>
void launch_typed(const PackedStack<typename Policy::Pairs>& stack, const ChunkLayout& layout, int tiles,
                  DType c_dtype, const T* a, int64_t k, int m, float alpha, float beta, int device,
                  cudaStream_t stream) {
  const int ring = stages_within<Policy>(layout, k, m);
  const size_t shared = shared_bytes<Policy>(layout, ring, k, m);
  auto kernel = gemv_bulk_kernel<Policy, kSwiglu, T>;
  static const bool sized = [&] {  // more than the 48 KB of shared memory a block gets unasked
    TS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kBulkSharedMax)));
    return true;
  }();
  (void)sized;
  const int resident = resident_blocks(reinterpret_cast<const void*>(kernel), kThreads, shared, device);
  const int per_block = (tiles + resident - 1) / resident;  // tiles each block walks
  const unsigned blocks = unsigned((tiles + per_block - 1) / per_block);
  launch_kernel(kernel, blocks, kThreads, shared, stream, stack, c_dtype, a, k, m, alpha, beta, tiles, layout, ring);
}

template <typename Policy>
void launch_policy(const PackedStack<typename Policy::Pairs>& stack, const QuantSpec& spec, int tiles, DType c_dtype,
                   const Tensor& a, int64_t m0, int64_t k, int m, float alpha, float beta) {
  const int device = a.device().index;
  const cudaStream_t stream = stream_of(a);
  const ChunkLayout layout = layout_of(spec, k);
  auto go = [&](const auto* rows) {
    if (stack.swiglu) launch_typed<Policy, true>(stack, layout, tiles, c_dtype, rows, k, m, alpha, beta, device, stream);
    else launch_typed<Policy, false>(stack, layout, tiles, c_dtype, rows, k, m, alpha, beta, device, stream);
  };
  if (a.dtype() == DType::BF16) go(a.data_as<__nv_bfloat16>() + m0 * k);
  else go(a.data_as<__half>() + m0 * k);
}

bool aligned(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data()) % 16 == 0; }

}  // namespace

bool gemv_bulk_fits(const PackedTensor& w, int64_t k, int m, int device) {
  const bool int4 = w.spec.scheme == QuantScheme::Int4;
  if ((!int4 && w.spec.scheme != QuantScheme::Int8) || m < 1 || m > (int4 ? Int4Group::kMaxRows : Int8Rows::kMaxRows))
    return false;
  int major = 0;
  TS_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  const ChunkLayout layout = layout_of(w.spec, k);
  for (const Tensor& part : w.parts)
    if (!aligned(part)) return false;
  if (major < 9 || k % layout.weights != 0) return false;
  const size_t shared = int4 ? shared_bytes<Int4Group>(layout, stages_within<Int4Group>(layout, k, m), k, m)
                             : shared_bytes<Int8Rows>(layout, stages_within<Int8Rows>(layout, k, m), k, m);
  return shared <= kBulkSharedMax;
}

void launch_gemv_bulk(const PackedStack<pp::Int4WidePairs>& stack, const QuantSpec& spec, int tiles, DType c_dtype,
                      const Tensor& a, int64_t m0, int64_t k, int m, float alpha, float beta) {
  launch_policy<Int4Group>(stack, spec, tiles, c_dtype, a, m0, k, m, alpha, beta);
}

void launch_gemv_bulk(const PackedStack<pp::Int8Pairs>& stack, const QuantSpec& spec, int tiles, DType c_dtype,
                      const Tensor& a, int64_t m0, int64_t k, int m, float alpha, float beta) {
  launch_policy<Int8Rows>(stack, spec, tiles, c_dtype, a, m0, k, m, alpha, beta);
}

}  // namespace tessera::cuda
