// CUDA RMSNorm: one block per row for the forward and dx (block reductions, fp32 math; the gemv's
// norm prologue, rmsnorm_row.cuh, plays the forward's block and must follow any change); dweight
// by a column kernel whose threads each sum one column over a slice of the rows, then add it in
// with one atomic. Roundings to the activation dtype follow HF (see kernels/ops.h).
#include <algorithm>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/rmsnorm_row.cuh"

namespace tessera::cuda {

namespace {

constexpr int kColumnThreads = 128;

template <typename T, typename W>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* x, const W* weight, int64_t d, float eps) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const T* xr = x + blockIdx.x * d;
  T* yr = out + blockIdx.x * d;
  float squares = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float v = to_f32(xr[j]);
    squares += v * v;
  }
  const float r = rsqrtf(block_sum(squares) / static_cast<float>(d) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    yr[j] = from_f32<T>(round_as<T>(to_f32(xr[j]) * r) * to_f32(weight[j]));
}

// sum = round_T(a + b) (as the add kernel), then the forward above on sum with the same threads
// and order of additions, so that the two ops' results are equal bit for bit. Each thread reads
// and writes only its own elements: sum may alias a or b.
template <typename T, typename W>
__global__ void add_rmsnorm_forward_kernel(T* sum, T* out, float* rstd, const T* a, const T* b, const W* weight,
                                           int64_t d, float eps) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const int64_t base = blockIdx.x * d;
  float squares = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const T s = from_f32<T>(to_f32(a[base + j]) + to_f32(b[base + j]));
    sum[base + j] = s;
    const float v = to_f32(s);
    squares += v * v;
  }
  const float r = rsqrtf(block_sum(squares) / static_cast<float>(d) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    out[base + j] = from_f32<T>(round_as<T>(to_f32(sum[base + j]) * r) * to_f32(weight[j]));
}

// dx = r * (dn - x * r^2 * mean(dn * x)) with dn = dy * w rounded to the product's dtype (W).
template <typename T, typename W>
__global__ void rmsnorm_dx_kernel(T* dx, const T* dout, const T* x, const W* weight, const float* rstd, int64_t d) {
  const int64_t base = blockIdx.x * d;
  const float r = rstd[blockIdx.x];
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    dot += round_as<W>(to_f32(dout[base + j]) * to_f32(weight[j])) * to_f32(x[base + j]);
  const float c = block_sum(dot) / static_cast<float>(d) * r * r;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    const float dn = round_as<W>(to_f32(dout[base + j]) * to_f32(weight[j]));
    dx[base + j] = from_f32<T>(r * (dn - to_f32(x[base + j]) * c));
  }
}

// dweight[j] += sum over rows n of dy[n, j] * round_T(x[n, j] * rstd[n]); blockIdx.y picks the
// rows n = blockIdx.y, blockIdx.y + gridDim.y, ...
template <typename T>
__global__ void rmsnorm_dweight_kernel(float* dweight, const T* dout, const T* x, const float* rstd, int64_t rows,
                                       int64_t d) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= d) return;
  float sum = 0.0f;
  for (int64_t n = blockIdx.y; n < rows; n += gridDim.y)
    sum += to_f32(dout[n * d + j]) * round_as<T>(to_f32(x[n * d + j]) * rstd[n]);
  atomicAdd(dweight + j, sum);
}

// Calls fn with null pointers of the activation type T and the weight type W (T or float).
template <typename Fn>
void dispatch_norm(const Tensor& x, const Tensor& weight, Fn&& fn) {
  dispatch_floating(x.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (weight.dtype() == DType::F32)
      fn(tag, static_cast<float*>(nullptr));
    else
      fn(tag, tag);
  });
}

}  // namespace

void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  dispatch_norm(x, weight, [&](auto* t_tag, auto* w_tag) {
    using T = std::remove_pointer_t<decltype(t_tag)>;
    using W = std::remove_pointer_t<decltype(w_tag)>;
    launch_kernel(rmsnorm_forward_kernel<T, W>, rows, rmsnorm_row_threads(d), 0, stream_of(x), out.data_as<T>(),
                  rstd.data_as<float>(), x.data_as<T>(), weight.data_as<W>(), d, eps);
  });
  check_launch();
}

void add_rmsnorm_forward(const Tensor& sum, const Tensor& out, const Tensor& rstd, const Tensor& a, const Tensor& b,
                         const Tensor& weight, float eps) {
  const int64_t d = a.size(-1), rows = a.numel() / d;
  dispatch_norm(a, weight, [&](auto* t_tag, auto* w_tag) {
    using T = std::remove_pointer_t<decltype(t_tag)>;
    using W = std::remove_pointer_t<decltype(w_tag)>;
    launch_kernel(add_rmsnorm_forward_kernel<T, W>, rows, rmsnorm_row_threads(d), 0, stream_of(a), sum.data_as<T>(),
                  out.data_as<T>(), rstd.data_as<float>(), a.data_as<T>(), b.data_as<T>(), weight.data_as<W>(), d, eps);
  });
  check_launch();
}

void rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout, const Tensor& x,
                      const Tensor& weight, const Tensor& rstd) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  cudaStream_t stream = stream_of(x);
  const unsigned column_blocks = static_cast<unsigned>((d + kColumnThreads - 1) / kColumnThreads);
  // About eight blocks per SM of an H100 in all.
  const unsigned row_slices = static_cast<unsigned>(std::clamp<int64_t>(1056 / column_blocks, 1, rows));
  dispatch_norm(x, weight, [&](auto* t_tag, auto* w_tag) {
    using T = std::remove_pointer_t<decltype(t_tag)>;
    using W = std::remove_pointer_t<decltype(w_tag)>;
    rmsnorm_dx_kernel<T, W><<<rows, rmsnorm_row_threads(d), 0, stream>>>(dx.data_as<T>(), dout.data_as<T>(), x.data_as<T>(),
                                                                weight.data_as<W>(), rstd.data_as<float>(), d);
    check_launch();
    if (!dweight.defined()) return;  // a frozen weight
    rmsnorm_dweight_kernel<T><<<dim3(column_blocks, row_slices), kColumnThreads, 0, stream>>>(
        dweight.data_as<float>(), dout.data_as<T>(), x.data_as<T>(), rstd.data_as<float>(), rows, d);
  });
  check_launch();
}

}  // namespace tessera::cuda
