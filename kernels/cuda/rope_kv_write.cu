// CUDA rope_kv_write: one block per token. Its threads take cos/sin of the token's D/2 angles into
// shared memory, then each warp takes whole head rows of q and k (kernels/cuda/rope_rows.cuh):
// the RMSNorm of the row (Qwen3: its sum of squares by shuffles), the rotation of its pairs in
// place, and for k the rotated row into the cache slot too; then the block copies v's row into
// its slot. q, k and v are three tensors or one stacked projection's rows (stacked_rows.h). A slot outside the cache traps (see embedding.cu); -1 (a padding row) is not written.
#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/rope_rows.cuh"
#include "kernels/cuda/stacked_rows.h"

namespace tessera::cuda {

namespace {

constexpr int kMaxThreads = 256;

// q_norm and k_norm: null without Qwen3's q/k norms.
template <typename T, typename W>
__global__ void rope_kv_write_kernel(T* q, T* k, const T* v, const int32_t* positions, const float* inv_freq,
                                     const W* q_norm, const W* k_norm, float eps, const int32_t* slots, T* k_cache,
                                     T* v_cache, int hq, int hkv, int half, float attention_scaling,
                                     int64_t slot_count, int64_t q_row, int64_t kv_row) {
  extern __shared__ float table[];  // cos[half], then sin[half]
  wait_for_previous_kernel();
  let_next_kernel_start();
  const int d = 2 * half, token = blockIdx.x;
  const int64_t slot = slots[token];
  if (slot < -1 || slot >= slot_count) __trap();
  float* cos_t = table;
  float* sin_t = table + half;
  rope_angles<T>(static_cast<float>(positions[token]), inv_freq, attention_scaling, half, cos_t, sin_t);
  __syncthreads();
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  T* k_slot = slot >= 0 ? k_cache + slot * hkv * d : nullptr;
  for (int h = warp; h < hq + hkv; h += warps) {
    const bool is_k = h >= hq;
    T* row = is_k ? k + token * kv_row + int64_t(h - hq) * d : q + token * q_row + int64_t(h) * d;
    T* cached = is_k && k_slot ? k_slot + (h - hq) * d : nullptr;
    norm_rope_row(row, is_k ? k_norm : q_norm, eps, cos_t, sin_t, half, [&](int i, T y1, T y2) {
      row[i] = y1;
      row[i + half] = y2;
      if (cached) {
        cached[i] = y1;
        cached[i + half] = y2;
      }
    });
  }
  if (slot < 0) return;
  const T* v_row = v + token * kv_row;
  T* v_slot = v_cache + slot * hkv * d;
  for (int j = threadIdx.x; j < hkv * d; j += blockDim.x) v_slot[j] = v_row[j];
}

template <typename T, typename W>
void launch(const QkvRows& r, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
            const Tensor& q_norm, const Tensor& k_norm, float eps, const Tensor& slots, const Tensor& k_cache,
            const Tensor& v_cache, const PagedShape& s) {
  const int half = static_cast<int>(s.d / 2), rows = static_cast<int>(s.hq + s.hkv);
  const int threads = std::min(kMaxThreads, rows * 32);
  const size_t shared = 2 * static_cast<size_t>(half) * sizeof(float);
  launch_kernel(rope_kv_write_kernel<T, W>, static_cast<unsigned>(s.tokens), threads, shared, stream_of(k_cache),
                static_cast<T*>(r.q), static_cast<T*>(r.k), static_cast<const T*>(r.v), positions.data_as<int32_t>(),
                inv_freq.data_as<float>(), q_norm.defined() ? q_norm.data_as<W>() : nullptr,
                k_norm.defined() ? k_norm.data_as<W>() : nullptr, eps, slots.data_as<int32_t>(), k_cache.data_as<T>(),
                v_cache.data_as<T>(), static_cast<int>(s.hq), static_cast<int>(s.hkv), half, attention_scaling,
                s.slots(), r.q_row, r.kv_row);
}

}  // namespace

QkvRows separate_qkv_rows(const Tensor& q, const Tensor& k, const Tensor& v, const PagedShape& s) {
  return {q.data(), k.data(), v.data(), s.hq * s.d, s.hkv * s.d};
}

QkvRows stacked_qkv_rows(const Tensor& qkv, const PagedShape& s) {
  char* base = static_cast<char*>(qkv.data());
  const int64_t bytes = static_cast<int64_t>(dtype_size(qkv.dtype())), row = (s.hq + 2 * s.hkv) * s.d;
  return {base, base + s.hq * s.d * bytes, base + (s.hq + s.hkv) * s.d * bytes, row, row};
}

void rope_kv_write_rows(const QkvRows& r, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
                        const Tensor& q_norm, const Tensor& k_norm, float eps, const Tensor& slots,
                        const Tensor& k_cache, const Tensor& v_cache, const PagedShape& s) {
  if (s.hq + s.hkv > INT32_MAX / 32 || s.hkv * s.d > INT32_MAX)
    throw Error("rope_kv_write: " + k_cache.str() + " has too many heads for the kernel");
  dispatch_floating(k_cache.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (q_norm.defined() && q_norm.dtype() == DType::F32 && k_cache.dtype() != DType::F32)
      launch<T, float>(r, positions, inv_freq, attention_scaling, q_norm, k_norm, eps, slots, k_cache, v_cache, s);
    else
      launch<T, T>(r, positions, inv_freq, attention_scaling, q_norm, k_norm, eps, slots, k_cache, v_cache, s);
  });
  check_launch();
}

void rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions, const Tensor& inv_freq,
                   float attention_scaling, const Tensor& q_norm, const Tensor& k_norm, float eps, const Tensor& slots,
                   const Tensor& k_cache, const Tensor& v_cache, const PagedShape& s) {
  rope_kv_write_rows(separate_qkv_rows(q, k, v, s), positions, inv_freq, attention_scaling, q_norm, k_norm, eps, slots,
                     k_cache, v_cache, s);
}

}  // namespace tessera::cuda
