// PyTorch's silu and sigmoid formulas, shared by the SwiGLU kernels and the gemv's SwiGLU
// epilogue; expf rather than __expf to stay close to the CPU.
#pragma once

namespace tessera::cuda {

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }
__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

}  // namespace tessera::cuda
