// Entry points of CUDA attention: pick the tensor-core kernels where they apply (bf16/f16,
// supported head dim, 16-byte aligned rows), the simple row kernels otherwise.
#include <climits>
#include <string>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/kernel_variant.h"

namespace tessera::cuda {

namespace {

// delta[b, h, i] = sum_d dout[b, i, h, d] * out[b, i, h, d]: one warp per query row.
template <typename T>
__global__ void delta_kernel(attn::Params p, float* delta) {
  const int64_t rows = p.b * p.s * p.hq;
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  if (warp >= rows) return;
  const int lane = threadIdx.x % 32;
  const T* dout = static_cast<const T*>(p.dout) + warp * p.d;
  const T* out = static_cast<const T*>(p.out) + warp * p.d;
  float sum = 0.0f;
  for (int64_t d = lane; d < p.d; d += 32) sum += to_f32(dout[d]) * to_f32(out[d]);
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  // warp enumerates [b, i, h] rows; delta is laid out [b, h, i]
  const int64_t h = warp % p.hq, i = (warp / p.hq) % p.s, b = warp / (p.hq * p.s);
  if (lane == 0) delta[(b * p.hq + h) * p.s + i] = sum;
}

// ranges[b, tile] = {min, max} of the segment ids of the tile's rows: one warp per tile.
__global__ void segment_ranges_kernel(const int32_t* segments, int32_t* ranges, int64_t batch, int64_t s,
                                      int64_t tiles) {
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  if (warp >= batch * tiles) return;
  const int lane = threadIdx.x % 32;
  const int64_t b = warp / tiles, row0 = (warp % tiles) * attn::kTile;
  int32_t lo = INT_MAX, hi = INT_MIN;
  for (int r = lane; r < attn::kTile; r += 32) {
    if (row0 + r >= s) break;
    const int32_t id = segments[b * s + row0 + r];
    lo = min(lo, id);
    hi = max(hi, id);
  }
  for (int o = 16; o > 0; o /= 2) {
    lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, o));
    hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, o));
  }
  if (lane == 0) {
    ranges[warp * 2] = lo;
    ranges[warp * 2 + 1] = hi;
  }
}

// Tile ranges of the segment ids for the tensor-core kernels to skip pairs of tiles that share
// no document; an undefined tensor without segment ids. The caller holds it until the kernels that
// read it are queued (the allocator is stream-ordered).
Tensor segment_ranges(attn::Params& p, const Tensor& segment_ids, cudaStream_t stream) {
  if (!segment_ids.defined()) return Tensor();
  const int64_t tiles = (p.s + attn::kTile - 1) / attn::kTile;
  Tensor ranges = Tensor::empty({p.b, tiles, 2}, DType::I32, segment_ids.device());
  const int64_t threads = p.b * tiles * 32;
  segment_ranges_kernel<<<unsigned((threads + 255) / 256), 256, 0, stream>>>(p.segments, ranges.data_as<int32_t>(),
                                                                             p.b, p.s, tiles);
  check_launch();
  p.segment_ranges = ranges.data_as<int32_t>();
  return ranges;
}

// The documents of packed rows (ops::document_bounds) and the heaviest-first order of the CTAs'
// blocks (query blocks, or key blocks by_keys) for the Hopper variants that bound their tiles by
// them; undefined without segment ids. The caller holds them until the kernels are queued.
struct Documents {
  Tensor bounds, order;
};
Documents documents(attn::Params& p, const Tensor& segment_ids, bool by_keys, cudaStream_t stream) {
  if (!segment_ids.defined()) return {};
  Documents docs{Tensor::empty({2, p.b, p.s}, DType::I32, segment_ids.device()), Tensor()};
  document_bounds(docs.bounds, segment_ids);
  docs.order = attn::heaviest_first(docs.bounds, by_keys, stream);
  p.doc_bounds = docs.bounds.data_as<int32_t>();
  p.order = docs.order.data_as<int32_t>();
  return docs;
}

attn::Params params(const Tensor& q, const Tensor& k, const Tensor& v, float scale, const Tensor& segment_ids,
                    const AttentionShape& s) {
  attn::Params p;
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.segments = segment_ids.defined() ? segment_ids.data_as<int32_t>() : nullptr;
  p.b = s.b;
  p.s = s.s;
  p.hq = s.hq;
  p.hkv = s.hkv;
  p.d = s.d;
  p.group = s.group();
  p.scale = scale;
  return p;
}

bool aligned(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data()) % 16 == 0; }

bool use_tensor_cores(const AttentionShape& s, DType dtype, std::initializer_list<const Tensor*> tensors) {
  if ((dtype != DType::BF16 && dtype != DType::F16) || !attn::flash_supports(s.d)) return false;
  for (const Tensor* t : tensors)
    if (!aligned(*t)) return false;
  return true;
}

}  // namespace

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       float softmax_scale, const Tensor& segment_ids, const AttentionShape& s) {
  const int variant = kernel_variant("TESSERA_ATTN_FWD", kAttentionForwardVariants, kAttentionForwardDefault);
  attn::Params p = params(q, k, v, softmax_scale, segment_ids, s);
  p.out = out.data();
  p.lse = lse.data_as<float>();
  cudaStream_t stream = stream_of(q);
  if (use_tensor_cores(s, q.dtype(), {&q, &k, &v, &out})) {
    const bool bounds = attn::sm90_supports(s.d) && attn::forward_uses_document_bounds(variant);
    const Tensor ranges = bounds ? Tensor() : segment_ranges(p, segment_ids, stream);
    const Documents docs = bounds ? documents(p, segment_ids, false, stream) : Documents{};
    if (attn::sm90_supports(s.d))
      attn::sm90_forward(p, q.dtype(), stream, variant);
    else
      attn::flash_forward(p, q.dtype(), stream);
  } else {
    attn::rows_forward(p, q.dtype(), stream);
  }
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, float softmax_scale,
                        const Tensor& segment_ids, const AttentionShape& s) {
  const int variant = kernel_variant("TESSERA_ATTN_BWD", kAttentionBackwardVariants, kAttentionBackwardDefault);
  attn::Params p = params(q, k, v, softmax_scale, segment_ids, s);
  p.out = out.data();
  p.dout = dout.data();
  p.dq = dq.data();
  p.dk = dk.data();
  p.dv = dv.data();
  p.lse_in = lse.data_as<float>();
  cudaStream_t stream = stream_of(q);

  Tensor delta = Tensor::empty({s.b, s.hq, s.s}, DType::F32, q.device());
  p.delta = delta.data_as<float>();
  const int64_t threads = s.b * s.s * s.hq * 32;
  dispatch_floating(q.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    delta_kernel<T><<<unsigned((threads + 255) / 256), 256, 0, stream>>>(p, delta.data_as<float>());
  });
  check_launch();

  if (use_tensor_cores(s, q.dtype(), {&q, &k, &v, &dout, &dk, &dv})) {
    Tensor dq_accum = Tensor::empty(q.shape(), DType::F32, q.device());
    TS_CUDA_CHECK(cudaMemsetAsync(dq_accum.data(), 0, dq_accum.nbytes(), stream));
    p.dq_accum = dq_accum.data_as<float>();
    const bool bounds = attn::sm90_supports(s.d) && attn::backward_uses_document_bounds(variant);
    const Tensor ranges = bounds ? Tensor() : segment_ranges(p, segment_ids, stream);
    const Documents docs = bounds ? documents(p, segment_ids, true, stream) : Documents{};
    if (attn::sm90_supports(s.d))
      attn::sm90_backward(p, q.dtype(), stream, variant);
    else
      attn::flash_backward(p, q.dtype(), stream);
    copy(dq, dq_accum);  // cast to dq's dtype
  } else {
    attn::rows_backward(p, q.dtype(), stream);
  }
}

}  // namespace tessera::cuda
