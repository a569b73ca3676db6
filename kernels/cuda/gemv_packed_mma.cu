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
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

#include <cooperative_groups.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/gemv_packed_out.cuh"
#include "kernels/cuda/mma_ptx.cuh"
#include "kernels/packed_pairs.h"

namespace tessera::cuda {

namespace pu = packed_units;
namespace pp = packed_pairs;

namespace {

constexpr int kTileRows = 16, kTokens = 8;

// Units in flight per lane and round: 64 bytes of codes for each scheme.
template <typename Pairs>
constexpr int unroll() {
  return sizeof(Pairs::Raw::w) == 8 ? 4 : 2;
}

// The block of cluster rank 0 adds up every block's warps' sums (read from their shared memory)
// and stores them; the others wait until it has read theirs (sm_90 clusters: grid_for gives
// other GPUs no split).
template <int kWarps>
__device__ __forceinline__ void sum_cluster_out(const float (&partial)[kWarps][kTileRows * kTokens], int64_t row0,
                                                int64_t n, int m, void* c, DType c_dtype, float alpha, float beta,
                                                const void* bias) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  const int e = threadIdx.x;
  const int64_t row = row0 + e / kTokens;
  if (cluster.block_rank() == 0 && e < kTileRows * kTokens && row < n && e % kTokens < m) {
    float sum = 0.0f;
    for (unsigned r = 0; r < cluster.num_blocks(); ++r) {
      const float* theirs = cluster.map_shared_rank(&partial[0][0], r);
#pragma unroll
      for (int w = 0; w < kWarps; ++w) sum += theirs[w * kTileRows * kTokens + e];
    }
    store_gemv_out(c, c_dtype, int64_t(e % kTokens) * n + row, row, sum, alpha, beta, bias);
  }
  cluster.sync();
#endif
}

// kUnroll units of each of its two rows in flight a lane (consecutive ones: a warp's round reads
// kUnroll * 4 units of each row in one run); kLateX loads the activations only when a unit is
// converted (they come from L1), which frees their registers for more weight loads in flight.
template <int kWarps, int kUnroll, bool kLateX, typename T, typename Pairs>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_mma_kernel(void* c, DType c_dtype, const T* a, Pairs w, int64_t n, int64_t k, int m, float alpha, float beta,
                    const void* bias) {
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kPairs = Pairs::kWeights / 2, kRuns = Pairs::kWeights / 8;
  constexpr int kRound = 4 * kUnroll;  // units a warp covers per round
  __shared__ float partial[kWarps][kTileRows * kTokens];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t row0 = int64_t(blockIdx.x) * kTileRows;
  // Rows past N read the last one; their outputs are never written.
  const int64_t rows[2] = {std::min(row0 + g, n - 1), std::min(row0 + g + 8, n - 1)};
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
        w.load(rows[0], u, raw[i][0]);
        w.load(rows[1], u, raw[i][1]);
      }
      if constexpr (!kLateX) load_x(early[i], u);
    }
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      if (base + 4 * i >= units) break;  // the whole warp: mma.sync needs every lane
      const int u = base + 4 * i + t;
      uint4 late[kRuns];
      const uint4* xs = late;
      if constexpr (kLateX) load_x(late, u);
      else xs = early[i];
      uint32_t lo[kPairs] = {}, hi[kPairs] = {}, b[kPairs], xr[kPairs];
      if (u < units) {
        Pairs::template pairs<kBf16>(raw[i][0], lo);
        Pairs::template pairs<kBf16>(raw[i][1], hi);
      }
#pragma unroll
      for (int j = 0; j < kRuns; ++j) {
        xr[4 * j] = xs[j].x, xr[4 * j + 1] = xs[j].y, xr[4 * j + 2] = xs[j].z, xr[4 * j + 3] = xs[j].w;
      }
      Pairs::x_pairs(b, xr);
      // k-step s: pairs 2s (columns 2t, 2t + 1 of the fragment) and 2s + 1 (columns 2t + 8, 2t + 9).
#pragma unroll
      for (int s = 0; s < kPairs / 2; ++s) {
        const uint32_t fragment[4] = {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]};
        ptx::mma_16816<T>(acc, fragment, b[2 * s], b[2 * s + 1]);
      }
    }
  }
  // acc: rows g and g + 8 of the tile, columns (rows of A) 2t and 2t + 1.
  float* p = partial[warp];
  p[g * kTokens + 2 * t] = acc[0];
  p[g * kTokens + 2 * t + 1] = acc[1];
  p[(g + 8) * kTokens + 2 * t] = acc[2];
  p[(g + 8) * kTokens + 2 * t + 1] = acc[3];
  __syncthreads();
  if (gridDim.y > 1) {
    sum_cluster_out(partial, row0, n, m, c, c_dtype, alpha, beta, bias);
    return;
  }
  // blockDim >= 128 = kTileRows * kTokens
  store_block_out<kWarps, kTileRows * kTokens, kTokens>(partial, threadIdx.x, row0, n, m, c, c_dtype, alpha, beta, bias);
}

// The group kernel (TESSERA_PACKED_GEMV=group): int4 at 1-2 rows of A, read wide. The tensor cores
// multiply the codes as they are unpacked (128 + q in bf16, 1024 + q in f16: exact, no pair
// subtraction or product), and each group's fp32 partial sum gets its own scale and zero after:
// sum((q - z) s x) = s (sum((base + q) x) - (base + z) sum(x)), with each group's sum(x) worked out
// once a block into shared memory. So that an mma's sums stay apart by group, the 8 columns of B
// are (row of A, lane t of the quad) pairs: column 4i + t holds row i of A over the k of lane t's
// group only (zero elsewhere), so column 4i + t of the result is the partial sum of lane t's group.
// Its weights are (q - z) s exactly, not rounded to A's dtype (closer to the reference than mma).
constexpr int kGroupTokens = 2, kGroupUnroll = 4;
constexpr size_t kGroupSharedMax = 32 << 10;  // with partial[], under the 48 KB a block gets unasked

size_t group_shared_bytes(int64_t k, int m) { return size_t(k / pp::Int4WidePairs::kWeights) * size_t(m) * sizeof(float); }

template <int kWarps, typename T>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_group_kernel(void* c, DType c_dtype, const T* a, pp::Int4WidePairs w, int64_t n, int64_t k, int m, float alpha,
                      float beta, const void* bias) {
  using Pairs = pp::Int4WidePairs;
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kPairs = Pairs::kWeights / 2, kRuns = Pairs::kWeights / 8, kRound = 4 * kGroupUnroll;
  constexpr uint32_t kMagic = kBf16 ? 0x43004300u : 0x64006400u;  // 128 or 1024 in each half
  constexpr float kBase = kBf16 ? 128.0f : 1024.0f;
  extern __shared__ float x_sums[];  // [m][units]: sum(x) over each group of 32 columns
  __shared__ float partial[kWarps][kTileRows * kTokens];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int units = int(k / Pairs::kWeights);
  const int64_t row0 = int64_t(blockIdx.x) * kTileRows;
  const int64_t rows[2] = {std::min(row0 + g, n - 1), std::min(row0 + g + 8, n - 1)};
  Pairs::Raw raw[kGroupUnroll][2];
  auto fetch = [&](int base) {
#pragma unroll
    for (int i = 0; i < kGroupUnroll; ++i) {
      const int u = base + 4 * i + t;
      if (u < units) {
        w.load(rows[0], u, raw[i][0]);
        w.load(rows[1], u, raw[i][1]);
      } else {
        raw[i][0] = raw[i][1] = Pairs::Raw{{0, 0, 0, 0}, 0, 0};
      }
    }
  };
  const int walker = int(blockIdx.y) * kWarps + warp, walkers = int(gridDim.y) * kWarps;
  fetch(walker * kRound);  // the first round's weights load while the sums of x are made
  for (int e = threadIdx.x; e < m * units; e += blockDim.x) {
    const T* p = a + int64_t(e / units) * k + int64_t(e % units) * Pairs::kWeights;
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < kRuns; ++j) {
      float v[8];
      load_f32<8>(v, p + 8 * j);
#pragma unroll
      for (int i = 0; i < 8; ++i) sum += v[i];
    }
    x_sums[e] = sum;
  }
  __syncthreads();
  // This lane's B column is g: row g / 4 of A over lane g % 4's k; only lanes t == g % 4 hold it.
  const bool holds_x = t == g % 4 && g / 4 < m;
  const T* x = a + int64_t(holds_x ? g / 4 : 0) * k;
  // Its result columns 2t and 2t + 1: row t / 2 of A (t < 2 * m), groups of lanes 2 (t % 2) and + 1.
  const int token = t / 2, first_lane = 2 * (t % 2);
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int base = walker * kRound; base < units; base += walkers * kRound) {
    if (base != walker * kRound) fetch(base);
#pragma unroll
    for (int i = 0; i < kGroupUnroll; ++i) {
      if (base + 4 * i >= units) break;  // the whole warp: mma.sync needs every lane
      const int u = base + 4 * i + t;
      uint4 xs[kRuns];
#pragma unroll
      for (int j = 0; j < kRuns; ++j)
        xs[j] = u < units && holds_x ? *reinterpret_cast<const uint4*>(x + Pairs::run(u, j)) : make_uint4(0, 0, 0, 0);
      uint32_t lo[kPairs], hi[kPairs], b[kPairs], xr[kPairs];
#pragma unroll
      for (int j = 0; j < kRuns; ++j)
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          lo[4 * j + q] = ((raw[i][0].w[j] >> (4 * q)) & 0x000f000fu) | kMagic;
          hi[4 * j + q] = ((raw[i][1].w[j] >> (4 * q)) & 0x000f000fu) | kMagic;
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
      const uint32_t mine[2] = {uint32_t(raw[i][0].scale) | uint32_t(raw[i][0].zero) << 16,
                                uint32_t(raw[i][1].scale) | uint32_t(raw[i][1].zero) << 16};
#pragma unroll
      for (int col = 0; col < 2; ++col) {
        const int from = first_lane + col, from_u = base + 4 * i + from;
        const float sum_x = token < m && from_u < units ? x_sums[token * units + from_u] : 0.0f;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const uint32_t theirs = __shfl_sync(0xffffffffu, mine[r], 4 * g + from);
          const float scale = pu::f16_to_float(uint16_t(theirs)), zero = float(theirs >> 16);
          acc[2 * r + col] = fmaf(scale, d[2 * r + col] - (kBase + zero) * sum_x, acc[2 * r + col]);
        }
      }
    }
  }
  // Row g (and g + 8) for row `token` of A: this lane's two columns, then its neighbour's two.
  float sums[2] = {acc[0] + acc[1], acc[2] + acc[3]};
#pragma unroll
  for (int r = 0; r < 2; ++r) sums[r] += __shfl_xor_sync(0xffffffffu, sums[r], 1);
  if (t % 2 == 0) {
    partial[warp][g * kTokens + token] = sums[0];
    partial[warp][(g + 8) * kTokens + token] = sums[1];
  }
  __syncthreads();
  if (gridDim.y > 1) {
    sum_cluster_out(partial, row0, n, m, c, c_dtype, alpha, beta, bias);
    return;
  }
  store_block_out<kWarps, kTileRows * kTokens, kTokens>(partial, threadIdx.x, row0, n, m, c, c_dtype, alpha, beta, bias);
}

// Blocks of 16 rows of W, each a cluster of `split` blocks along K where split > 1, running
// kernel_for(warps) (an integral constant) with `shared` bytes of dynamic shared memory.
template <typename KernelFor, typename... Args>
void launch(KernelFor kernel_for, int warps, int split, int64_t n, size_t shared, cudaStream_t stream, Args... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(unsigned((n + kTileRows - 1) / kTileRows), unsigned(split));
  config.blockDim = dim3(unsigned(warps * 32));
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = 1;
  cluster.val.clusterDim.y = unsigned(split);
  cluster.val.clusterDim.z = 1;
  if (split > 1) {
    config.attrs = &cluster;
    config.numAttrs = 1;
  }
  auto go = [&](auto kernel) { TS_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, args...)); };
  if (warps == 4) go(kernel_for(std::integral_constant<int, 4>{}));
  else if (warps == 8) go(kernel_for(std::integral_constant<int, 8>{}));
  else go(kernel_for(std::integral_constant<int, 16>{}));
}

// One of `choices` named by environment variable `name` (or "auto", as 0, where `with_auto`), or
// `fallback` where it is unset or empty.
int env_choice(const char* name, std::initializer_list<int> choices, bool with_auto, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  std::vector<std::string> names;
  for (int choice : choices) {
    if (std::to_string(choice) == v) return choice;
    names.push_back(std::to_string(choice));
  }
  if (with_auto && std::string(v) == "auto") return 0;
  if (with_auto) names.push_back("auto");
  std::string expected = names[0];  // "a, b or c"
  for (size_t i = 1; i < names.size(); ++i) expected += (i + 1 == names.size() ? " or " : ", ") + names[i];
  throw Error(std::string(name) + ": unknown '" + v + "' (expected " + expected + ")");
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
Grid grid_for(int64_t n, int64_t units, int round, int device) {
  const int64_t blocks = (n + kTileRows - 1) / kTileRows, sms = sm_count(device);
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
bool wide_fits(const PackedTensor& w) {
  return w.spec.scheme == QuantScheme::Int4 && reinterpret_cast<uintptr_t>(w.parts[0].data()) % 16 == 0;
}

}  // namespace

bool fused_gemv_mma_fits(const Tensor& a, const PackedTensor& w) {
  return (a.dtype() == DType::BF16 || a.dtype() == DType::F16) && w.spec.scheme != QuantScheme::NF4;
}

void fused_gemv_mma(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha, float beta,
                    const Tensor& bias, MmaInt4Reads reads) {
  cudaStream_t stream = stream_of(c);
  const size_t c_size = dtype_size(c.dtype());
  const bool wide = reads != MmaInt4Reads::Units && wide_fits(w);
  const bool group = reads == MmaInt4Reads::Group && wide && group_shared_bytes(s.k, kGroupTokens) <= kGroupSharedMax;
  pu::with_reader(w, nullptr, [&](const auto& reader) {
    using Reader = std::decay_t<decltype(reader)>;
    if constexpr (pp::has_pairs<Reader>) {
      auto run = [&](auto* type) {
        using T = std::remove_pointer_t<decltype(type)>;
        for (int64_t m0 = 0; m0 < s.m; m0 += kTokens) {
          const int m = int(std::min<int64_t>(kTokens, s.m - m0));
          void* out = static_cast<uint8_t*>(c.data()) + m0 * s.n * c_size;
          const T* rows = a.data_as<T>() + m0 * s.k;
          const void* b = bias.defined() ? bias.data() : nullptr;
          auto go = [&](auto unroll, auto late_x, const auto& pairs) {
            constexpr int kUnroll = decltype(unroll)::value;
            constexpr bool kLateX = decltype(late_x)::value;
            using Pairs = std::decay_t<decltype(pairs)>;
            const Grid grid = grid_for(s.n, s.k / Pairs::kWeights, 4 * kUnroll, c.device().index);
            launch([](auto w) { return gemv_mma_kernel<decltype(w)::value, kUnroll, kLateX, T, Pairs>; }, grid.warps,
                   grid.split, s.n, 0, stream, out, c.dtype(), rows, pairs, s.n, s.k, m, alpha, beta, b);
          };
          if constexpr (std::is_same_v<Reader, pu::Int4Reader>) {
            if (group && m <= kGroupTokens) {
              const pp::Int4WidePairs pairs{reader};
              const Grid grid = grid_for(s.n, s.k / pp::Int4WidePairs::kWeights, 4 * kGroupUnroll, c.device().index);
              launch([](auto w) { return gemv_group_kernel<decltype(w)::value, T>; }, grid.warps, grid.split, s.n,
                     group_shared_bytes(s.k, m), stream, out, c.dtype(), rows, pairs, s.n, s.k, m, alpha, beta, b);
              continue;
            }
            if (wide) {
              const pp::Int4WidePairs pairs{reader};
              if (reads == MmaInt4Reads::Wide2) go(std::integral_constant<int, 2>{}, std::true_type{}, pairs);
              else go(std::integral_constant<int, 4>{}, std::true_type{}, pairs);
              continue;
            }
          }
          const auto pairs = pp::pairs_of(reader);
          go(std::integral_constant<int, unroll<std::decay_t<decltype(pairs)>>()>{}, std::false_type{}, pairs);
        }
      };
      if (a.dtype() == DType::BF16) run(static_cast<__nv_bfloat16*>(nullptr));
      else run(static_cast<__half*>(nullptr));
    }
  });
  check_launch();
}

}  // namespace tessera::cuda
