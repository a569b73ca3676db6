// The streaming packed gemv (TESSERA_PACKED_GEMV=stream): the tensor-core gemvs' arithmetic fed by
// a deep pipeline, for int4 at 1-2 rows of A (the group kernel's arithmetic,
// kernels/cuda/gemv_packed_group.cuh) and int8 at 1-8 (gemv_packed_unit.cuh's on the exact codes,
// each row's scale applied to its sum). The other kernels give each 16-row tile its own
// short-lived block whose warps make one or two rounds of loads, each waited for before its
// arithmetic, and their blocks come in waves with a part-empty last one (session 9 call A: 8B int4
// gate 1.55 TB/s, down 1.25, where the bf16 gemv streams 3.8; the group kernel's 96 registers
// leave its 16-warp blocks of the down projection one an SM, in two waves). Here one wave of
// blocks (as many as fit: two or more an SM) walks all the tiles, each block taking every
// gridDim-th tile, its warps splitting each tile's K by slices (4 consecutive units, lane t of a
// quad taking the t-th). Every lane keeps a ring of kDepth slices of its two rows in registers:
// a slot's next loads go out as soon as its slice is multiplied, across tile boundaries, so
// kDepth - 1 slices are always in flight, even through the barrier a tile's sums need. (Session 9
// fed the same loop by cp.async copies into shared memory, 5 slices deep: 8B int4 decode 234 tok/s
// against the group kernel's 282.) The first kDepth loads go out before the kernel waits for the
// one that wrote A. (Session 12 call B: L2 prefetches of each block's next tiles, cp.async.bulk
// .prefetch, lost in every decode row, 8B int4 283 against 357 tok/s; dropped.)
#include "kernels/cuda/gemv_packed_stream.cuh"

#include <cstdlib>
#include <type_traits>

#include "core/error.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemv_packed_policies.cuh"
#include "kernels/cuda/persistent_grid.h"
#include "kernels/kernel_variant.h"

namespace tessera::cuda {

namespace pp = packed_pairs;
namespace pu = packed_units;

namespace {

constexpr int kWarps = 8;

// The int4 staged A at most (8B down_proj at 2 rows: 61 KB): two blocks an SM still fit.
constexpr size_t kPolicySharedMax = 96 << 10;

// The block's warps form groups of tile_warps (1, 2, 4 or 8) that each multiply a tile by
// themselves: group q of block b is group b * groups + q of the grid's group_count, which takes
// tiles b * groups + q, then group_count on, ...; of each, the group's warp w takes slices w, w +
// tile_warps, ... (per_tile of them, the last past K where tile_warps does not divide the slices).
// Fewer warps a tile give each more steps between tile ends (a group barrier, the store, the next
// rows found): at K 4096 eight warps make only 4 steps a tile. A lane's step is one slice of one
// tile; it walks them with counters (no division a step). A unit past K loads the last one (its
// activations are zeros, so it adds nothing) and a step past the group's last tile loads that tile
// again (never multiplied): the loads need no branches.
// kChains: int4's own_group_step's mma chains (1 or 2; int8 ignores it). kTileWarps: kWarps (the
// whole block a tile, known when compiled: session 12 call B measured the run-time groups 8% slower
// at 8 warps) or 0 (tile_warps groups, as chosen at run time). (Session 13 call E: asking L2 for
// each lane's steps 4-16 ahead, prefetch.global.L2, and the kernel compiled for 3 blocks an SM at
// 80 registers both lost in every decode row, 8B int4 275-329 tok/s against 383; dropped.)
template <typename Policy, int kDepth, bool kSwiglu, typename T, int kChains, int kTileWarps>
__global__ void __launch_bounds__(kWarps * 32, 2)
    gemv_stream_kernel(PackedStack<typename Policy::Pairs> s, DType c_dtype, const T* a, int64_t k, int m, float alpha,
                       float beta, int tiles, int tile_warps_chosen) {
  static_assert(kTileWarps == kWarps || kTileWarps == 0);
  const int tile_warps = kTileWarps ? kTileWarps : tile_warps_chosen;
  using Pairs = typename Policy::Pairs;
  using Raw = typename Pairs::Raw;
  let_next_kernel_start();
  extern __shared__ __align__(16) uint8_t shared[];  // the policy's: the int4 sums of x
  __shared__ float partial[2][kWarps][kTileRows * kTokens];  // by tile parity: one barrier a tile
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int groups = kWarps / tile_warps, group = warp / tile_warps, group_warp = warp % tile_warps;
  const int first_tile = int(blockIdx.x) * groups + group, tile_stride = int(gridDim.x) * groups;
  const TileGroup tile_group{group * tile_warps, tile_warps, group_warp * 32 + lane};
  const int units = int(k / Pairs::kWeights), slices = (units + 3) / 4;
  const int per_tile = (slices + tile_warps - 1) / tile_warps;  // steps of each warp a tile
  const int steps = (tiles - first_tile + tile_stride - 1) / tile_stride * per_tile;  // 0 past the last tile
  // A step of the lane: its tile, its index among the warp's steps of that tile, and its rows there.
  struct Step {
    int tile, j;
    typename Policy::Rows rows;
  };
  auto unit_of = [&](const Step& st) { return min(4 * (group_warp + tile_warps * st.j) + t, units - 1); };
  auto advance = [&](Step& st) {
    if (++st.j == per_tile) {
      st.j = 0;
      st.tile += tile_stride;
      if (st.tile < tiles) st.rows = Policy::rows_of(lane_rows<kTileRows, kSwiglu>(s, st.tile, g));
    }
  };
  Step next{first_tile, 0, Policy::rows_of(lane_rows<kTileRows, kSwiglu>(s, first_tile, g))};  // the next to load
  auto fetch = [&](Raw (&raw)[2]) {
    Policy::load(raw, next.rows, unit_of(next));
    advance(next);
  };
  Raw ring[kDepth][2];
#pragma unroll
  for (int d = 0; d < kDepth; ++d) fetch(ring[d]);
  wait_for_previous_kernel();  // which wrote A
  const typename Policy::template Lane<T> l(a, k, m, lane, shared, units);
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int tile = first_tile, j = 0, parity = 0;  // the step being multiplied
  // The group's barrier (named barriers 1-8; 0 is __syncthreads', the whole block's).
  auto group_sync = [&] {
    if constexpr (kTileWarps == kWarps) __syncthreads();
    else asm volatile("bar.sync %0, %1;\n" ::"r"(1 + group), "r"(32 * tile_warps) : "memory");
  };
  for (int q0 = 0; q0 < steps; q0 += kDepth) {
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      if (q0 + d >= steps) break;  // the whole group alike
      const int slice = group_warp + tile_warps * j;
      if constexpr (kInt4Policy<Policy>) l.template step<kChains>(acc, ring[d], slice);
      else l.step(acc, ring[d], slice);
      fetch(ring[d]);  // the slot's next step: kDepth - 1 others are in flight meanwhile
      if (++j == per_tile) {  // the tile's last step, in every warp of the group alike
        finish_tile<kWarps, kTileRows, kTokens, kSwiglu>(partial[parity], l, acc, s, tile, g, warp, tile_group, m,
                                                         c_dtype, alpha, beta, group_sync);
        j = 0;
        tile += tile_stride;
        parity ^= 1;
      }
    }
  }
}

int stream_depth() { return env_choice("TESSERA_PACKED_STREAM_DEPTH", {2, 4, 6}, false, 2); }

// Whether TESSERA_PACKED_STREAM_TILE_WARPS asks for anything (empty: unset).
bool tile_warps_set() {
  const char* v = std::getenv("TESSERA_PACKED_STREAM_TILE_WARPS");
  return v && *v;
}

// TESSERA_PACKED_STREAM_TILE_WARPS = 1, 2, 4, 8 (the default: a tile a block, the kernel compiled
// for it) or auto: the warps a tile. Auto takes the fewest rounds of tiles times each round's
// steps, a tile end counted as kTileEndSteps steps (a guess; session 12 call B: auto 1B int4
// +6.8%, 8B -1.5%, both on run-time groups).
constexpr double kTileEndSteps = 1.5;

// The warps a tile at `resident` blocks an SM: TESSERA_PACKED_STREAM_TILE_WARPS, or for auto the
// fewest rounds of tiles times (steps a tile + kTileEndSteps).
int tile_warps_for(int tiles, int slices, int resident) {
  const int choice = env_choice("TESSERA_PACKED_STREAM_TILE_WARPS", {1, 2, 4, 8}, true, kWarps);
  if (choice != 0) return choice;
  int best = kWarps;
  double best_cost = 1e30;
  for (int w = kWarps; w >= 1; w /= 2) {
    const int64_t group_count = int64_t(resident) * (kWarps / w);
    const double rounds = double((tiles + group_count - 1) / group_count);
    const double cost = rounds * ((slices + w - 1) / w + kTileEndSteps);
    if (cost < best_cost) best = w, best_cost = cost;
  }
  return best;
}

// One wave of blocks (as many as fit an SM, times the SMs), each walking the same number of tiles.
// Lets `kernel` take up to kPolicySharedMax of dynamic shared memory, more than the 48 KB a block
// gets unasked (once a kernel: every depth's kernel has the same type, so a static in the
// launching lambda would size only the first one launched).
template <auto kKernel>
void allow_policy_shared() {
  static const bool sized = [] {
    TS_CUDA_CHECK(cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kPolicySharedMax)));
    return true;
  }();
  (void)sized;
}

// TESSERA_PACKED_STREAM_DEPTH = 2 (the default: session 10 call B, int4 fused q/k/v and gate/up
// faster at 2 than at 4 in 3 of 4 shapes), 4 or 6 slices in each lane's ring; for int4,
// TESSERA_PACKED_STREAM_CHAINS = 1 (the default until measured) or 2 mma chains a unit. The
// symmetric int4 policy (Int4GroupOf<true>) is compiled for the default depth and whole-block
// tiles only (launch_gemv_stream takes it only there).
template <typename Policy, bool kSwiglu, typename T>
void launch_typed(const PackedStack<typename Policy::Pairs>& stack, int tiles, DType c_dtype, const T* a, int64_t k,
                  int m, float alpha, float beta, int device, cudaStream_t stream) {
  const size_t shared = Policy::shared_bytes(k, m);
  const int depth = stream_depth();
  const int chains = kInt4Policy<Policy> ? env_choice("TESSERA_PACKED_STREAM_CHAINS", {1, 2}, false, 1) : 1;
  constexpr bool kDefaultRingOnly = std::is_same_v<Policy, Int4GroupOf<true>>;
  const int slices = int((k / Policy::Pairs::kWeights + 3) / 4);
  // One kernel on one wave of blocks, tile_warps warps a tile.
  auto launch_with = [&](auto kernel_constant, int tile_warps) {
    constexpr auto kernel = decltype(kernel_constant)::value;
    allow_policy_shared<kernel>();
    const int resident = resident_blocks(reinterpret_cast<const void*>(kernel), kWarps * 32, shared, device);
    const int groups = kWarps / tile_warps;
    const int per_group = (tiles + resident * groups - 1) / (resident * groups);  // tiles each group walks
    const int group_count = (tiles + per_group - 1) / per_group;
    const unsigned blocks = unsigned((group_count + groups - 1) / groups);
    launch_kernel(kernel, blocks, kWarps * 32, shared, stream, stack, c_dtype, a, k, m, alpha, beta, tiles, tile_warps);
  };
  auto with_chains = [&](auto chains_constant) {
    constexpr int kChains = decltype(chains_constant)::value;
    // The kernel of one depth: run-time groups of warps where TESSERA_PACKED_STREAM_TILE_WARPS
    // takes fewer than the block a tile, else the whole block's.
    auto kernels_of = [&](auto depth_constant) {
      constexpr int kDepth = decltype(depth_constant)::value;
      using Kernel = decltype(&gemv_stream_kernel<Policy, kDepth, kSwiglu, T, kChains, kWarps>);
      if constexpr (!kDefaultRingOnly)
        if (tile_warps_set()) {  // by the grouped kernel's own occupancy
          constexpr Kernel grouped = &gemv_stream_kernel<Policy, kDepth, kSwiglu, T, kChains, 0>;
          allow_policy_shared<grouped>();
          const int w = tile_warps_for(tiles, slices, resident_blocks(reinterpret_cast<const void*>(grouped),
                                                                      kWarps * 32, shared, device));
          if (w != kWarps) return launch_with(std::integral_constant<Kernel, grouped>{}, w);
        }
      launch_with(std::integral_constant<Kernel, &gemv_stream_kernel<Policy, kDepth, kSwiglu, T, kChains, kWarps>>{},
                  kWarps);
    };
    if constexpr (kDefaultRingOnly) {
      return kernels_of(std::integral_constant<int, 2>{});
    } else {
      switch (depth) {
        case 4: return kernels_of(std::integral_constant<int, 4>{});
        case 6: return kernels_of(std::integral_constant<int, 6>{});
        default: return kernels_of(std::integral_constant<int, 2>{});
      }
    }
  };
  if constexpr (kInt4Policy<Policy>)
    if (chains == 2) return with_chains(std::integral_constant<int, 2>{});
  with_chains(std::integral_constant<int, 1>{});
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

// TESSERA_PACKED_STREAM_SYMMETRIC = 1 (the default: session 13 call E, decode 8B int4 383.1 ->
// 395.7 tok/s, 1B 1,392 -> 1,434) or 0: stacks of symmetric int4 weights through Int4GroupOf<true>
// (at the default depth and whole-block tiles; elsewhere Int4Group).
void launch_gemv_stream(const PackedStack<pp::Int4WidePairs>& stack, int tiles, DType c_dtype, const Tensor& a,
                        int64_t m0, int64_t k, int m, float alpha, float beta) {
  bool symmetric = env_choice("TESSERA_PACKED_STREAM_SYMMETRIC", {0, 1}, false, 1) == 1 && stream_depth() == 2 &&
                   !tile_warps_set();
  for (int i = 0; i < stack.count; ++i) symmetric = symmetric && !stack.w[i].r.zeros;
  if (symmetric) return launch_policy<Int4GroupOf<true>>(stack, tiles, c_dtype, a, m0, k, m, alpha, beta);
  launch_policy<Int4Group>(stack, tiles, c_dtype, a, m0, k, m, alpha, beta);
}

void launch_gemv_stream(const PackedStack<pp::Int8Pairs>& stack, int tiles, DType c_dtype, const Tensor& a, int64_t m0,
                        int64_t k, int m, float alpha, float beta) {
  launch_policy<Int8Rows>(stack, tiles, c_dtype, a, m0, k, m, alpha, beta);
}

}  // namespace tessera::cuda
