// CUDA paged_kv_write: one block per new token copies its key and value rows into their cache slot,
// 16 bytes at a time where the rows allow. Slots are not checked on the host (that would need a
// sync); a slot outside the cache traps (see embedding.cu). Slot -1 marks a padding row (a
// decode step padded to its CUDA graph's batch size): not written.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 128;

// Word: the unit of the copy (uint4 when a row is a multiple of 16 bytes, else the element).
template <typename Word>
__global__ void paged_kv_write_kernel(const Word* k, const Word* v, const int32_t* slots, Word* k_cache,
                                      Word* v_cache, int64_t slot_count, int64_t row_words) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const int64_t slot = slots[blockIdx.x];
  if (slot == -1) return;  // a padding row
  if (slot < 0 || slot >= slot_count) __trap();
  const Word* k_src = k + blockIdx.x * row_words;
  const Word* v_src = v + blockIdx.x * row_words;
  Word* k_dst = k_cache + slot * row_words;
  Word* v_dst = v_cache + slot * row_words;
  for (int64_t i = threadIdx.x; i < row_words; i += blockDim.x) {
    k_dst[i] = k_src[i];
    v_dst[i] = v_src[i];
  }
}

template <typename Word>
void launch(const Tensor& k, const Tensor& v, const Tensor& slots, const Tensor& k_cache, const Tensor& v_cache,
            const PagedShape& s, size_t row_bytes) {
  launch_kernel(paged_kv_write_kernel<Word>, static_cast<unsigned>(s.tokens), kThreads, 0, stream_of(k_cache),
      static_cast<const Word*>(k.data()), static_cast<const Word*>(v.data()), slots.data_as<int32_t>(),
      static_cast<Word*>(k_cache.data()), static_cast<Word*>(v_cache.data()), s.slots(),
      static_cast<int64_t>(row_bytes / sizeof(Word)));
}

}  // namespace

void paged_kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, const Tensor& k_cache,
                    const Tensor& v_cache, const PagedShape& s) {
  const size_t row_bytes = static_cast<size_t>(s.hkv * s.d) * dtype_size(k.dtype());
  auto aligned = [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data()) % 16 == 0; };
  if (row_bytes % 16 == 0 && aligned(k) && aligned(v) && aligned(k_cache) && aligned(v_cache))
    launch<uint4>(k, v, slots, k_cache, v_cache, s, row_bytes);
  else if (dtype_size(k.dtype()) == 4)
    launch<uint32_t>(k, v, slots, k_cache, v_cache, s, row_bytes);
  else
    launch<uint16_t>(k, v, slots, k_cache, v_cache, s, row_bytes);
  check_launch();
}

}  // namespace tessera::cuda
