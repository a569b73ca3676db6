// TS_HOST_DEVICE marks inline functions compiled for both the host and CUDA devices, so the CPU
// reference and the CUDA kernels share one definition where they must agree bit for bit.
#pragma once

#if defined(__CUDACC__)
#define TS_HOST_DEVICE __host__ __device__
#else
#define TS_HOST_DEVICE
#endif
