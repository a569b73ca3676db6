// Shared pieces of the CUDA kernels: dtype dispatch, fp32 load/store, launch sizes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/cuda_check.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace tessera::cuda {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }

// x rounded to T and back: where a bf16/f16 model (HF) rounds an intermediate, so do we.
template <typename T>
__device__ __forceinline__ float round_as(float x) { return to_f32(from_f32<T>(x)); }

// Calls fn with a null pointer of the C++ type matching a floating dtype.
template <typename Fn>
void dispatch_floating(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32: return fn(static_cast<float*>(nullptr));
    case DType::BF16: return fn(static_cast<__nv_bfloat16*>(nullptr));
    case DType::F16: return fn(static_cast<__half*>(nullptr));
    default: throw Error("CUDA kernel: expected a floating dtype, got " + std::string(dtype_name(dtype)));
  }
}

// Calls fn with a null pointer of the C++ type of an index dtype (token ids, labels).
template <typename Fn>
void dispatch_index(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::I32: return fn(static_cast<int32_t*>(nullptr));
    case DType::I64: return fn(static_cast<int64_t*>(nullptr));
    default: throw Error("CUDA kernel: expected int32 or int64 indices, got " + std::string(dtype_name(dtype)));
  }
}

inline cudaStream_t stream_of(const Tensor& t) { return current_stream(t.device().index); }

// Grid for a grid-stride loop over n elements: enough blocks to fill the GPU, no more.
inline unsigned grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 132 * 16)));
}

inline void check_launch() { TS_CUDA_CHECK(cudaGetLastError()); }

}  // namespace tessera::cuda
