// The simple attention path: one CTA per query row (forward, dq) or key row (dk, dv), its 128
// threads taking one key (query) each per chunk, online softmax across chunks. Any floating
// dtype and head dims up to 256; the reference for f32 inputs and unusual head dims.
#include "kernels/cuda/attention_common.cuh"

namespace tessera::cuda::attn {

namespace {

constexpr int kThreads = 128;
constexpr int kMaxDim = 256;
constexpr int kDimsPerThread = kMaxDim / kThreads;

__device__ __forceinline__ float block_reduce(float x, float* red, bool is_max) {
  for (int o = 16; o > 0; o /= 2) {
    const float y = __shfl_xor_sync(0xffffffffu, x, o);
    x = is_max ? fmaxf(x, y) : x + y;
  }
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = x;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < kThreads / 32; ++w) r = is_max ? fmaxf(r, red[w]) : r + red[w];
  __syncthreads();  // red is reused by the next call
  return r;
}

template <typename T>
__device__ float dot_row(const float* a, const T* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t d = 0; d < n; ++d) sum += a[d] * to_f32(b[d]);
  return sum;
}

// grid (s, hq, b). smem: q row (f32, prescaled to base 2) and one chunk of probabilities.
template <typename T>
__global__ void __launch_bounds__(kThreads) forward_kernel(Params p) {
  extern __shared__ float smem[];
  float* qs = smem;
  float* probs = smem + p.d;
  __shared__ float red[kThreads / 32];
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / p.group;
  const T* q = static_cast<const T*>(p.q) + p.q_offset(b, i, h);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  for (int64_t d = threadIdx.x; d < p.d; d += kThreads) qs[d] = to_f32(q[d]) * p.scale * kLog2e;
  __syncthreads();
  const int32_t seg_i = p.segment(b, i);
  float m = -INFINITY, l = 0.0f, acc[kDimsPerThread] = {};
  for (int64_t j0 = 0; j0 <= i; j0 += kThreads) {
    const int64_t j = j0 + threadIdx.x;
    float x = -INFINITY;
    if (j <= i && sees(i, j, seg_i, p.segment(b, j))) x = dot_row(qs, k + p.kv_offset(b, j, kvh), p.d);
    const float m_new = fmaxf(m, block_reduce(x, red, true));
    const float shift = m_new == -INFINITY ? 0.0f : m_new;  // a fully masked chunk so far
    const float e = exp2f(x - shift);
    probs[threadIdx.x] = e;
    const float alpha = exp2f(m - shift);
    l = l * alpha + block_reduce(e, red, false);  // its barrier also publishes probs
    m = m_new;
    const int64_t n = min(int64_t(kThreads), i + 1 - j0);
    for (int r = 0; r < kDimsPerThread; ++r) {
      const int64_t d = threadIdx.x + r * kThreads;
      if (d >= p.d) break;
      float a = acc[r] * alpha;
      for (int64_t jj = 0; jj < n; ++jj) a += probs[jj] * to_f32(v[p.kv_offset(b, j0 + jj, kvh) + d]);
      acc[r] = a;
    }
    __syncthreads();  // probs is rewritten by the next chunk
  }
  T* out = static_cast<T*>(p.out) + p.q_offset(b, i, h);
  for (int r = 0; r < kDimsPerThread; ++r) {
    const int64_t d = threadIdx.x + r * kThreads;
    if (d < p.d) out[d] = from_f32<T>(acc[r] / l);
  }
  if (threadIdx.x == 0) p.lse[p.row_offset(b, h, i)] = (m + log2f(l)) * kLn2;
}

// dq for one query row: dq = scale * sum_j dS_ij k_j. grid (s, hq, b).
template <typename T>
__global__ void __launch_bounds__(kThreads) dq_kernel(Params p) {
  extern __shared__ float smem[];
  float* qs = smem;
  float* dos = smem + p.d;
  float* ds = smem + 2 * p.d;
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / p.group;
  const T* q = static_cast<const T*>(p.q) + p.q_offset(b, i, h);
  const T* dout = static_cast<const T*>(p.dout) + p.q_offset(b, i, h);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  for (int64_t d = threadIdx.x; d < p.d; d += kThreads) {
    qs[d] = to_f32(q[d]) * p.scale * kLog2e;
    dos[d] = to_f32(dout[d]);
  }
  __syncthreads();
  const int32_t seg_i = p.segment(b, i);
  const float lse2 = p.lse_in[p.row_offset(b, h, i)] * kLog2e, delta = p.delta[p.row_offset(b, h, i)];
  float acc[kDimsPerThread] = {};
  for (int64_t j0 = 0; j0 <= i; j0 += kThreads) {
    const int64_t j = j0 + threadIdx.x;
    float g = 0.0f;
    if (j <= i && sees(i, j, seg_i, p.segment(b, j))) {
      const float prob = exp2f(dot_row(qs, k + p.kv_offset(b, j, kvh), p.d) - lse2);
      g = prob * (dot_row(dos, v + p.kv_offset(b, j, kvh), p.d) - delta);
    }
    ds[threadIdx.x] = g;
    __syncthreads();
    const int64_t n = min(int64_t(kThreads), i + 1 - j0);
    for (int r = 0; r < kDimsPerThread; ++r) {
      const int64_t d = threadIdx.x + r * kThreads;
      if (d >= p.d) break;
      for (int64_t jj = 0; jj < n; ++jj) acc[r] += ds[jj] * to_f32(k[p.kv_offset(b, j0 + jj, kvh) + d]);
    }
    __syncthreads();
  }
  T* dq = static_cast<T*>(p.dq) + p.q_offset(b, i, h);
  for (int r = 0; r < kDimsPerThread; ++r) {
    const int64_t d = threadIdx.x + r * kThreads;
    if (d < p.d) dq[d] = from_f32<T>(acc[r] * p.scale);
  }
}

// dk, dv for one key row, summed over the query heads of its group. grid (s, hkv, b).
template <typename T>
__global__ void __launch_bounds__(kThreads) dkv_kernel(Params p) {
  extern __shared__ float smem[];
  float* ks = smem;
  float* vs = smem + p.d;
  float* probs = smem + 2 * p.d;
  float* ds = probs + kThreads;
  const int64_t j = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const T* q = static_cast<const T*>(p.q);
  const T* dout = static_cast<const T*>(p.dout);
  for (int64_t d = threadIdx.x; d < p.d; d += kThreads) {
    ks[d] = to_f32(static_cast<const T*>(p.k)[p.kv_offset(b, j, kvh) + d]) * p.scale * kLog2e;
    vs[d] = to_f32(static_cast<const T*>(p.v)[p.kv_offset(b, j, kvh) + d]);
  }
  __syncthreads();
  const int32_t seg_j = p.segment(b, j);
  float dk[kDimsPerThread] = {}, dv[kDimsPerThread] = {};
  for (int64_t h = kvh * p.group; h < (kvh + 1) * p.group; ++h) {
    for (int64_t i0 = j; i0 < p.s; i0 += kThreads) {
      const int64_t i = i0 + threadIdx.x;
      float prob = 0.0f, g = 0.0f;
      if (i < p.s && sees(i, j, p.segment(b, i), seg_j)) {
        prob = exp2f(dot_row(ks, q + p.q_offset(b, i, h), p.d) - p.lse_in[p.row_offset(b, h, i)] * kLog2e);
        g = prob * (dot_row(vs, dout + p.q_offset(b, i, h), p.d) - p.delta[p.row_offset(b, h, i)]);
      }
      probs[threadIdx.x] = prob;
      ds[threadIdx.x] = g;
      __syncthreads();
      const int64_t n = min(int64_t(kThreads), p.s - i0);
      for (int r = 0; r < kDimsPerThread; ++r) {
        const int64_t d = threadIdx.x + r * kThreads;
        if (d >= p.d) break;
        for (int64_t ii = 0; ii < n; ++ii) {
          dv[r] += probs[ii] * to_f32(dout[p.q_offset(b, i0 + ii, h) + d]);
          dk[r] += ds[ii] * to_f32(q[p.q_offset(b, i0 + ii, h) + d]);
        }
      }
      __syncthreads();
    }
  }
  T* dk_out = static_cast<T*>(p.dk) + p.kv_offset(b, j, kvh);
  T* dv_out = static_cast<T*>(p.dv) + p.kv_offset(b, j, kvh);
  for (int r = 0; r < kDimsPerThread; ++r) {
    const int64_t d = threadIdx.x + r * kThreads;
    if (d >= p.d) break;
    dk_out[d] = from_f32<T>(dk[r] * p.scale);
    dv_out[d] = from_f32<T>(dv[r]);
  }
}

void check_dim(const Params& p) {
  if (p.d > kMaxDim)
    throw Error("attention: CUDA supports head dims up to " + std::to_string(kMaxDim) + ", got " +
                std::to_string(p.d));
}

}  // namespace

void rows_forward(const Params& p, DType dtype, cudaStream_t stream) {
  check_dim(p);
  const dim3 grid(p.s, p.hq, p.b);
  const size_t smem = (p.d + kThreads) * sizeof(float);
  dispatch_floating(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    forward_kernel<T><<<grid, kThreads, smem, stream>>>(p);
  });
  check_launch();
}

void rows_backward(const Params& p, DType dtype, cudaStream_t stream) {
  check_dim(p);
  dispatch_floating(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    dq_kernel<T><<<dim3(p.s, p.hq, p.b), kThreads, (2 * p.d + kThreads) * sizeof(float), stream>>>(p);
    dkv_kernel<T><<<dim3(p.s, p.hkv, p.b), kThreads, (2 * p.d + 2 * kThreads) * sizeof(float), stream>>>(p);
  });
  check_launch();
}

}  // namespace tessera::cuda::attn
