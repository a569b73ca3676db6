// CUDA error checks that throw tessera::Error naming the failing call (CUDA sources only).
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

#define TS_CUDA_CHECK(call)                                                                   \
  do {                                                                                        \
    cudaError_t ts_err_ = (call);                                                             \
    if (ts_err_ != cudaSuccess)                                                               \
      ::tessera::fail_call("CUDA", #call, __FILE__, __LINE__, cudaGetErrorString(ts_err_));   \
  } while (0)
