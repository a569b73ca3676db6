// The streaming packed gemv (TESSERA_PACKED_GEMV=stream): the tensor-core gemvs' arithmetic fed by
// a deep pipeline, for int4 at 1-2 rows of A (the group kernel's arithmetic,
// kernels/cuda/gemv_packed_group.cuh) and int8 at 1-8 (gemv_packed_unit.cuh's on the exact codes,
// each row's scale applied to its sum). The other kernels give each 16-row tile its own
// short-lived block whose warps make one or two rounds of loads, each waited for before its
// arithmetic, and their blocks come in waves with a part-empty last one (session 9 call A: 8B int4
// gate 1.55 TB/s, down 1.25, where the bf16 gemv streams 3.8). Here a grid of at most two blocks an
// SM walks all the tiles, each block taking every gridDim-th tile, its warps splitting each tile's
// K by slices (4 consecutive units, lane t of a quad taking the t-th); every lane keeps
// kStages - 1 slices of its two rows in flight as asynchronous copies into shared memory
// (cp.async), across tile boundaries, so the loads never stop for the arithmetic or the stores.
// Each lane reads back only what it copied itself: no barrier but the one a tile's sums need. The
// first kStages - 1 copies go out before the kernel waits for the one that wrote A.
#include "kernels/cuda/gemv_packed_stream.cuh"

#include <algorithm>

#include "core/error.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemv_packed_group.cuh"
#include "kernels/cuda/gemv_packed_unit.cuh"
#include "kernels/cuda/mma_ptx.cuh"

namespace tessera::cuda {

namespace pp = packed_pairs;
namespace pu = packed_units;

namespace {

constexpr int kWarps = 8, kStages = 6;

__device__ __forceinline__ const void* word_of(const void* p) {
  return reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t(3));
}
__device__ __forceinline__ unsigned shift_in_word(const void* p) { return 8u * (reinterpret_cast<uintptr_t>(p) & 3u); }

// int4 (Int4WidePairs units of 32 weights): a stage holds each row's 16 bytes of codes and the
// aligned words holding the unit's scale and zero (symmetric: no zero, 8); the group arithmetic,
// with each group's sum of x in shared memory.
struct Int4Group {
  using Pairs = pp::Int4WidePairs;
  static constexpr int kMaxRows = kGroupTokens;
  struct Stage {
    uint4 codes[2];
    uint32_t scale_word[2], zero_word[2];
  };
  struct At {  // where unit u of a row keeps its parts
    const uint8_t* codes;
    const uint16_t* scale;
    const uint8_t* zero;
  };
  __device__ static At at(const Pairs& w, int64_t row, int u) {
    const pu::Int4Reader& r = w.r;
    const int64_t group = row * r.groups + ((Pairs::kWeights * u) >> r.group_shift);
    return {r.codes + row * (r.cols / 2) + Pairs::kWeights / 2 * u, r.scales + group, r.zeros ? r.zeros + group : nullptr};
  }
  // The copies of unit u of the lane's rows; returns where in their words the scales and zeros sit
  // (a byte each: row g's scale, row g + 8's, then the zeros').
  template <typename Rows>
  __device__ static uint32_t issue(Stage& st, const Rows& rows, int u, bool valid) {
    uint32_t shifts = 0;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const At p = at(rows.reader(h), rows.row[h], u);
      ptx::cp_async_16(&st.codes[h], p.codes, valid);
      ptx::cp_async_4(&st.scale_word[h], word_of(p.scale), valid);
      shifts |= shift_in_word(p.scale) << (8 * h);
      if (p.zero) {
        ptx::cp_async_4(&st.zero_word[h], word_of(p.zero), valid);
        shifts |= shift_in_word(p.zero) << (8 * h + 16);
      }
    }
    return shifts;
  }
  // A unit past the last has a zero scale (zero-filled), so whatever its zero it adds nothing.
  __device__ static void take(const Stage& st, uint32_t shifts, bool symmetric, Pairs::Raw (&raw)[2]) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint4 c = st.codes[h];
      raw[h].w[0] = c.x, raw[h].w[1] = c.y, raw[h].w[2] = c.z, raw[h].w[3] = c.w;
      raw[h].scale = uint16_t(st.scale_word[h] >> ((shifts >> (8 * h)) & 31u));
      raw[h].zero = symmetric ? uint8_t(8) : uint8_t(st.zero_word[h] >> ((shifts >> (8 * h + 16)) & 31u));
    }
  }
  template <typename Rows>
  __device__ static bool symmetric(const Rows& rows) { return rows.reader(0).r.zeros == nullptr; }
  static size_t shared_bytes(int64_t k, int m) { return group_shared_bytes(k, m); }

  template <typename T>
  struct Lane {
    GroupLane<T> l;
    const float* x_sums;
    int units, m;
    // Makes the sums of x (every thread of the block, after the wait for A).
    __device__ Lane(const T* a, int64_t k, int m_, int lane, void* shared, int units_)
        : l(a, k, m_, lane), x_sums(static_cast<float*>(shared)), units(units_), m(m_) {
      group_x_sums(static_cast<float*>(shared), a, k, m, units);
    }
    __device__ void step(float (&acc)[4], const Pairs::Raw (&raw)[2], int slice) const {
      group_step(acc, raw, slice, units, m, x_sums, l);
    }
    template <typename Rows>
    __device__ void partials(float* partial, const float (&acc)[4], const Rows&) const {
      group_partials(partial, acc, l);
    }
  };
};

// int8 (Int8Pairs units of 16 weights): a stage holds each row's 16 bytes of codes; they are
// multiplied as they are (exact in A's 16-bit type) and each row's scale applied to its sum.
struct Int8Rows {
  using Pairs = pp::Int8Pairs;
  static constexpr int kMaxRows = kTokens;
  struct Stage {
    uint4 codes[2];
  };
  template <typename Rows>
  __device__ static uint32_t issue(Stage& st, const Rows& rows, int u, bool valid) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const pu::Int8Reader& r = rows.reader(h).r;
      ptx::cp_async_16(&st.codes[h], r.codes + rows.row[h] * r.cols + Pairs::kWeights * u, valid);
    }
    return 0;
  }
  __device__ static void take(const Stage& st, uint32_t, bool, Pairs::Raw (&raw)[2]) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint4 c = st.codes[h];  // zeros past the last unit (zero-filled)
      raw[h].w[0] = c.x, raw[h].w[1] = c.y, raw[h].w[2] = c.z, raw[h].w[3] = c.w;
      raw[h].scale = 1.0f;
    }
  }
  template <typename Rows>
  __device__ static bool symmetric(const Rows&) { return true; }
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

// Each lane's slots, then their tags (what issue() says of a slot's copies).
template <typename Policy>
constexpr size_t stage_bytes() {
  return size_t(kWarps) * kStages * 32 * sizeof(typename Policy::Stage);
}
template <typename Policy>
constexpr size_t slot_bytes() {
  return stage_bytes<Policy>() + size_t(kWarps) * kStages * 32 * sizeof(uint32_t);
}
constexpr size_t kPolicySharedMax = 32 << 10;  // the int4 sums of x at most (the group kernel's bound)

template <typename Policy>
constexpr size_t shared_max() {
  return slot_bytes<Policy>() + kPolicySharedMax;
}

// Compiler barrier: shared memory read before it is not read after (the async copies' asm
// statements say nothing of memory).
__device__ __forceinline__ void memory_fence() { asm volatile("" ::: "memory"); }

template <typename Policy, bool kSwiglu, typename T>
__global__ void __launch_bounds__(kWarps * 32, 2)
    gemv_stream_kernel(PackedStack<typename Policy::Pairs> s, DType c_dtype, const T* a, int64_t k, int m, float alpha,
                       float beta, int tiles) {
  using Pairs = typename Policy::Pairs;
  using Stage = typename Policy::Stage;
  let_next_kernel_start();
  extern __shared__ __align__(16) uint8_t shared[];
  __shared__ float partial[2][kWarps][kTileRows * kTokens];  // by tile parity: one barrier a tile
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  Stage* stages = reinterpret_cast<Stage*>(shared) + warp * kStages * 32 + lane;  // slot i: stages[32 i]
  uint32_t* tags = reinterpret_cast<uint32_t*>(shared + stage_bytes<Policy>()) + warp * kStages * 32 + lane;
  const int units = int(k / Pairs::kWeights), slices = (units + 3) / 4;
  const int per_tile = (slices + kWarps - 1) / kWarps;  // steps of each warp a tile
  const int steps = (tiles - int(blockIdx.x) + int(gridDim.x) - 1) / int(gridDim.x) * per_tile;
  // Step q: tile blockIdx.x + (q / per_tile) gridDim.x, slice warp + kWarps (q % per_tile).
  auto tile_at = [&](int q) { return int(blockIdx.x) + q / per_tile * int(gridDim.x); };
  auto slice_at = [&](int q) { return warp + kWarps * (q % per_tile); };
  // The rows of the tile being copied, found again only when it changes.
  int rows_tile = int(blockIdx.x);
  LaneRows<kSwiglu, Pairs> rows = lane_rows<kTileRows, kSwiglu>(s, rows_tile, g);
  const bool symmetric = Policy::symmetric(rows);
  int slot_in = 0, slot_out = 0;
  auto issue = [&](int q) {  // step q's copies (zeros past the last step or unit), one commit group
    const int u = 4 * slice_at(q) + t;
    const bool valid = q < steps && u < units;
    if (valid && tile_at(q) != rows_tile) {
      rows_tile = tile_at(q);
      rows = lane_rows<kTileRows, kSwiglu>(s, rows_tile, g);
    }
    tags[32 * slot_in] = Policy::issue(stages[32 * slot_in], rows, valid ? u : 0, valid);
    ptx::cp_async_commit();
    slot_in = slot_in + 1 == kStages ? 0 : slot_in + 1;
  };

  for (int q = 0; q < kStages - 1; ++q) issue(q);
  wait_for_previous_kernel();  // which wrote A
  const typename Policy::template Lane<T> l(a, k, m, lane, shared + slot_bytes<Policy>(), units);
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int q = 0; q < steps; ++q) {
    ptx::cp_async_wait<kStages - 2>();  // step q's group has landed
    memory_fence();
    typename Pairs::Raw raw[2];
    Policy::take(stages[32 * slot_out], tags[32 * slot_out], symmetric, raw);
    slot_out = slot_out + 1 == kStages ? 0 : slot_out + 1;
    memory_fence();
    issue(q + kStages - 1);  // into the slot step q - 1 read
    l.step(acc, raw, slice_at(q));
    if (q % per_tile == per_tile - 1) {  // the tile's last step, in every warp alike
      float (&p)[kWarps][kTileRows * kTokens] = partial[(q / per_tile) % 2];
      l.partials(p[warp], acc, lane_rows<kTileRows, kSwiglu>(s, tile_at(q), g));
      __syncthreads();
      store_block_out<kWarps, kTileRows, kTokens>(p, s, tile_at(q), threadIdx.x, m, c_dtype, alpha, beta);
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[i] = 0.0f;
    }
  }
  ptx::cp_async_wait<0>();  // nothing left in flight into shared memory at exit
}

template <typename Policy, bool kSwiglu, typename T>
void launch_typed(const PackedStack<typename Policy::Pairs>& stack, int tiles, DType c_dtype, const T* a, int64_t k,
                  int m, float alpha, float beta, int device, cudaStream_t stream) {
  const auto kernel = gemv_stream_kernel<Policy, kSwiglu, T>;
  static const bool sized = [&] {  // more than the 48 KB of shared memory a block gets unasked
    TS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared_max<Policy>())));
    return true;
  }();
  (void)sized;
  const size_t shared = slot_bytes<Policy>() + Policy::shared_bytes(k, m);
  int per_sm = 0;
  TS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kWarps * 32, shared));
  const int resident = std::max(1, per_sm) * sm_count(device);
  const int per_block = (tiles + resident - 1) / resident;  // tiles each block walks
  const unsigned blocks = unsigned((tiles + per_block - 1) / per_block);
  launch_kernel(kernel, blocks, kWarps * 32, shared, stream, stack, c_dtype, a, k, m, alpha, beta, tiles);
}

template <typename Policy>
void launch_policy(const PackedStack<typename Policy::Pairs>& stack, int tiles, DType c_dtype, const Tensor& a,
                   int64_t m0, int64_t k, int m, float alpha, float beta) {
  const int device = a.device().index;
  const cudaStream_t stream = stream_of(a);
  auto go = [&](const auto* rows) {
    if (stack.swiglu) launch_typed<Policy, true>(stack, tiles, c_dtype, rows, k, m, alpha, beta, device, stream);
    else launch_typed<Policy, false>(stack, tiles, c_dtype, rows, k, m, alpha, beta, device, stream);
  };
  if (a.dtype() == DType::BF16) go(a.data_as<__nv_bfloat16>() + m0 * k);
  else go(a.data_as<__half>() + m0 * k);
}

template <typename Policy>
bool policy_fits(int64_t k, int m) {
  return m <= Policy::kMaxRows && Policy::shared_bytes(k, m) <= kPolicySharedMax;
}

}  // namespace

bool gemv_stream_fits(QuantScheme scheme, int64_t k, int m) {
  return scheme == QuantScheme::Int4 ? policy_fits<Int4Group>(k, m) : scheme == QuantScheme::Int8 && policy_fits<Int8Rows>(k, m);
}

void launch_gemv_stream(const PackedStack<pp::Int4WidePairs>& stack, int tiles, DType c_dtype, const Tensor& a,
                        int64_t m0, int64_t k, int m, float alpha, float beta) {
  launch_policy<Int4Group>(stack, tiles, c_dtype, a, m0, k, m, alpha, beta);
}

void launch_gemv_stream(const PackedStack<pp::Int8Pairs>& stack, int tiles, DType c_dtype, const Tensor& a, int64_t m0,
                        int64_t k, int m, float alpha, float beta) {
  launch_policy<Int8Rows>(stack, tiles, c_dtype, a, m0, k, m, alpha, beta);
}

}  // namespace tessera::cuda
