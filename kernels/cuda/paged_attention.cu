// CUDA paged_attention (flash-decoding over a paged KV cache).
//
// One CTA per (query token, kv head, split of the key range): it holds the (up to 8) query heads
// that share the kv head in shared memory and reads each key and value row once for all of them,
// so a decode step moves every byte of the cache it needs once. Its 4 warps take 16-key tiles in
// turn; in a tile each lane pair scores one key (the two lanes read alternate 16-byte chunks, so a
// load instruction moves 16 full 32-byte sectors), an online softmax (fp32, base 2) keeps a running
// max and sum per head, and every lane accumulates D/32 output columns of each head from the value
// rows. The warps' states merge in shared memory at the end.
//
// Long contexts are split across CTAs so that small batches still fill the GPU: each split
// writes its unnormalised output with its max and sum, and a second kernel merges them. The split
// size depends only on the shapes (max_blocks_per_seq x block_size bounds every context), never on
// the positions, which stay on the device. A query token of a prefill chunk is one more row: the
// same kernel is correct for any mix of decode and prefill tokens (a prefill token re-reads its
// keys from L2 rather than sharing a tile with its neighbours; prefill-heavy batches would want
// a query-tiled kernel).
//
// Indices are not checked on the host (that would need a sync): a query_seq, query_pos or block id
// outside the cache traps (see embedding.cu).
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTile = 16;                  // keys per warp step: one per lane pair
constexpr int kMinSplitKeys = 256;         // a split is never shorter than this (but the whole context):
                                           // short decode contexts then need no merge kernel
constexpr int kCtasPerSm = 4;              // splits are added until the grid has this many CTAs per SM
constexpr unsigned kFull = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

template <typename T>
__device__ __forceinline__ float2 pair_to_float2(uint32_t w);
template <>
__device__ __forceinline__ float2 pair_to_float2<__nv_bfloat16>(uint32_t w) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w));
}
template <>
__device__ __forceinline__ float2 pair_to_float2<__half>(uint32_t w) {
  return __half22float2(*reinterpret_cast<const __half2*>(&w));
}

// The vector type holding N 2-byte elements.
template <int N>
struct Vec;
template <>
struct Vec<2> {
  using type = unsigned int;
};
template <>
struct Vec<4> {
  using type = uint2;
};
template <>
struct Vec<8> {
  using type = uint4;
};

// N consecutive elements at ptr (aligned to their size), read through the read-only cache, as f32.
template <typename T, int N>
__device__ __forceinline__ void load_f32(const T* ptr, float (&out)[N]) {
  using V = typename Vec<N>::type;
  const V raw = __ldg(reinterpret_cast<const V*>(ptr));
  const uint32_t* words = reinterpret_cast<const uint32_t*>(&raw);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) {
    const float2 f = pair_to_float2<T>(words[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

template <typename T>
struct Params {
  const T* q;
  const T* k_cache;
  const T* v_cache;
  const int32_t* tables;
  const int32_t* query_seq;
  const int32_t* query_pos;
  T* out;
  float* part_acc;  // [tokens, hq, splits, d]: unnormalised outputs of each split (splits > 1)
  float* part_ml;   // [tokens, hq, splits, 2]: each split's max (base 2) and sum
  int hq, hkv, group, head_chunks, blocks, block_size, seqs, max_blocks, window, split_keys, splits;
  float scale_log2;  // scale * log2(e): scores are kept in base 2
};

template <typename T, int D, int GC>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(const Params<T> p) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  constexpr int kCols = D / 32;  // output columns per lane
  const int token = blockIdx.x;
  const int kv_head = blockIdx.y / p.head_chunks;
  const int chunk_first = (blockIdx.y % p.head_chunks) * GC;  // first head of this CTA within the group
  const int heads = min(GC, p.group - chunk_first);
  const int head0 = kv_head * p.group + chunk_first;
  const int split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  const int seq = p.query_seq[token], pos = p.query_pos[token];
  if (seq < 0 || seq >= p.seqs || pos < 0 || pos >= p.max_blocks * p.block_size) __trap();
  const int first = p.window > 0 ? max(0, pos - p.window + 1) : 0;
  const int begin = max(first, split * p.split_keys);
  const int end = min(pos + 1, (split + 1) * p.split_keys);

  __shared__ __align__(16) float q_s[GC][D];
  __shared__ float p_s[kWarps][GC][kTile];
  __shared__ int slot_s[kWarps][kTile];
  __shared__ float m_s[kWarps][GC], l_s[kWarps][GC];
  __shared__ float acc_s[kWarps][GC][D];

  for (int i = threadIdx.x; i < GC * D; i += kThreads) {
    const int gi = i / D;
    q_s[gi][i % D] = gi < heads ? to_f32(p.q[(int64_t(token) * p.hq + head0 + gi) * D + i % D]) * p.scale_log2 : 0.0f;
  }
  __syncthreads();

  float m[GC], l[GC], acc[GC][kCols];
#pragma unroll
  for (int gi = 0; gi < GC; ++gi) {
    m[gi] = -INFINITY;
    l[gi] = 0.0f;
#pragma unroll
    for (int j = 0; j < kCols; ++j) acc[gi][j] = 0.0f;
  }
  const int64_t row_stride = int64_t(p.hkv) * D;  // elements from one slot to the next
  const T* k_head = p.k_cache + int64_t(kv_head) * D;
  const T* v_head = p.v_cache + int64_t(kv_head) * D + lane * kCols;
  const int32_t* table = p.tables + int64_t(seq) * p.max_blocks;
  const int key = lane / 2, half = lane % 2;

  for (int tile = (begin & ~(kTile - 1)) + warp * kTile; tile < end; tile += kWarps * kTile) {
    // Scores of this lane pair's key against every head (invalid keys read slot 0, then count -inf).
    const int kp = tile + key;
    const bool valid = kp >= begin && kp < end;
    int slot = 0;
    if (valid) {
      const int block = table[kp / p.block_size];
      if (block < 0 || block >= p.blocks) __trap();
      slot = block * p.block_size + kp % p.block_size;
    }
    float s[GC];
#pragma unroll
    for (int gi = 0; gi < GC; ++gi) s[gi] = 0.0f;
    const T* k_row = k_head + slot * row_stride;
#pragma unroll
    for (int i = 0; i < D / 16; ++i) {
      const int c = 2 * i + half;  // this lane's 8-element chunk
      float kf[8];
      load_f32<T, 8>(k_row + c * 8, kf);
#pragma unroll
      for (int gi = 0; gi < GC; ++gi) {
        const float4 q0 = *reinterpret_cast<const float4*>(&q_s[gi][c * 8]);
        const float4 q1 = *reinterpret_cast<const float4*>(&q_s[gi][c * 8 + 4]);
        s[gi] += q0.x * kf[0] + q0.y * kf[1] + q0.z * kf[2] + q0.w * kf[3] + q1.x * kf[4] + q1.y * kf[5] +
                 q1.z * kf[6] + q1.w * kf[7];
      }
    }
    // Online softmax per head over the tile.
#pragma unroll
    for (int gi = 0; gi < GC; ++gi) {
      s[gi] += __shfl_xor_sync(kFull, s[gi], 1);
      float tile_max = valid ? s[gi] : -INFINITY;
#pragma unroll
      for (int offset = 2; offset < 32; offset *= 2)
        tile_max = fmaxf(tile_max, __shfl_xor_sync(kFull, tile_max, offset));
      const float new_max = fmaxf(m[gi], tile_max);  // finite: the tile has a valid key
      const float correction = exp2f(m[gi] - new_max);
      const float prob = valid ? exp2f(s[gi] - new_max) : 0.0f;
      l[gi] = l[gi] * correction + (half == 0 ? prob : 0.0f);
#pragma unroll
      for (int j = 0; j < kCols; ++j) acc[gi][j] *= correction;
      m[gi] = new_max;
      if (half == 0) p_s[warp][gi][key] = prob;
    }
    if (half == 0) slot_s[warp][key] = valid ? slot : -1;
    __syncwarp();
    // Values: every lane its kCols columns of each key's row, for every head.
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) {
      const int v_slot = slot_s[warp][kk];
      float vf[kCols];
      load_f32<T, kCols>(v_head + max(v_slot, 0) * row_stride, vf);
      if (v_slot < 0) {  // an unwritten slot may hold NaN: 0 * NaN would poison the sum
#pragma unroll
        for (int j = 0; j < kCols; ++j) vf[j] = 0.0f;
      }
#pragma unroll
      for (int gi = 0; gi < GC; ++gi) {
        const float prob = p_s[warp][gi][kk];
#pragma unroll
        for (int j = 0; j < kCols; ++j) acc[gi][j] += prob * vf[j];
      }
    }
    __syncwarp();
  }

  // Merge the warps: max and sum per head, then the columns.
#pragma unroll
  for (int gi = 0; gi < GC; ++gi) {
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) l[gi] += __shfl_xor_sync(kFull, l[gi], offset);
    if (lane == 0) m_s[warp][gi] = m[gi], l_s[warp][gi] = l[gi];
#pragma unroll
    for (int j = 0; j < kCols; ++j) acc_s[warp][gi][lane * kCols + j] = acc[gi][j];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < heads * D; i += kThreads) {
    const int gi = i / D, d = i % D;
    float top = -INFINITY;
    for (int w = 0; w < kWarps; ++w) top = fmaxf(top, m_s[w][gi]);
    float sum = 0.0f, value = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      if (m_s[w][gi] == -INFINITY) continue;  // a warp that met no key
      const float f = exp2f(m_s[w][gi] - top);
      sum += l_s[w][gi] * f;
      value += acc_s[w][gi][d] * f;
    }
    const int64_t row = int64_t(token) * p.hq + head0 + gi;
    if (p.splits == 1) {
      p.out[row * D + d] = from_f32<T>(value / sum);  // the only split holds pos: sum >= 1
    } else {
      const int64_t part = row * p.splits + split;
      p.part_acc[part * D + d] = value;
      if (d == 0) p.part_ml[part * 2] = top, p.part_ml[part * 2 + 1] = sum;
    }
  }
}

// out = the splits' outputs merged by their maxima and sums: one CTA per (token, head), a thread per column.
template <typename T>
__global__ void paged_attention_merge_kernel(T* out, const float* part_acc, const float* part_ml, int splits,
                                             int d) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const int64_t row = blockIdx.x;
  const float* ml = part_ml + row * splits * 2;
  float top = -INFINITY;
  for (int s = 0; s < splits; ++s) top = fmaxf(top, ml[2 * s]);
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float sum = 0.0f, value = 0.0f;
    for (int s = 0; s < splits; ++s) {
      if (ml[2 * s] == -INFINITY) continue;  // a split past the query's position
      const float f = exp2f(ml[2 * s] - top);
      sum += ml[2 * s + 1] * f;
      value += part_acc[(row * splits + s) * d + c] * f;
    }
    out[row * d + c] = from_f32<T>(value / sum);
  }
}

// What the kernels cannot run is an Error (fmt's TS_CHECK is host-code only: see core/error.h).
[[noreturn]] void reject(const std::string& what) { throw Error("paged_attention: " + what); }

template <typename T, int D, int GC>
void launch(Params<T> p, const PagedShape& s, cudaStream_t stream, const Tensor& out) {
  Tensor part_acc, part_ml;
  if (p.splits > 1) {
    part_acc = Tensor::empty({s.tokens * s.hq * p.splits * D}, DType::F32, out.device());
    part_ml = Tensor::empty({s.tokens * s.hq * p.splits * 2}, DType::F32, out.device());
    p.part_acc = part_acc.data_as<float>();
    p.part_ml = part_ml.data_as<float>();
  }
  const dim3 grid(static_cast<unsigned>(s.tokens), static_cast<unsigned>(s.hkv * p.head_chunks),
                  static_cast<unsigned>(p.splits));
  launch_kernel(paged_attention_kernel<T, D, GC>, grid, kThreads, 0, stream, p);
  check_launch();
  if (p.splits > 1) {
    launch_kernel(paged_attention_merge_kernel<T>, static_cast<unsigned>(s.tokens * s.hq), D, 0, stream, p.out,
                  p.part_acc, p.part_ml, p.splits, D);
    check_launch();
  }
}

template <typename T, int D>
void launch_heads(const Params<T>& p, int heads_per_cta, const PagedShape& s, cudaStream_t stream,
                  const Tensor& out) {
  switch (heads_per_cta) {
    case 1: return launch<T, D, 1>(p, s, stream, out);
    case 2: return launch<T, D, 2>(p, s, stream, out);
    case 4: return launch<T, D, 4>(p, s, stream, out);
    default: return launch<T, D, 8>(p, s, stream, out);
  }
}

}  // namespace

void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& block_tables,
                     const Tensor& query_seq, const Tensor& query_pos, int64_t window, float scale, const Tensor& out,
                     const PagedShape& s) {
  if (q.dtype() != DType::BF16 && q.dtype() != DType::F16) reject("CUDA takes bf16 or f16 tensors, got " + q.str());
  if (s.d != 64 && s.d != 128 && s.d != 256)
    reject("CUDA supports head dims 64, 128 and 256, got " + std::to_string(s.d));
  for (const Tensor* t : {&q, &k_cache, &v_cache, &out})
    if (reinterpret_cast<uintptr_t>(t->data()) % 16 != 0) reject(t->str() + " is not 16-byte aligned");
  if (s.slots() > INT32_MAX || s.max_blocks * s.block_size > INT32_MAX || window > INT32_MAX ||
      s.tokens * s.hq > INT32_MAX)
    reject("sizes beyond int32 (cache " + k_cache.str() + ", block tables " + block_tables.str() + ")");

  const int group = static_cast<int>(s.group());
  int heads_per_cta = 1;
  while (heads_per_cta < std::min(group, 8)) heads_per_cta *= 2;
  const int head_chunks = (group + heads_per_cta - 1) / heads_per_cta;

  // Splits of the longest possible context until the grid fills the GPU.
  const int64_t max_context = s.max_blocks * s.block_size;
  const int64_t ctas = s.tokens * s.hkv * head_chunks;
  const int64_t target = int64_t(kCtasPerSm) * sm_count(q.device().index);
  int64_t splits = 1;
  if (ctas < target)
    splits = std::clamp<int64_t>((target + ctas - 1) / ctas, 1, (max_context + kMinSplitKeys - 1) / kMinSplitKeys);
  const int64_t step = kWarps * kTile;
  const int64_t split_keys = ((max_context + splits - 1) / splits + step - 1) / step * step;
  splits = (max_context + split_keys - 1) / split_keys;

  dispatch_floating(q.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (!std::is_same_v<T, float>) {
      Params<T> p{q.data_as<T>(),
                  k_cache.data_as<T>(),
                  v_cache.data_as<T>(),
                  block_tables.data_as<int32_t>(),
                  query_seq.data_as<int32_t>(),
                  query_pos.data_as<int32_t>(),
                  out.data_as<T>(),
                  nullptr,
                  nullptr,
                  int(s.hq),
                  int(s.hkv),
                  group,
                  head_chunks,
                  int(s.blocks),
                  int(s.block_size),
                  int(s.seqs),
                  int(s.max_blocks),
                  int(window),
                  int(split_keys),
                  int(splits),
                  scale * kLog2e};
      const cudaStream_t stream = stream_of(out);
      if (s.d == 64) launch_heads<T, 64>(p, heads_per_cta, s, stream, out);
      else if (s.d == 128) launch_heads<T, 128>(p, heads_per_cta, s, stream, out);
      else launch_heads<T, 256>(p, heads_per_cta, s, stream, out);
    }
  });
}

}  // namespace tessera::cuda
