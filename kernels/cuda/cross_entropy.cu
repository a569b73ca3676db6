// CUDA row-wise softmax cross-entropy: one block per row. One pass keeps a running (max, sum of
// exp) per thread, combined across the block into logsumexp; a second pass writes the gradient
// over the logits. Labels other than -100 outside [0, V) trap (see kernels/cuda/embedding.cu).
#include <cmath>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int64_t kIgnore = -100;

// (max, sum of exp(x - max)) of two parts of a row, for the part together.
__device__ __forceinline__ float2 combine_softmax(float2 a, float2 b) {
  const float m = fmaxf(a.x, b.x);
  if (m == -INFINITY) return a;  // both parts empty
  return {m, a.y * expf(a.x - m) + b.y * expf(b.x - m)};
}

template <typename T, typename Id>
__global__ void cross_entropy_kernel(float* loss, T* logits, const Id* labels, int64_t vocab, float grad_scale,
                                     bool write_grad) {
  T* row = logits + blockIdx.x * vocab;
  const int64_t label = static_cast<int64_t>(labels[blockIdx.x]);
  if (label == kIgnore) {
    if (threadIdx.x == 0) loss[blockIdx.x] = 0.0f;
    if (write_grad)
      for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) row[v] = from_f32<T>(0.0f);
    return;
  }
  if (label < 0 || label >= vocab) __trap();
  const float target = to_f32(row[label]);  // read before the gradient pass overwrites it
  float2 part{-INFINITY, 0.0f};
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
    const float x = to_f32(row[v]);
    if (x > part.x) {
      part.y = part.y * expf(part.x - x) + 1.0f;
      part.x = x;
    } else {
      part.y += expf(x - part.x);
    }
  }
  const float2 total = block_reduce(part, float2{-INFINITY, 0.0f}, combine_softmax);
  const float lse = total.x + logf(total.y);
  if (threadIdx.x == 0) loss[blockIdx.x] = lse - target;
  if (!write_grad) return;
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x)
    row[v] = from_f32<T>((expf(to_f32(row[v]) - lse) - (v == label ? 1.0f : 0.0f)) * grad_scale);
}

}  // namespace

void cross_entropy_rows(const Tensor& loss, const Tensor& logits, const Tensor& labels, float grad_scale,
                        bool write_grad) {
  const int64_t vocab = logits.size(-1), rows = loss.numel();
  const int threads = static_cast<int>(std::min<int64_t>(512, (vocab + 31) / 32 * 32));
  dispatch_floating(logits.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    dispatch_index(labels.dtype(), [&](auto* id_tag) {
      using Id = std::remove_pointer_t<decltype(id_tag)>;
      cross_entropy_kernel<T, Id><<<rows, threads, 0, stream_of(logits)>>>(
          loss.data_as<float>(), logits.data_as<T>(), labels.data_as<Id>(), vocab, grad_scale, write_grad);
    });
  });
  check_launch();
}

}  // namespace tessera::cuda
