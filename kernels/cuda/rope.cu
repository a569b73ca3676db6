// CUDA rotary embedding, in place: one block per token; its threads first take cos/sin of the
// token's D/2 angles into shared memory (precise sincosf: angles reach thousands of radians),
// then turn every head's pairs with them.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 128;

// Rounds as HF's `q * cos + rotate_half(q) * sin` does in x's dtype T (kernels/cpu/rope.cpp).
// y (null, or y_heads more heads of the same tokens) turns in the same pass as x.
template <typename T>
__global__ void rope_kernel(T* x, T* y, const int32_t* positions, const float* inv_freq, int heads, int y_heads,
                            int half, float attention_scaling, float sign) {
  extern __shared__ float table[];  // cos[half], then sin[half]
  wait_for_previous_kernel();
  let_next_kernel_start();
  float* cos_t = table;
  float* sin_t = table + half;
  const float position = static_cast<float>(positions[blockIdx.x]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float s, c;
    sincosf(position * inv_freq[i], &s, &c);
    cos_t[i] = round_as<T>(c * attention_scaling);
    sin_t[i] = sign * round_as<T>(s * attention_scaling);
  }
  __syncthreads();
  T* token = x + int64_t(blockIdx.x) * heads * 2 * half;
  T* y_token = y ? y + int64_t(blockIdx.x) * y_heads * 2 * half : nullptr;
  for (int p = threadIdx.x; p < (heads + y_heads) * half; p += blockDim.x) {  // 32-bit: a token's pairs are few
    const int h = p / half, i = p % half;
    T* row = h < heads ? token + h * 2 * half : y_token + (h - heads) * 2 * half;
    const float x1 = to_f32(row[i]), x2 = to_f32(row[i + half]), c = cos_t[i], s = sin_t[i];
    row[i] = from_f32<T>(round_as<T>(x1 * c) - round_as<T>(x2 * s));
    row[i + half] = from_f32<T>(round_as<T>(x2 * c) + round_as<T>(x1 * s));
  }
}

}  // namespace

void rope(const Tensor& x, const Tensor& y, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
          float sign) {
  const int64_t tokens = x.size(0);
  const int heads = static_cast<int>(x.size(1)), half = static_cast<int>(x.size(2) / 2);
  const int y_heads = y.defined() ? static_cast<int>(y.size(1)) : 0;
  const size_t shared = 2 * static_cast<size_t>(half) * sizeof(float);
  dispatch_floating(x.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    launch_kernel(rope_kernel<T>, tokens, kThreads, shared, stream_of(x), x.data_as<T>(),
                  y.defined() ? y.data_as<T>() : nullptr, positions.data_as<int32_t>(), inv_freq.data_as<float>(), heads,
                  y_heads, half, attention_scaling, sign);
  });
  check_launch();
}

}  // namespace tessera::cuda
