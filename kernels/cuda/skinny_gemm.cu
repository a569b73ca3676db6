// Tensor-core skinny gemm (see skinny_gemm.h): C^T = W A^T with W's rows on the mma's M side
// (m16n8k16, fp32 accumulate) and A's few rows on its N side (8 per n-tile, up to 8 tiles).
//
// A warp owns a strip of 16 weight rows and a part of K. Each lane streams 16-byte loads of two
// rows of the strip (g and g + 8, lane = 4g + t) straight into registers, kU of them per row per
// chunk of 32 * kU columns, the next chunk's loads issued before the current chunk's mmas
// (double buffering in registers: two chunks, 8 KB per warp, in flight). K is permuted inside each
// 32 columns so that a 16-byte load is an mma fragment: lane t's 8 consecutive elements at column
// c = base + 8t give the k slots {2t, 2t+1, 2t+8, 2t+9} of one mma (elements 0-3) and of the
// next (4-7). The activations' fragments get the same permutation from the same 16-byte load of
// A's row g of the n-tile (B[k][n] = A[n][k]; A stays in L1/L2: small and read by every warp).
//
// A block has kWarps warps: kWarps / split strips, each strip's K divided among `split` warps
// (short-N shapes need the split to keep every SM busy). The warps' 16 x 8 accumulators go to
// shared memory; the block then adds each strip's parts in a fixed order (deterministic), applies
// alpha and beta and writes C, consecutive threads writing consecutive columns. Launched to
// overlap the previous kernel (kernels/launch_overlap.h), each warp issues its first chunk's
// weight loads before waiting for that kernel.
#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/mma_ptx.cuh"
#include "kernels/cuda/skinny_gemm.h"

namespace tessera::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kU = 4;            // 16-byte loads per row and lane per chunk
constexpr int kChunk = 32 * kU;  // K columns per chunk

__device__ __forceinline__ uint4 load_cached(const void* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

template <int NT>
struct Parts {
  float x[kWarps][16][8 * NT];
};

// NT n-tiles of 8 rows of A.
template <typename T, typename C, int NT>
__global__ void __launch_bounds__(kWarps * 32) skinny_kernel(C* c, const T* a, const T* w, int m_rows, int n_total,
                                                             int k, int split, int k_per, float alpha, float beta) {
  __shared__ Parts<NT> parts;
  let_next_kernel_start();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int strips = kWarps / split, strip = warp / split, kpart = warp % split;
  const int block_n = blockIdx.x * strips * 16;
  const int n0 = block_n + strip * 16;
  float acc[NT][4];
#pragma unroll
  for (int i = 0; i < NT; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  const int kb = kpart * k_per, ke = min(k, kb + k_per);
  if (n0 < n_total && kb < ke) {  // warp-uniform
    // Rows past N read the last row again (their sums are not written).
    const T* row0 = w + static_cast<int64_t>(min(n0 + g, n_total - 1)) * k;
    const T* row1 = w + static_cast<int64_t>(min(n0 + g + 8, n_total - 1)) * k;
    const T* arow[NT];
    bool a_ok[NT];
#pragma unroll
    for (int i = 0; i < NT; ++i) {
      a_ok[i] = i * 8 + g < m_rows;
      arow[i] = a + static_cast<int64_t>(a_ok[i] ? i * 8 + g : 0) * k;
    }
    const uint4 zero = make_uint4(0, 0, 0, 0);
    uint4 cur[2][kU], next[2][kU];
    auto load_chunk = [&](uint4(&buf)[2][kU], int k0) {
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int col = k0 + 32 * u + 8 * t;
        const bool ok = col < ke;
        buf[0][u] = ok ? load_streaming(row0 + col) : zero;
        buf[1][u] = ok ? load_streaming(row1 + col) : zero;
      }
    };
    load_chunk(cur, kb);  // the weight is fixed: its first bytes may come before the previous kernel ends
    wait_for_previous_kernel();
    for (int k0 = kb; k0 < ke; k0 += kChunk) {
      if (k0 + kChunk < ke) load_chunk(next, k0 + kChunk);
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        if (k0 + 32 * u >= ke) break;  // warp-uniform: the mmas below need every lane
        const int col = k0 + 32 * u + 8 * t;
        const uint32_t lo[4] = {cur[0][u].x, cur[1][u].x, cur[0][u].y, cur[1][u].y};
        const uint32_t hi[4] = {cur[0][u].z, cur[1][u].z, cur[0][u].w, cur[1][u].w};
#pragma unroll
        for (int i = 0; i < NT; ++i) {
          const uint4 b = a_ok[i] && col < ke ? load_cached(arow[i] + col) : zero;
          ptx::mma_16816<T>(acc[i], lo, b.x, b.y);
          ptx::mma_16816<T>(acc[i], hi, b.z, b.w);
        }
      }
#pragma unroll
      for (int u = 0; u < kU; ++u) cur[0][u] = next[0][u], cur[1][u] = next[1][u];
    }
  }
  wait_for_previous_kernel();  // (the warps that had no part)
  // acc[i]: rows g, g + 8 of the strip; columns (A's rows) 8i + 2t, 8i + 2t + 1.
#pragma unroll
  for (int i = 0; i < NT; ++i) {
    parts.x[warp][g][8 * i + 2 * t] = acc[i][0];
    parts.x[warp][g][8 * i + 2 * t + 1] = acc[i][1];
    parts.x[warp][g + 8][8 * i + 2 * t] = acc[i][2];
    parts.x[warp][g + 8][8 * i + 2 * t + 1] = acc[i][3];
  }
  __syncthreads();
  const int rows = strips * 16;
  for (int idx = threadIdx.x; idx < rows * m_rows; idx += kWarps * 32) {
    const int m = idx / rows, r = idx % rows, n = block_n + r;
    if (n >= n_total) continue;
    const int s = r / 16;
    float sum = 0.0f;
    for (int p = 0; p < split; ++p) sum += parts.x[s * split + p][r % 16][m];
    C* out = c + static_cast<int64_t>(m) * n_total + n;
    const float prior = beta != 0.0f ? beta * to_f32(*out) : 0.0f;
    *out = from_f32<C>(alpha * sum + prior);
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename T, typename C, int NT>
void launch(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta, int split) {
  const int64_t strips = ceil_div(s.n, 16);
  const int per_block = kWarps / split;
  const int k_per = static_cast<int>(ceil_div(ceil_div(s.k, split), 8) * 8);
  const unsigned blocks = static_cast<unsigned>(ceil_div(strips, per_block));
  launch_kernel(skinny_kernel<T, C, NT>, blocks, kWarps * 32, 0, stream_of(c), c.data_as<C>(), a.data_as<T>(),
                b.data_as<T>(), static_cast<int>(s.m), static_cast<int>(s.n), static_cast<int>(s.k), split, k_per,
                alpha, beta);
}

template <typename T, typename C>
void launch_tiles(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
                  int split) {
  if (s.m <= 8) return launch<T, C, 1>(c, a, b, s, alpha, beta, split);
  if (s.m <= 16) return launch<T, C, 2>(c, a, b, s, alpha, beta, split);
  if (s.m <= 32) return launch<T, C, 4>(c, a, b, s, alpha, beta, split);
  return launch<T, C, 8>(c, a, b, s, alpha, beta, split);
}

}  // namespace

// The smallest split that gives at least as many warps as the GPU holds at once (2 blocks of
// kWarps per SM at this kernel's registers), while each warp keeps at least a chunk of K.
int skinny_split_for(int64_t n, int64_t k, int sms) {
  const int64_t strips = ceil_div(n, 16), target = int64_t(2) * kWarps * sms;
  int split = 1;
  while (split < kWarps && strips * split < target && ceil_div(k, 2 * split) >= kChunk) split *= 2;
  return split;
}

void skinny_gemm(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
                 int split) {
  if (split == 0) split = skinny_split_for(s.n, s.k, sm_count(c.device().index));
  if (split != 1 && split != 2 && split != 4 && split != 8)
    throw Error("skinny_gemm: split " + std::to_string(split) + " is not one of 1, 2, 4, 8");
  const bool f32_out = c.dtype() == DType::F32;
  if (a.dtype() == DType::BF16) {
    if (f32_out) launch_tiles<__nv_bfloat16, float>(c, a, b, s, alpha, beta, split);
    else launch_tiles<__nv_bfloat16, __nv_bfloat16>(c, a, b, s, alpha, beta, split);
  } else {
    if (f32_out) launch_tiles<__half, float>(c, a, b, s, alpha, beta, split);
    else launch_tiles<__half, __half>(c, a, b, s, alpha, beta, split);
  }
  check_launch();
}

}  // namespace tessera::cuda
