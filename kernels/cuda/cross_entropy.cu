// CUDA row-wise softmax cross-entropy: one block per row. One pass keeps a running (max, sum of
// exp) per thread, combined across the block into logsumexp; a second pass writes the gradient,
// in any floating dtype (the lm head's backward gemms take it in the model's dtype, so no
// separate rounding pass). Both passes move packs of elements where the rows allow it.
// Labels other than -100 outside [0, V) trap (see kernels/cuda/embedding.cu).
#include <cmath>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.cuh"

namespace tessera::cuda {

namespace {

constexpr int64_t kIgnore = -100;

// (max, sum of exp(x - max)) of two parts of a row, for the part together.
__device__ __forceinline__ float2 combine_softmax(float2 a, float2 b) {
  const float m = fmaxf(a.x, b.x);
  if (m == -INFINITY) return a;  // both parts empty
  return {m, a.y * expf(a.x - m) + b.y * expf(b.x - m)};
}

// grad: null for the loss alone; may be logits itself.
template <typename T, typename G, typename Id, int kN>
__global__ void cross_entropy_kernel(float* loss, const T* logits, G* grad, const Id* labels, int64_t vocab,
                                     float grad_scale) {
  const T* row = logits + blockIdx.x * vocab;
  G* grad_row = grad ? grad + blockIdx.x * vocab : nullptr;
  const int64_t label = static_cast<int64_t>(labels[blockIdx.x]);
  const int64_t stride = int64_t(blockDim.x) * kN;
  if (label == kIgnore) {
    if (threadIdx.x == 0) loss[blockIdx.x] = 0.0f;
    const float zeros[kN] = {};
    if (grad_row)
      for (int64_t v = threadIdx.x * kN; v < vocab; v += stride) store_f32<kN>(grad_row + v, zeros);
    return;
  }
  if (label < 0 || label >= vocab) __trap();
  const float target = to_f32(row[label]);  // read before the gradient pass may overwrite it
  float2 part{-INFINITY, 0.0f};
  for (int64_t v = threadIdx.x * kN; v < vocab; v += stride) {
    float x[kN];
    load_f32<kN>(x, row + v);
    float top = x[0];
#pragma unroll
    for (int i = 1; i < kN; ++i) top = fmaxf(top, x[i]);
    if (top == -INFINITY) continue;
    if (top > part.x) {
      part.y *= expf(part.x - top);
      part.x = top;
    }
#pragma unroll
    for (int i = 0; i < kN; ++i) part.y += expf(x[i] - part.x);
  }
  const float2 total = block_reduce(part, float2{-INFINITY, 0.0f}, combine_softmax);  // every target read
  const float lse = total.x + logf(total.y);
  if (threadIdx.x == 0) loss[blockIdx.x] = lse - target;
  if (!grad_row) return;
  for (int64_t v = threadIdx.x * kN; v < vocab; v += stride) {
    float x[kN];
    load_f32<kN>(x, row + v);
#pragma unroll
    for (int i = 0; i < kN; ++i) x[i] = (expf(x[i] - lse) - (v + i == label ? 1.0f : 0.0f)) * grad_scale;
    store_f32<kN>(grad_row + v, x);
  }
}

}  // namespace

void cross_entropy_rows(const Tensor& loss, const Tensor& logits, const Tensor& labels, float grad_scale,
                        const Tensor& grad) {
  const int64_t vocab = logits.size(-1), rows = loss.numel();
  const int threads = static_cast<int>(std::min<int64_t>(512, (vocab + 31) / 32 * 32));
  dispatch_floating(logits.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    dispatch_floating(grad.defined() ? grad.dtype() : logits.dtype(), [&](auto* grad_tag) {
      using G = std::remove_pointer_t<decltype(grad_tag)>;
      dispatch_index(labels.dtype(), [&](auto* id_tag) {
        using Id = std::remove_pointer_t<decltype(id_tag)>;
        const T* z = logits.data_as<T>();
        G* g = grad.defined() ? grad.data_as<G>() : nullptr;
        auto launch = [&](auto width) {
          cross_entropy_kernel<T, G, Id, decltype(width)::value><<<rows, threads, 0, stream_of(logits)>>>(
              loss.data_as<float>(), z, g, labels.data_as<Id>(), vocab, grad_scale);
        };
        // Every row starts aligned when the first does and a row is a whole number of packs.
        if (vocab % kPack == 0 && packs_aligned(z, g))
          launch(Width<kPack>{});
        else
          launch(Width<1>{});
      });
    });
  });
  check_launch();
}

}  // namespace tessera::cuda
