// RoPE of head rows (with Qwen3's per-head RMSNorm first), one warp per row: the device code that
// rope_kv_write and the decode attention with RoPE fused into it (paged_attention.cu) share, so
// that both round every value alike. Roundings are those of rmsnorm.cu and rope.cu.
#pragma once

#include "kernels/cuda/cuda_common.cuh"

namespace tessera::cuda {

// cos_t[i] and sin_t[i] (i < half) of position's angles, scaled and rounded to T as rope.cu
// does (precise sincosf); the block's threads share the work.
template <typename T>
__device__ __forceinline__ void rope_angles(float position, const float* inv_freq, float attention_scaling, int half,
                                            float* cos_t, float* sin_t) {
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float s, c;
    sincosf(position * inv_freq[i], &s, &c);
    cos_t[i] = round_as<T>(c * attention_scaling);
    sin_t[i] = round_as<T>(s * attention_scaling);
  }
}

// The calling warp's head row of 2 * half values: RMS-normed and scaled by w when w is not null,
// then each pair (i, i + half) turned by the angles; emit(i, y1, y2) takes each turned pair. Every
// lane reads its pairs before emit, so emit may write them back in place.
template <typename T, typename W, typename Emit>
__device__ __forceinline__ void norm_rope_row(const T* row, const W* w, float eps, const float* cos_t,
                                              const float* sin_t, int half, Emit&& emit) {
  const int lane = threadIdx.x % 32, d = 2 * half;
  float r = 0.0f;
  if (w) {
    float squares = 0.0f;
    for (int j = lane; j < d; j += 32) {
      const float x = to_f32(row[j]);
      squares += x * x;
    }
    for (int mask = 16; mask > 0; mask /= 2) squares += __shfl_xor_sync(0xffffffffu, squares, mask);
    r = rsqrtf(squares / static_cast<float>(d) + eps);
  }
  for (int i = lane; i < half; i += 32) {
    float x1 = to_f32(row[i]), x2 = to_f32(row[i + half]);
    if (w) {
      x1 = round_as<T>(round_as<T>(x1 * r) * to_f32(w[i]));
      x2 = round_as<T>(round_as<T>(x2 * r) * to_f32(w[i + half]));
    }
    const float c = cos_t[i], s = sin_t[i];
    emit(i, from_f32<T>(round_as<T>(x1 * c) - round_as<T>(x2 * s)),
         from_f32<T>(round_as<T>(x2 * c) + round_as<T>(x1 * s)));
  }
}

}  // namespace tessera::cuda
