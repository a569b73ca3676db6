// The input and output stages a small-M gemv may fold in so that a decode layer needs no separate
// norm or add launches: an RMSNorm prologue (the gemv takes the un-normed residual x and the norm
// weight; each block normalizes x's few rows into shared memory after its first weight loads are
// in flight) and a residual epilogue (out = residual + the product rounded). Both give bit for bit
// what rmsnorm_forward then the gemv, or the gemv then ops::add, give: the prologue plays the
// rmsnorm kernel's own block (rmsnorm_row_threads threads, its order of additions) with however
// many threads the gemv's block has. Used by gemv.cu; the packed gemvs may use it alike.
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rmsnorm_row.cuh"

namespace tessera::cuda {

// The prologue holds the normed rows (M x K of the activation dtype) and the norm weight in
// shared memory (rmsnorm_rows_shared_bytes): at most this much, which every sm_80+ GPU gives a block.
constexpr int64_t kNormMaxSharedBytes = 96 * 1024;

// A gemv's input stage: stage(a, shared, m, k) is called by every thread of the block once its
// first weight loads are in flight; it waits for the previous kernel (which may have written a)
// and returns the rows [m, k] the warps read. kShared: it needs the block's dynamic shared memory
// (shared_bytes of it) and synchronizes the block.

// A as it comes (read from global memory by each warp).
struct PlainInput {
  static constexpr bool kShared = false;
  static int64_t shared_bytes(int64_t, int64_t, int64_t) { return 0; }
  template <typename T>
  __device__ const T* stage(const T* a, T*, int, int) const {
    wait_for_previous_kernel();
    return a;
  }
};

// A RMS-normed first (rmsnorm_rows_to_shared); the warps then read it from shared memory.
// weight [k] is T or float.
template <typename W>
struct NormedInput {
  static constexpr bool kShared = true;
  static int64_t shared_bytes(int64_t m, int64_t k, int64_t element_bytes) {
    return rmsnorm_rows_shared_bytes(m, k, element_bytes);
  }
  const W* weight;
  float eps;
  template <typename T>
  __device__ const T* stage(const T* x, T* shared, int m, int k) const {
    rmsnorm_rows_to_shared(shared, x, weight, m, k, eps);
    return shared;
  }
};

// What a gemv stores at an output whose fp32 value (alpha sum + beta C + bias) is y: y rounded
// to C's dtype, or with a residual (defined), residual + that rounded product, rounded: exactly
// the plain gemv's output then ops::add (or add_rmsnorm_forward's sum).
template <typename C>
__device__ __forceinline__ C gemv_output(float y, const C* residual, int64_t at) {
  if (!residual) return from_f32<C>(y);
  return from_f32<C>(to_f32(residual[at]) + round_as<C>(y));
}

}  // namespace tessera::cuda
