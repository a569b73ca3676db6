// Small-M gemv against row-major weights (see gemv.h) in several forms (kernels/gemv_form.h,
// TESSERA_GEMV), each streaming each weight row with one warp (gemv_row.cuh: the loads, the
// arithmetic, the outputs), so they give the same bits:
// - rows: one warp per weight row, 4 warps a block: as many blocks as rows / 4 (the 1B gate/up
//   4,096, lm_head 32,064), dealt out by the hardware in many short waves;
// - persistent: only the blocks that fit at once (persistent_grid.h), each warp walking the rows
//   r, r + warps, ... with the next row's first loads issued before this row's last arithmetic;
//   a block's fixed costs (its first loads before the PDL wait, the norm prologue) once per block.
// (The split forms are persistent with each row's K over a block's warps: their own bits. A bulk
// form, the persistent rows brought by cp.async.bulk into a ring of shared memory per warp, was
// slower everywhere, session 11 call D2: 1B batch 1 743 tok/s against split4's 890; removed.)
// Every warp's lanes keep fp32 partial sums that meet by shuffles; lane 0 writes the M outputs of
// its row. The first round of loads goes out before the kernel waits for its predecessor
// (programmatic dependent launch: weights are fixed, A is not).
//
// One launch may take several weights sharing A (their rows stacked), so that q, k and v of a
// decode step (the 1B shape's k and v are 512 rows each, too few to keep the GPU busy alone) cost
// one launch. The SwiGLU form computes gate row n and up row n and writes silu(g) * u: in the rows
// form a block's warps pair up (one takes gate, the other up, meeting in shared memory), in the
// persistent form one warp takes both rows of its column.
//
// Either form may take the un-normed residual instead of A and norm it first (gemv_io.cuh: each
// block, once its first weight loads are out and its predecessor done, norms A's rows into
// shared memory, and the warps read them there); the first may add a residual to its outputs.

#include "kernels/cuda/gemv_row.cuh"
#include "kernels/cuda/persistent_grid.h"
#include "kernels/gemv_form.h"

namespace tessera::cuda {

namespace {

using namespace gemv;

template <typename T, typename C, int M, typename Input>
__global__ void __launch_bounds__(kWarps * 32) small_m_gemm_kernel(Weights<T, C> ws, const T* a, int k, float alpha,
                                                                  float beta, Input input) {
  let_next_kernel_start();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * kWarps + warp;
  // A warp past the last row still takes its part in the prologue (it synchronizes the block).
  const bool active = row < ws.rows();
  if (!active && !Input::kShared) return;
  const T* w = active ? ws.row_data(row, k) : nullptr;
  uint4 wraw[kUnroll];
  if (active) load_first_round(wraw, w, k, lane);
  const T* rows = staged_input<T>(input, a, M, k);
  if (!active) return;
  float acc[M];
  row_dot<T, M>(acc, wraw, w, rows, k, k, lane);
  if (lane == 0) ws.store(row, acc, alpha, beta);
}

// The persistent form, each row's K in S segments (S = 1, 2 or 4, `segment` elements each but
// the last): a block takes kWarps / S rows at a time (its groups g, g + blocks, ...), warp w
// segment w % S of row w / S. With S > 1 the segments' sums meet in shared memory and are added
// in segment order (the same bits every run, not the rows form's: its lanes add across the
// segments' ends); with S = 1 warp w of block b takes rows 4b + w, 4(b + blocks) + w, ...
template <typename T, typename C, int M, int S, typename Input>
__global__ void __launch_bounds__(kWarps * 32) persistent_gemm_kernel(Weights<T, C> ws, const T* a, int k,
                                                                     int segment, float alpha, float beta,
                                                                     Input input) {
  static_assert(kWarps % S == 0);
  constexpr int kRowsAtOnce = kWarps / S;
  __shared__ float part[2][kWarps][M];  // by the group's parity: a second group may start before the first is added
  let_next_kernel_start();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, rows = ws.rows();
  const int k0 = (warp % S) * segment, length = min(segment, k - k0);
  const auto row_of = [&](int group) { return group * kRowsAtOnce + warp / S; };
  const auto segment_of = [&](int row) { return ws.row_data(row, k) + k0; };
  const int groups = (rows + kRowsAtOnce - 1) / kRowsAtOnce;
  int group = blockIdx.x;
  uint4 wraw[kUnroll];
  if (row_of(group) < rows) load_first_round(wraw, segment_of(row_of(group)), length, lane);
  const T* x = staged_input<T>(input, a, M, k);  // every warp, past the rows or not
  for (int parity = 0; group < groups; group += gridDim.x, parity ^= 1) {
    const int row = row_of(group), next = row_of(group + gridDim.x);
    float acc[M];
    if (row < rows)
      row_dot<T, M>(acc, wraw, segment_of(row), x + k0, length, k, lane, next < rows ? segment_of(next) : nullptr);
    if constexpr (S == 1) {
      if (row < rows && lane == 0) ws.store(row, acc, alpha, beta);
    } else {
      if (row < rows && lane == 0)
#pragma unroll
        for (int m = 0; m < M; ++m) part[parity][warp][m] = acc[m];
      __syncthreads();
      if (row < rows && warp % S == 0 && lane == 0) {
#pragma unroll
        for (int m = 0; m < M; ++m)
#pragma unroll
          for (int s = 1; s < S; ++s) acc[m] += part[parity][warp + s][m];
        ws.store(row, acc, alpha, beta);
      }
    }
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
  if (col < n_total) load_first_round(wraw, w, k, lane);
  const T* rows = staged_input<T>(input, a, M, k);
  if (col < n_total) {
    float acc[M];
    row_dot<T, M>(acc, wraw, w, rows, k, k, lane);
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < M; ++m) part[warp][m] = acc[m];
  }
  __syncthreads();
  // Threads c * M + m of warp 0 write output (m, column c).
  if (threadIdx.x >= kColumnsPerBlock * M) return;
  const int c = threadIdx.x / M, m = threadIdx.x % M, n = blockIdx.x * kColumnsPerBlock + c;
  if (n >= n_total) return;
  out[static_cast<int64_t>(m) * n_total + n] = swiglu_value<T>(part[2 * c][m], part[2 * c + 1][m]);
}

// The persistent SwiGLU form: warp g takes columns g, g + warps, ..., each its gate row then its
// up row (one stream of loads: the up row's first round goes out during the gate row's arithmetic).
template <typename T, int M, typename Input>
__global__ void __launch_bounds__(kWarps * 32) persistent_swiglu_kernel(T* out, const T* a, const T* gate,
                                                                       const T* up, int n_total, int k, Input input) {
  let_next_kernel_start();
  const int lane = threadIdx.x % 32, warps = gridDim.x * kWarps;
  int col = blockIdx.x * kWarps + threadIdx.x / 32;
  const auto row_of = [&](const T* w, int c) { return w + static_cast<int64_t>(c) * k; };
  uint4 wraw[kUnroll];
  if (col < n_total) load_first_round(wraw, row_of(gate, col), k, lane);
  const T* x = staged_input<T>(input, a, M, k);
  for (; col < n_total; col += warps) {
    const int next = col + warps;
    float g[M], u[M];
    row_dot<T, M>(g, wraw, row_of(gate, col), x, k, k, lane, row_of(up, col));
    row_dot<T, M>(u, wraw, row_of(up, col), x, k, k, lane, next < n_total ? row_of(gate, next) : nullptr);
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < M; ++m) out[static_cast<int64_t>(m) * n_total + col] = swiglu_value<T>(g[m], u[m]);
  }
}

// `bytes` of dynamic shared memory for kernel. Past the default 48 KB, which the kernels' static
// shared memory (under 1 KB: the norm's sums, the SwiGLU's partials)
// shares, a kernel must be allowed it.
template <typename Kernel>
size_t allow_shared(Kernel kernel, int64_t bytes) {
  if (bytes > 0 && bytes + 1024 > 48 * 1024)
    TS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  return static_cast<size_t>(bytes);
}

// Dynamic shared memory of a launch: what its input stage needs.
template <typename Input, typename Kernel>
size_t input_shared_bytes(Kernel kernel, int64_t m, int64_t k, size_t element_bytes) {
  return allow_shared(kernel, Input::shared_bytes(m, k, static_cast<int64_t>(element_bytes)));
}

// Where and how a launch runs.
struct Target {
  cudaStream_t stream;
  int device;
  ops::GemvForm form;
};

Target target_of(const Tensor& t) { return {stream_of(t), t.device().index, ops::gemv_form()}; }

// Blocks of kernel (`shared` bytes of dynamic shared memory) a persistent form keeps at once: all
// that fit, or at most ops::gemv_blocks_per_sm() on each SM where that is set.
int resident(const void* kernel, size_t shared, int device) {
  const int all = resident_blocks(kernel, kWarps * 32, shared, device), cap = ops::gemv_blocks_per_sm();
  return cap > 0 ? std::min(all, cap * sm_count(device)) : all;
}

// kernel over `items` work items, per_block of them in each block at a time: a block per
// per_block items, or (persistent) only the blocks resident at once.
template <typename... Params, typename... Args>
void launch_items(void (*kernel)(Params...), int64_t items, int per_block, bool persistent, size_t shared,
                  const Target& t, Args&&... args) {
  const unsigned blocks =
      persistent ? persistent_blocks(items, per_block, resident(reinterpret_cast<const void*>(kernel), shared, t.device))
                 : static_cast<unsigned>((items + per_block - 1) / per_block);
  launch_kernel(kernel, blocks, kWarps * 32, shared, t.stream, std::forward<Args>(args)...);
}

// The segments each row's K is split in: the form's (1, 2 or 4), where the rows are too few for
// the resident warps to take 4 each (with fewer, a wave's tail leaves warps idle) and a segment
// keeps a full round of loads (4 KB a warp) in flight.
int row_segments(ops::GemvForm form, int64_t rows, int64_t k, int resident_warps) {
  const int asked = form == ops::GemvForm::Split4 ? 4 : form == ops::GemvForm::Split2 ? 2 : 1;
  if (rows >= 4 * int64_t(resident_warps)) return 1;
  int s = asked;
  while (s > 1 && k < int64_t(s) * kUnroll * kStep) s /= 2;
  return s;
}

template <typename T, typename C, int M, int S, typename Input>
void launch_persistent(const Weights<T, C>& ws, const T* a, int k, float alpha, float beta, const Input& input,
                       const Target& t) {
  const auto kernel = persistent_gemm_kernel<T, C, M, S, Input>;
  const size_t shared = input_shared_bytes<Input>(kernel, M, k, sizeof(T));
  const int segment = (k / S + kStep - 1) / kStep * kStep;  // whole loads of the warp; the last segment the rest
  launch_items(kernel, (ws.end[ws.count - 1] + kWarps / S - 1) / (kWarps / S), 1, true, shared, t, ws, a, k,
               S == 1 ? k : segment, alpha, beta, input);
}

template <typename T, typename C, int M, typename Input>
void launch_rows(const Weights<T, C>& ws, const T* a, int k, float alpha, float beta, const Input& input,
                 const Target& t) {
  if (t.form == ops::GemvForm::Rows) {
    const auto kernel = small_m_gemm_kernel<T, C, M, Input>;
    const size_t shared = input_shared_bytes<Input>(kernel, M, k, sizeof(T));
    return launch_items(kernel, ws.end[ws.count - 1], kWarps, false, shared, t, ws, a, k, alpha, beta, input);
  }
  const auto whole = persistent_gemm_kernel<T, C, M, 1, Input>;
  const size_t shared = input_shared_bytes<Input>(whole, M, k, sizeof(T));
  const int warps = kWarps * resident(reinterpret_cast<const void*>(whole), shared, t.device);
  switch (row_segments(t.form, ws.end[ws.count - 1], k, warps)) {
    case 1: return launch_persistent<T, C, M, 1>(ws, a, k, alpha, beta, input, t);
    case 2: return launch_persistent<T, C, M, 2>(ws, a, k, alpha, beta, input, t);
    default: return launch_persistent<T, C, M, 4>(ws, a, k, alpha, beta, input, t);
  }
}

template <typename T, typename C, typename Input>
void launch(const Weights<T, C>& ws, const T* a, int64_t m, int64_t k, float alpha, float beta, const Input& input,
            const Target& t) {
  const int kk = static_cast<int>(k);
  switch (m) {
    case 1: return launch_rows<T, C, 1>(ws, a, kk, alpha, beta, input, t);
    case 2: return launch_rows<T, C, 2>(ws, a, kk, alpha, beta, input, t);
    case 3: return launch_rows<T, C, 3>(ws, a, kk, alpha, beta, input, t);
    default: return launch_rows<T, C, 4>(ws, a, kk, alpha, beta, input, t);
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
                   const Input& input, const Target& t) {
  const int n = static_cast<int>(gate.size(0));
  const bool persistent = t.form != ops::GemvForm::Rows;  // the split forms too: gate/up's K is short
  const auto kernel = persistent ? persistent_swiglu_kernel<T, M, Input> : gemv_swiglu_kernel<T, M, Input>;
  const size_t shared = input_shared_bytes<Input>(kernel, M, k, sizeof(T));
  launch_items(kernel, n, persistent ? kWarps : kColumnsPerBlock, persistent, shared, t, out.data_as<T>(),
               a.data_as<T>(), gate.data_as<T>(), up.data_as<T>(), n, static_cast<int>(k), input);
}

template <typename T, typename Input>
void swiglu_rows(const Tensor& out, const Tensor& a, const Tensor& gate, const Tensor& up, int64_t m, int64_t k,
                 const Input& input, const Target& t) {
  switch (m) {
    case 1: return launch_swiglu<T, 1>(out, a, gate, up, k, input, t);
    case 2: return launch_swiglu<T, 2>(out, a, gate, up, k, input, t);
    case 3: return launch_swiglu<T, 3>(out, a, gate, up, k, input, t);
    default: return launch_swiglu<T, 4>(out, a, gate, up, k, input, t);
  }
}

}  // namespace

bool gemv_norm_fits(int64_t m, int64_t k, DType dtype) {
  return m <= kNormMaxRows && rmsnorm_rows_shared_bytes(m, k, static_cast<int64_t>(dtype_size(dtype))) <= kNormMaxSharedBytes;
}

void gemv_rows(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta) {
  const Tensor outs[] = {c}, weights[] = {b};
  const bool f32_out = c.dtype() == DType::F32;
  const Target t = target_of(c);
  const PlainInput plain;
  if (a.dtype() == DType::BF16) {
    using T = __nv_bfloat16;
    if (f32_out) launch(weights_of<T, float>(outs, weights, {}, {}), a.data_as<T>(), s.m, s.k, alpha, beta, plain, t);
    else launch(weights_of<T, T>(outs, weights, {}, {}), a.data_as<T>(), s.m, s.k, alpha, beta, plain, t);
  } else {
    using T = __half;
    if (f32_out) launch(weights_of<T, float>(outs, weights, {}, {}), a.data_as<T>(), s.m, s.k, alpha, beta, plain, t);
    else launch(weights_of<T, T>(outs, weights, {}, {}), a.data_as<T>(), s.m, s.k, alpha, beta, plain, t);
  }
  check_launch();
}

void gemv_rows_many(std::span<const Tensor> outs, const Tensor& a, std::span<const Tensor> weights,
                    std::span<const Tensor> biases, int64_t m, int64_t k, const InputNorm& norm,
                    std::span<const Tensor> residuals) {
  const Target t = target_of(a);
  const auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const Weights<T, T> ws = weights_of<T, T>(outs, weights, biases, residuals);
    with_input<T>(norm, [&](const auto& input) { launch(ws, a.data_as<T>(), m, k, 1.0f, 0.0f, input, t); });
  };
  if (a.dtype() == DType::BF16) run(static_cast<__nv_bfloat16*>(nullptr));
  else run(static_cast<__half*>(nullptr));
  check_launch();
}

void gemv_rows_swiglu(const Tensor& out, const Tensor& a, const Tensor& gate, const Tensor& up, int64_t m, int64_t k,
                      const InputNorm& norm) {
  if (gate.size(0) > INT32_MAX) throw Error("gemv: more than 2^31 weight rows in one launch");
  const Target t = target_of(a);
  const auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    with_input<T>(norm, [&](const auto& input) { swiglu_rows<T>(out, a, gate, up, m, k, input, t); });
  };
  if (a.dtype() == DType::BF16) run(static_cast<__nv_bfloat16*>(nullptr));
  else run(static_cast<__half*>(nullptr));
  check_launch();
}

}  // namespace tessera::cuda
