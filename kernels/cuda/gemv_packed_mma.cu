// The fused packed gemv on tensor cores: C = alpha A W^T + beta C (+ bias) for up to 8 rows of A
// (bf16 or f16) and a packed W [N, K], reading each packed weight once. A thread block owns 16
// rows of W, the M of an m16n8k16 mma.sync; the rows of A are its 8 columns (the N), so M = 1
// to 8 cost the same instructions. Its kWarps warps split K: lane (g, t) of a warp (g = lane / 4,
// t = lane % 4) takes unit u of rows g and g + 8 (16 weights each, kernels/packed_units.h; or 32,
// int4 read wide) and turns them into the A fragment's registers (kernels/packed_pairs.h: a few
// integer ops and two pair ops per two weights, no conversion per weight); the lanes t of a quad
// take consecutive units, and a lane's kUnroll units of a round follow each other 4 apart, so a
// warp reads 8 rows x 4 kUnroll units of contiguous bytes a round. The unit's activations of row g
// of A, paired as its weights are (pairs are not in column order: mma does not care as long as
// both operands agree), are the B fragment. Each lane first issues the loads of kUnroll units of
// its two rows, then converts and multiplies them. Products are exact and sums fp32 (the tensor
// cores'); each weight is rounded to A's dtype first, as the dequantize path's gemm sees it. The
// warps' sums meet in shared memory.
#include "kernels/cuda/gemv_packed_mma.h"

#include <algorithm>

#include <cooperative_groups.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/gemv_packed_group.cuh"
#include "kernels/cuda/gemv_packed_out.cuh"
#include "kernels/cuda/gemv_packed_stream.cuh"
#include "kernels/cuda/gemv_packed_unit.cuh"
#include "kernels/cuda/mma_ptx.cuh"
#include "kernels/kernel_variant.h"
#include "kernels/launch_overlap.h"
#include "kernels/packed_pairs.h"

namespace tessera::cuda {

namespace pu = packed_units;
namespace pp = packed_pairs;

namespace {

// Units in flight per lane and round: 64 bytes of codes for each scheme.
template <typename Pairs>
constexpr int unroll() {
  return sizeof(Pairs::Raw::w) == 8 ? 4 : 2;
}

// The block of cluster rank 0 adds up every block's warps' sums (read from their shared memory)
// and stores them; the others wait until it has read theirs (sm_90 clusters: grid_for gives
// other GPUs no split).
template <int kWarps, typename Pairs>
__device__ __forceinline__ void sum_cluster_out(const float (&partial)[kWarps][kTileRows * kTokens],
                                                const PackedStack<Pairs>& s, int tile, int m, DType c_dtype,
                                                float alpha, float beta) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  if (cluster.block_rank() == 0)
    store_tile<kTileRows, kTokens>(s, tile, threadIdx.x, m, c_dtype, alpha, beta, [&](int e) {
      float sum = 0.0f;
      for (unsigned r = 0; r < cluster.num_blocks(); ++r) {
        const float* theirs = cluster.map_shared_rank(&partial[0][0], r);
#pragma unroll
        for (int w = 0; w < kWarps; ++w) sum += theirs[w * kTileRows * kTokens + e];
      }
      return sum;
    });
  cluster.sync();
#endif
}

// kUnroll units of each of its two rows in flight a lane (consecutive ones: a warp's round reads
// kUnroll * 4 units of each row in one run); kLateX loads the activations only when a unit is
// converted (they come from L1), which frees their registers for more weight loads in flight.
template <int kWarps, int kUnroll, bool kLateX, bool kSwiglu, typename T, typename Pairs>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_mma_kernel(PackedStack<Pairs> s, DType c_dtype, const T* a, int64_t k, int m, float alpha, float beta) {
  constexpr int kRuns = Pairs::kWeights / 8;
  constexpr int kRound = 4 * kUnroll;  // units a warp covers per round
  let_next_kernel_start();
  __shared__ float partial[kWarps][kTileRows * kTokens];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const LaneRows<kSwiglu, Pairs> mine = lane_rows<kTileRows, kSwiglu>(s, blockIdx.x, g);
  const int units = int(k / Pairs::kWeights);
  const bool token = g < m;  // lanes past A's rows multiply zeros
  const T* x = a + int64_t(token ? g : 0) * k;
  auto load_x = [&](uint4 (&xs)[kRuns], int u) {
#pragma unroll
    for (int j = 0; j < kRuns; ++j)
      xs[j] = u < units && token ? *reinterpret_cast<const uint4*>(x + Pairs::run(u, j)) : make_uint4(0, 0, 0, 0);
  };
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  // With K split over a cluster of gridDim.y blocks, its blocks' warps take turns at the rounds.
  const int walker = int(blockIdx.y) * kWarps + warp, walkers = int(gridDim.y) * kWarps;
  for (int base = walker * kRound; base < units; base += walkers * kRound) {
    typename Pairs::Raw raw[kUnroll][2];
    uint4 early[kLateX ? 1 : kUnroll][kRuns];
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      const int u = base + 4 * i + t;
      if (u < units) {
        mine.load(0, u, raw[i][0]);
        mine.load(1, u, raw[i][1]);
      }
    }
    // The first round's weights are in flight before waiting for the kernel that wrote A.
    if (base == walker * kRound) wait_for_previous_kernel();
    if constexpr (!kLateX)
#pragma unroll
      for (int i = 0; i < kUnroll; ++i) load_x(early[i], base + 4 * i + t);
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      if (base + 4 * i >= units) break;  // the whole warp: mma.sync needs every lane
      const int u = base + 4 * i + t;
      if constexpr (kLateX) {
        uint4 late[kRuns];
        load_x(late, u);
        mma_unit_step<T, Pairs>(acc, raw[i], u < units, late);
      } else {
        mma_unit_step<T, Pairs>(acc, raw[i], u < units, early[i]);
      }
    }
  }
  wait_for_previous_kernel();  // at once, but a warp without rounds has not waited yet
  // acc: rows g and g + 8 of the tile, columns (rows of A) 2t and 2t + 1.
  float* p = partial[warp];
  p[g * kTokens + 2 * t] = acc[0];
  p[g * kTokens + 2 * t + 1] = acc[1];
  p[(g + 8) * kTokens + 2 * t] = acc[2];
  p[(g + 8) * kTokens + 2 * t + 1] = acc[3];
  __syncthreads();
  if (gridDim.y > 1) return sum_cluster_out(partial, s, blockIdx.x, m, c_dtype, alpha, beta);
  // blockDim >= 128 = kTileRows * kTokens
  store_block_out<kWarps, kTileRows, kTokens>(partial, s, blockIdx.x, threadIdx.x, m, c_dtype, alpha, beta);
}

// The group kernel (TESSERA_PACKED_GEMV=group): int4 at 1-2 rows of A, read wide, each group's
// scale applied to its fp32 sum (kernels/cuda/gemv_packed_group.cuh).
constexpr int kGroupUnroll = 4;
constexpr size_t kGroupSharedMax = 32 << 10;  // with partial[], under the 48 KB a block gets unasked

template <int kWarps, bool kSwiglu, typename T>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_group_kernel(PackedStack<pp::Int4WidePairs> s, DType c_dtype, const T* a, int64_t k, int m, float alpha,
                      float beta) {
  using Pairs = pp::Int4WidePairs;
  constexpr int kRound = 4 * kGroupUnroll;
  let_next_kernel_start();
  extern __shared__ float x_sums[];  // [m][units]: sum(x) over each group of 32 columns
  __shared__ float partial[kWarps][kTileRows * kTokens];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = lane % 4;
  const int units = int(k / Pairs::kWeights);
  const LaneRows<kSwiglu, Pairs> mine = lane_rows<kTileRows, kSwiglu>(s, blockIdx.x, lane / 4);
  Pairs::Raw raw[kGroupUnroll][2];
  auto fetch = [&](int base) {
#pragma unroll
    for (int i = 0; i < kGroupUnroll; ++i) {
      const int u = base + 4 * i + t;
      if (u < units) {
        mine.load(0, u, raw[i][0]);
        mine.load(1, u, raw[i][1]);
      } else {
        raw[i][0] = raw[i][1] = Pairs::Raw{{0, 0, 0, 0}, 0, 0};
      }
    }
  };
  const int walker = int(blockIdx.y) * kWarps + warp, walkers = int(gridDim.y) * kWarps;
  fetch(walker * kRound);  // the first round's weights load while the sums of x are made
  wait_for_previous_kernel();  // which wrote A
  group_x_sums(x_sums, a, k, m, units);
  const GroupLane<T> l(a, k, m, lane);
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int base = walker * kRound; base < units; base += walkers * kRound) {
    if (base != walker * kRound) fetch(base);
#pragma unroll
    for (int i = 0; i < kGroupUnroll; ++i) {
      if (base + 4 * i >= units) break;  // the whole warp: mma.sync needs every lane
      group_step(acc, raw[i], base / 4 + i, units, m, x_sums, l);
    }
  }
  group_partials(partial[warp], acc, l);
  __syncthreads();
  if (gridDim.y > 1) return sum_cluster_out(partial, s, blockIdx.x, m, c_dtype, alpha, beta);
  store_block_out<kWarps, kTileRows, kTokens>(partial, s, blockIdx.x, threadIdx.x, m, c_dtype, alpha, beta);
}

// `tiles` blocks of 16 rows of W, each a cluster of `split` blocks along K where split > 1, running
// kernel_for(warps) (an integral constant) with `shared` bytes of dynamic shared memory; allowed
// to overlap the kernel before inside an ops::LaunchOverlap scope (kernels/cuda/cuda_common.cuh:
// the kernels read only weights before they wait for it).
template <typename KernelFor, typename... Args>
void launch(KernelFor kernel_for, int warps, int split, int tiles, size_t shared, cudaStream_t stream, Args... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(unsigned(tiles), unsigned(split));
  config.blockDim = dim3(unsigned(warps * 32));
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute attrs[2]{};
  if (split > 1) {
    attrs[config.numAttrs].id = cudaLaunchAttributeClusterDimension;
    attrs[config.numAttrs++].val.clusterDim = {1, unsigned(split), 1};
  }
  if (ops::LaunchOverlap::active()) {
    attrs[config.numAttrs].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[config.numAttrs++].val.programmaticStreamSerializationAllowed = 1;
  }
  config.attrs = attrs;
  auto go = [&](auto kernel) { TS_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, args...)); };
  if (warps == 4) go(kernel_for(std::integral_constant<int, 4>{}));
  else if (warps == 8) go(kernel_for(std::integral_constant<int, 8>{}));
  else go(kernel_for(std::integral_constant<int, 16>{}));
}

// The largest of `warps` halved down to 4 that gives each warp a round of `rounds`.
int warps_within(int64_t rounds, int warps) {
  while (warps > 4 && warps > rounds) warps /= 2;
  return warps;
}

struct Grid {
  int warps, split;  // warps a block; blocks of a cluster along K
};

// Warps a block by size: enough blocks x warps for ~16 warps an SM (a narrow W splits K more), but
// no more than K has rounds for. K split over a cluster's blocks (sm_90): TESSERA_PACKED_GEMV_SPLIT
// = 1 (the default until measured), 2, 4 or 8, or auto (blocks enough for two an SM, at most 8 a
// cluster, with 4 rounds or more a block). TESSERA_PACKED_GEMV_WARPS = 4, 8 or 16 fixes the warps
// (all read at each call, for comparing).
Grid grid_for(int64_t blocks, int64_t units, int round, int device) {
  const int64_t sms = sm_count(device);
  const int64_t rounds = (units + round - 1) / round;
  int split = env_choice("TESSERA_PACKED_GEMV_SPLIT", {1, 2, 4, 8}, true, 1);
  const int warps = env_choice("TESSERA_PACKED_GEMV_WARPS", {4, 8, 16}, false, 0);
  int major = 0;
  TS_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major < 9) split = 1;  // no clusters
  if (split == 0) {
    split = 1;
    while (split < 8 && blocks * split < 2 * sms) split *= 2;
    while (split > 1 && rounds / split < 4) split /= 2;
  }
  if (warps) return {warps, split};
  const int by_n = blocks * split >= 4 * sms ? 4 : blocks * split >= 2 * sms ? 8 : 16;
  return {warps_within(rounds / split, by_n), split};
}

// The wide reads need 16-byte aligned int4 codes (a view's rows may start anywhere).
bool wide_fits(const PackedProducts& p) {
  for (const PackedTensor* w : p.weights)
    if (w->spec.scheme != QuantScheme::Int4 || reinterpret_cast<uintptr_t>(w->parts[0].data()) % 16 != 0) return false;
  return true;
}

}  // namespace

bool fused_gemv_mma_fits(const Tensor& a, const PackedTensor& w) {
  return (a.dtype() == DType::BF16 || a.dtype() == DType::F16) && w.spec.scheme != QuantScheme::NF4;
}

void fused_gemv_mma(const PackedProducts& p, const Tensor& a, const GemmShape& s, float alpha, float beta,
                    MmaInt4Reads reads) {
  cudaStream_t stream = stream_of(a);
  const DType c_dtype = p.outs[0].dtype();
  const int device = a.device().index;
  const bool wide = reads != MmaInt4Reads::Units && wide_fits(p);
  const bool group = reads == MmaInt4Reads::Group && wide && group_shared_bytes(s.k, kGroupTokens) <= kGroupSharedMax;
  const bool streamed = reads == MmaInt4Reads::Stream && (wide || p.weights[0]->spec.scheme == QuantScheme::Int8);
  with_stack(p, nullptr, [&](const auto& units) {
    using Reader = std::decay_t<decltype(units.w[0])>;
    if constexpr (pp::has_pairs<Reader>) {
      auto run = [&](auto* type) {
        using T = std::remove_pointer_t<decltype(type)>;
        for (int64_t m0 = 0; m0 < s.m; m0 += kTokens) {
          const int m = int(std::min<int64_t>(kTokens, s.m - m0));
          const T* rows = a.data_as<T>() + m0 * s.k;
          const auto at_rows = from_row(units, m0, dtype_size(c_dtype));
          auto go = [&](auto unroll, auto late_x, auto convert) {
            constexpr int kUnroll = decltype(unroll)::value;
            constexpr bool kLateX = decltype(late_x)::value;
            using Pairs = decltype(convert(units.w[0]));
            PackedStack<Pairs> stack = restack<Pairs>(at_rows, convert);
            const int tiles = stack_tiles(stack, kTileRows);
            const Grid grid = grid_for(tiles, s.k / Pairs::kWeights, 4 * kUnroll, device);
            if (p.swiglu)
              launch([](auto w) { return gemv_mma_kernel<decltype(w)::value, kUnroll, kLateX, true, T, Pairs>; },
                     grid.warps, grid.split, tiles, 0, stream, stack, c_dtype, rows, s.k, m, alpha, beta);
            else
              launch([](auto w) { return gemv_mma_kernel<decltype(w)::value, kUnroll, kLateX, false, T, Pairs>; },
                     grid.warps, grid.split, tiles, 0, stream, stack, c_dtype, rows, s.k, m, alpha, beta);
          };
          if constexpr (std::is_same_v<Reader, pu::Int4Reader>) {
            const auto wide_pairs = [](const pu::Int4Reader& r) { return pp::Int4WidePairs{r}; };
            if (streamed && gemv_stream_fits(QuantScheme::Int4, s.k, m)) {
              PackedStack<pp::Int4WidePairs> stack = restack<pp::Int4WidePairs>(at_rows, wide_pairs);
              const int tiles = stack_tiles(stack, kTileRows);
              launch_gemv_stream(stack, tiles, c_dtype, a, m0, s.k, m, alpha, beta);
              continue;
            }
            if (group && m <= kGroupTokens) {
              PackedStack<pp::Int4WidePairs> stack = restack<pp::Int4WidePairs>(at_rows, wide_pairs);
              const int tiles = stack_tiles(stack, kTileRows);
              const Grid grid = grid_for(tiles, s.k / pp::Int4WidePairs::kWeights, 4 * kGroupUnroll, device);
              const size_t shared = group_shared_bytes(s.k, m);
              if (p.swiglu)
                launch([](auto w) { return gemv_group_kernel<decltype(w)::value, true, T>; }, grid.warps, grid.split,
                       tiles, shared, stream, stack, c_dtype, rows, s.k, m, alpha, beta);
              else
                launch([](auto w) { return gemv_group_kernel<decltype(w)::value, false, T>; }, grid.warps, grid.split,
                       tiles, shared, stream, stack, c_dtype, rows, s.k, m, alpha, beta);
              continue;
            }
            if (wide) {
              if (reads == MmaInt4Reads::Wide2) go(std::integral_constant<int, 2>{}, std::true_type{}, wide_pairs);
              else go(std::integral_constant<int, 4>{}, std::true_type{}, wide_pairs);
              continue;
            }
          }
          const auto unit_pairs = [](const Reader& r) { return pp::pairs_of(r); };
          if constexpr (std::is_same_v<Reader, pu::Int8Reader>) {
            if (streamed && gemv_stream_fits(QuantScheme::Int8, s.k, m)) {
              PackedStack<pp::Int8Pairs> stack = restack<pp::Int8Pairs>(at_rows, unit_pairs);
              const int tiles = stack_tiles(stack, kTileRows);
              launch_gemv_stream(stack, tiles, c_dtype, a, m0, s.k, m, alpha, beta);
              continue;
            }
          }
          go(std::integral_constant<int, unroll<decltype(pp::pairs_of(units.w[0]))>()>{}, std::false_type{}, unit_pairs);
        }
      };
      if (a.dtype() == DType::BF16) run(static_cast<__nv_bfloat16*>(nullptr));
      else run(static_cast<__half*>(nullptr));
    }
  });
  check_launch();
}

}  // namespace tessera::cuda
