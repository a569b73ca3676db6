// Small-M gemv against row-major weights (see gemv.h): one warp per output column n streams row
// n of W (K elements) and multiplies it with the M rows of A, which every warp of the block reads
// alike (they stay in L1); the lanes' fp32 partial sums meet by shuffles and lane 0 writes the M
// outputs of column n. The weight's bytes are the whole cost, so each lane first issues kUnroll
// independent 16-byte loads of its row (non-caching: read once) and only then does the
// arithmetic: a warp keeps kUnroll x 512 bytes in flight, enough to cover the memory latency with
// the few warps a narrow matrix gives each SM (call A: the loop form left ~1.7 TB/s). The next
// round's loads go out before this round's arithmetic, so a long row (down_proj's K = 8192) keeps
// streaming instead of stopping at each round (session 8 call B: 1.85 TB/s at M = 1). The first
// round goes out before the kernel waits for its predecessor (programmatic dependent launch:
// weights are fixed, A is not).
//
// One launch may take several weights sharing A (their rows stacked: warp n takes the n-th row
// of them all), so that q, k and v of a decode step (the 1B shape's k and v are 512 rows each,
// too few to keep the GPU busy alone) cost one launch. The SwiGLU form pairs warps: of each two,
// one takes row n of gate, the other row n of up, and the block writes silu(g) * u.
//
// Either form may take the un-normed residual instead of A and norm it first (gemv_io.cuh: each
// block, once its first weight loads are out and its predecessor done, norms A's rows into
// shared memory, and the warps read them there); the first may add a residual to its outputs.

#include "kernels/cuda/activations.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/gemv_io.cuh"

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

// Up to kUnroll loads of the row from k0 on, issued together.
template <typename T>
__device__ __forceinline__ void load_round(uint4 (&wraw)[kUnroll], const T* row, int k0, int k) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u)
    if (k0 + u * kStep < k) wraw[u] = load_streaming(row + k0 + u * kStep);
}

// acc[m] = row . a[m, :] over k, in every lane of the warp, wraw holding the row's first round of
// loads (load_round from lane * kVec), issued before the kernel waited for its predecessor.
template <typename T, int M>
__device__ __forceinline__ void row_dot(float (&acc)[M], uint4 (&wraw)[kUnroll], const T* row, const T* a, int k,
                                        int lane) {
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  int k0 = lane * kVec;
  uint4 next[kUnroll];
  while (true) {
    const int k1 = k0 + kUnroll * kStep;
    if (k1 < k) load_round(next, row, k1, k);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (k0 + u * kStep < k) accumulate<T, M>(acc, wraw[u], a, k, k0 + u * kStep);
    if (k1 >= k) break;
    k0 = k1;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wraw[u] = next[u];
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int mask = 16; mask > 0; mask /= 2) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], mask);
}

// The rows of A the warps read: A itself, or (Input::kShared, the norm prologue) its normed copy
// in the block's dynamic shared memory (gemv_io.cuh). Every thread of the block calls it, once
// its first weight loads are in flight; it waits for the previous kernel.
template <typename T, typename Input>
__device__ __forceinline__ const T* staged_input(const Input& input, const T* a, int m, int k) {
  extern __shared__ __align__(16) unsigned char gemv_shared[];
  return input.stage(a, reinterpret_cast<T*>(gemv_shared), m, k);
}

// The weights of one launch, their rows stacked: weight i holds rows [end[i - 1], end[i]).
template <typename T, typename C>
struct Weights {
  const T* w[kGemvMaxWeights];
  C* c[kGemvMaxWeights];
  const C* bias[kGemvMaxWeights];      // null: none
  const C* residual[kGemvMaxWeights];  // null: none (gemv_io.cuh gemv_output)
  int end[kGemvMaxWeights];
  int count;
};

template <typename T, typename C, int M, typename Input>
__global__ void __launch_bounds__(kWarps * 32) small_m_gemm_kernel(Weights<T, C> ws, const T* a, int k, float alpha,
                                                                  float beta, Input input) {
  let_next_kernel_start();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * kWarps + warp;
  // A warp past the last row still takes its part in the prologue (it synchronizes the block).
  const bool active = row < ws.end[ws.count - 1];
  if (!active && !Input::kShared) return;
  int i = 0;
  while (active && row >= ws.end[i]) ++i;
  const int first = i == 0 ? 0 : ws.end[i - 1], n = row - first, n_total = ws.end[i] - first;
  const T* w = ws.w[i] + static_cast<int64_t>(n) * k;
  uint4 wraw[kUnroll];
  if (active) load_round(wraw, w, lane * kVec, k);
  const T* rows = staged_input<T>(input, a, M, k);
  if (!active) return;
  float acc[M];
  row_dot<T, M>(acc, wraw, w, rows, k, lane);
  if (lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const int64_t at = static_cast<int64_t>(m) * n_total + n;
    C* out = ws.c[i] + at;
    const float prior = beta != 0.0f ? beta * to_f32(*out) : 0.0f;
    float y = alpha * acc[m] + prior;
    if (ws.bias[i]) y += to_f32(ws.bias[i][n]);
    *out = gemv_output<C>(y, ws.residual[i], at);
  }
}

constexpr int kColumnsPerBlock = kWarps / 2;  // the SwiGLU form: a gate warp and an up warp per column

template <typename T, int M, typename Input>
__global__ void __launch_bounds__(kWarps * 32) gemv_swiglu_kernel(T* out, const T* a, const T* gate, const T* up,
                                                                  int n_total, int k, Input input) {
  let_next_kernel_start();
  __shared__ float part[kWarps][M];  // warp 2c: column c's gate, warp 2c + 1: its up
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int col = blockIdx.x * kColumnsPerBlock + warp / 2;
  const T* w = (warp % 2 ? up : gate) + static_cast<int64_t>(col) * k;
  uint4 wraw[kUnroll];
  if (col < n_total) load_round(wraw, w, lane * kVec, k);
  const T* rows = staged_input<T>(input, a, M, k);
  if (col < n_total) {
    float acc[M];
    row_dot<T, M>(acc, wraw, w, rows, k, lane);
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < M; ++m) part[warp][m] = acc[m];
  }
  __syncthreads();
  // Threads c * M + m of warp 0 write output (m, column c).
  if (threadIdx.x >= kColumnsPerBlock * M) return;
  const int c = threadIdx.x / M, m = threadIdx.x % M, n = blockIdx.x * kColumnsPerBlock + c;
  if (n >= n_total) return;
  const float g = round_as<T>(part[2 * c][m]), u = round_as<T>(part[2 * c + 1][m]);
  out[static_cast<int64_t>(m) * n_total + n] = from_f32<T>(round_as<T>(silu(g)) * u);
}

// Dynamic shared memory of a launch: what its input stage needs. Past the default 48 KB, which
// the kernels' static shared memory (under 1 KB: the norm's sums, the SwiGLU's partials) shares,
// a kernel must be allowed it.
template <typename Input, typename Kernel>
size_t input_shared_bytes(Kernel kernel, int64_t m, int64_t k, size_t element_bytes) {
  const size_t bytes = static_cast<size_t>(Input::shared_bytes(m, k, static_cast<int64_t>(element_bytes)));
  if (bytes > 0 && bytes + 1024 > 48 * 1024)
    TS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  return bytes;
}

template <typename T, typename C, int M, typename Input>
void launch_rows(const Weights<T, C>& ws, const T* a, int k, float alpha, float beta, const Input& input,
                 cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((ws.end[ws.count - 1] + kWarps - 1) / kWarps);
  const auto kernel = small_m_gemm_kernel<T, C, M, Input>;
  const size_t shared = input_shared_bytes<Input>(kernel, M, k, sizeof(T));
  launch_kernel(kernel, blocks, kWarps * 32, shared, stream, ws, a, k, alpha, beta, input);
}

template <typename T, typename C, typename Input>
void launch(const Weights<T, C>& ws, const T* a, int64_t m, int64_t k, float alpha, float beta, const Input& input,
            cudaStream_t stream) {
  const int kk = static_cast<int>(k);
  switch (m) {
    case 1: return launch_rows<T, C, 1>(ws, a, kk, alpha, beta, input, stream);
    case 2: return launch_rows<T, C, 2>(ws, a, kk, alpha, beta, input, stream);
    case 3: return launch_rows<T, C, 3>(ws, a, kk, alpha, beta, input, stream);
    default: return launch_rows<T, C, 4>(ws, a, kk, alpha, beta, input, stream);
  }
}

// Weights<T, C> of weights[i] writing outs[i] (with biases[i] and residuals[i] where given and
// defined).
template <typename T, typename C>
Weights<T, C> weights_of(std::span<const Tensor> outs, std::span<const Tensor> weights, std::span<const Tensor> biases,
                         std::span<const Tensor> residuals) {
  if (weights.empty() || weights.size() > kGemvMaxWeights || outs.size() != weights.size())
    throw Error("gemv: " + std::to_string(weights.size()) + " weights for " + std::to_string(outs.size()) +
                " outputs (1 to " + std::to_string(kGemvMaxWeights) + ")");
  Weights<T, C> ws{};
  ws.count = static_cast<int>(weights.size());
  int64_t rows = 0;
  const auto given = [](std::span<const Tensor> ts, int i) { return i < int(ts.size()) && ts[i].defined(); };
  for (int i = 0; i < ws.count; ++i) {
    ws.w[i] = weights[i].data_as<T>();
    ws.c[i] = outs[i].data_as<C>();
    ws.bias[i] = given(biases, i) ? biases[i].data_as<C>() : nullptr;
    ws.residual[i] = given(residuals, i) ? residuals[i].data_as<C>() : nullptr;
    rows += weights[i].size(0);
    if (rows > INT32_MAX) throw Error("gemv: more than 2^31 weight rows in one launch");
    ws.end[i] = static_cast<int>(rows);
  }
  return ws;
}

// fn(input) with the gemv input stage `norm` asks for: PlainInput without a norm weight, else
// NormedInput of its dtype (T or f32).
template <typename T, typename Fn>
void with_input(const InputNorm& norm, Fn&& fn) {
  if (!norm.defined()) return fn(PlainInput{});
  if (norm.weight.dtype() == DType::F32) return fn(NormedInput<float>{norm.weight.data_as<float>(), norm.eps});
  fn(NormedInput<T>{norm.weight.data_as<T>(), norm.eps});
}

template <typename T, int M, typename Input>
void launch_swiglu(const Tensor& out, const Tensor& a, const Tensor& gate, const Tensor& up, int64_t k,
                   const Input& input) {
  const int n = static_cast<int>(gate.size(0));
  const unsigned blocks = static_cast<unsigned>((n + kColumnsPerBlock - 1) / kColumnsPerBlock);
  const auto kernel = gemv_swiglu_kernel<T, M, Input>;
  const size_t shared = input_shared_bytes<Input>(kernel, M, k, sizeof(T));
  launch_kernel(kernel, blocks, kWarps * 32, shared, stream_of(out), out.data_as<T>(), a.data_as<T>(),
                gate.data_as<T>(), up.data_as<T>(), n, static_cast<int>(k), input);
}

template <typename T, typename Input>
void swiglu_rows(const Tensor& out, const Tensor& a, const Tensor& gate, const Tensor& up, int64_t m, int64_t k,
                 const Input& input) {
  switch (m) {
    case 1: return launch_swiglu<T, 1>(out, a, gate, up, k, input);
    case 2: return launch_swiglu<T, 2>(out, a, gate, up, k, input);
    case 3: return launch_swiglu<T, 3>(out, a, gate, up, k, input);
    default: return launch_swiglu<T, 4>(out, a, gate, up, k, input);
  }
}

}  // namespace

bool gemv_norm_fits(int64_t m, int64_t k, DType dtype) {
  return m <= kNormMaxRows && rmsnorm_rows_shared_bytes(m, k, static_cast<int64_t>(dtype_size(dtype))) <= kNormMaxSharedBytes;
}

void gemv_rows(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta) {
  const Tensor outs[] = {c}, weights[] = {b};
  const bool f32_out = c.dtype() == DType::F32;
  const cudaStream_t stream = stream_of(c);
  const PlainInput plain;
  if (a.dtype() == DType::BF16) {
    using T = __nv_bfloat16;
    if (f32_out) launch(weights_of<T, float>(outs, weights, {}, {}), a.data_as<T>(), s.m, s.k, alpha, beta, plain, stream);
    else launch(weights_of<T, T>(outs, weights, {}, {}), a.data_as<T>(), s.m, s.k, alpha, beta, plain, stream);
  } else {
    using T = __half;
    if (f32_out) launch(weights_of<T, float>(outs, weights, {}, {}), a.data_as<T>(), s.m, s.k, alpha, beta, plain, stream);
    else launch(weights_of<T, T>(outs, weights, {}, {}), a.data_as<T>(), s.m, s.k, alpha, beta, plain, stream);
  }
  check_launch();
}

void gemv_rows_many(std::span<const Tensor> outs, const Tensor& a, std::span<const Tensor> weights,
                    std::span<const Tensor> biases, int64_t m, int64_t k, const InputNorm& norm,
                    std::span<const Tensor> residuals) {
  const cudaStream_t stream = stream_of(a);
  const auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const Weights<T, T> ws = weights_of<T, T>(outs, weights, biases, residuals);
    with_input<T>(norm, [&](const auto& input) { launch(ws, a.data_as<T>(), m, k, 1.0f, 0.0f, input, stream); });
  };
  if (a.dtype() == DType::BF16) run(static_cast<__nv_bfloat16*>(nullptr));
  else run(static_cast<__half*>(nullptr));
  check_launch();
}

void gemv_rows_swiglu(const Tensor& out, const Tensor& a, const Tensor& gate, const Tensor& up, int64_t m, int64_t k,
                      const InputNorm& norm) {
  if (gate.size(0) > INT32_MAX) throw Error("gemv: more than 2^31 weight rows in one launch");
  const auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    with_input<T>(norm, [&](const auto& input) { swiglu_rows<T>(out, a, gate, up, m, k, input); });
  };
  if (a.dtype() == DType::BF16) run(static_cast<__nv_bfloat16*>(nullptr));
  else run(static_cast<__half*>(nullptr));
  check_launch();
}

}  // namespace tessera::cuda
