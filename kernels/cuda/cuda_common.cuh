// Shared pieces of the CUDA kernels: dtype dispatch, fp32 load/store, launch sizes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <string>

#include "core/cuda_check.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/launch_overlap.h"

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

// The device's number of SMs (asked once per device).
inline int sm_count(int device) {
  static std::array<int, 64> counts{};
  if (device < 0 || device >= int(counts.size()))
    throw Error("sm_count: CUDA device " + std::to_string(device) + " out of range");
  if (counts[device] == 0)
    TS_CUDA_CHECK(cudaDeviceGetAttribute(&counts[device], cudaDevAttrMultiProcessorCount, device));
  return counts[device];
}

// Programmatic dependent launch (kernels/launch_overlap.h). A kernel launched by launch_kernel
// calls wait_for_previous_kernel() before it reads or writes anything another kernel touches
// (it returns at once when the kernel was launched plainly), and lets the next kernel's blocks
// be scheduled (they wait in their turn) with let_next_kernel_start().
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void let_next_kernel_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, shared, stream>>>(args...), allowed to overlap the previous kernel on the
// stream inside an ops::LaunchOverlap scope that is on. Only for kernels that start with
// wait_for_previous_kernel() (or do nothing but read fixed weights before it).
template <typename... Params, typename... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
                   Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute overlap{};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  if (ops::LaunchOverlap::active()) {
    config.attrs = &overlap;
    config.numAttrs = 1;
  }
  TS_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(std::forward<Args>(args))...));
}

// A 16-byte load of data read once (a weight streamed by a gemv): not kept in L1.
__device__ __forceinline__ uint4 load_streaming(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

}  // namespace tessera::cuda
