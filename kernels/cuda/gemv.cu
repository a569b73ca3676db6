// Small-M gemv against a row-major weight (see gemv.h): one warp per output column n streams
// row n of W (K elements) and multiplies it with the M rows of A, which every warp of the block
// reads alike (they stay in L1); the lanes' fp32 partial sums meet by shuffles and lane 0 writes
// the M outputs of column n. The weight's bytes are the whole cost, so each lane first issues
// kUnroll independent 16-byte loads of its row (non-caching: read once) and only then does the
// arithmetic: a warp keeps kUnroll x 512 bytes in flight, enough to cover the memory latency with
// the few warps a narrow matrix gives each SM (call A: the loop form left ~1.7 TB/s).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/gemv.h"

namespace tessera::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kVec = 8;      // elements per 16-byte load
constexpr int kUnroll = 8;   // loads in flight per lane
constexpr int kStep = 32 * kVec;  // elements a warp covers per load

template <typename T>
__device__ __forceinline__ void unpack(float (&out)[kVec], const uint4& v) {
  const Pack<T, kVec> p = *reinterpret_cast<const Pack<T, kVec>*>(&v);
#pragma unroll
  for (int i = 0; i < kVec; ++i) out[i] = to_f32(p.x[i]);
}

template <typename T, int M>
__device__ __forceinline__ void accumulate(float (&acc)[M], const uint4& wraw, const T* a, int64_t k, int k0) {
  float w[kVec];
  unpack<T>(w, wraw);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float av[kVec];
    load_f32<kVec>(av, a + m * k + k0);
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[m] = fmaf(av[i], w[i], acc[m]);
  }
}

template <typename T, typename C, int M>
__global__ void __launch_bounds__(kWarps * 32) small_m_gemm_kernel(C* c, const T* a, const T* w, int n_total, int k,
                                                                  float alpha, float beta) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n = blockIdx.x * kWarps + warp;
  if (n >= n_total) return;
  const T* row = w + static_cast<int64_t>(n) * k;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  int k0 = lane * kVec;
  // Whole rounds of kUnroll loads, issued before any of them is used.
  for (; k0 + (kUnroll - 1) * kStep < k; k0 += kUnroll * kStep) {
    uint4 wraw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wraw[u] = load_streaming(row + k0 + u * kStep);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) accumulate<T, M>(acc, wraw[u], a, k, k0 + u * kStep);
  }
  // The rest: up to kUnroll - 1 loads, still issued together.
  uint4 wraw[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u)
    if (k0 + u * kStep < k) wraw[u] = load_streaming(row + k0 + u * kStep);
#pragma unroll
  for (int u = 0; u < kUnroll; ++u)
    if (k0 + u * kStep < k) accumulate<T, M>(acc, wraw[u], a, k, k0 + u * kStep);
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int mask = 16; mask > 0; mask /= 2) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], mask);
  if (lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    C* out = c + static_cast<int64_t>(m) * n_total + n;
    const float prior = beta != 0.0f ? beta * to_f32(*out) : 0.0f;
    *out = from_f32<C>(alpha * acc[m] + prior);
  }
}

template <typename T, typename C, int M>
void launch_rows(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta) {
  const unsigned blocks = static_cast<unsigned>((s.n + kWarps - 1) / kWarps);
  launch_kernel(small_m_gemm_kernel<T, C, M>, blocks, kWarps * 32, 0, stream_of(c), c.data_as<C>(), a.data_as<T>(),
                b.data_as<T>(), static_cast<int>(s.n), static_cast<int>(s.k), alpha, beta);
}

template <typename T, typename C>
void launch(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta) {
  switch (s.m) {
    case 1: return launch_rows<T, C, 1>(c, a, b, s, alpha, beta);
    case 2: return launch_rows<T, C, 2>(c, a, b, s, alpha, beta);
    case 3: return launch_rows<T, C, 3>(c, a, b, s, alpha, beta);
    default: return launch_rows<T, C, 4>(c, a, b, s, alpha, beta);
  }
}

}  // namespace

void gemv_rows(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta) {
  const bool f32_out = c.dtype() == DType::F32;
  if (a.dtype() == DType::BF16) {
    if (f32_out) launch<__nv_bfloat16, float>(c, a, b, s, alpha, beta);
    else launch<__nv_bfloat16, __nv_bfloat16>(c, a, b, s, alpha, beta);
  } else {
    if (f32_out) launch<__half, float>(c, a, b, s, alpha, beta);
    else launch<__half, __half>(c, a, b, s, alpha, beta);
  }
  check_launch();
}

}  // namespace tessera::cuda
