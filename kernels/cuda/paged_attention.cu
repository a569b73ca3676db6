// CUDA paged_attention (flash-decoding over a paged KV cache), and rope_paged_attention: the same
// kernel with a decode step's RoPE and KV write (rope_kv_write) done inside it.
//
// One CTA per (query token, kv head, split of the key range): it holds the (up to 8) query heads
// that share the kv head in shared memory and reads each key and value row once for all of them,
// so a decode step moves every byte of the cache it needs once. Its warps take 16-key tiles in
// turn; in a tile each lane pair scores one key (the two lanes read alternate 16-byte chunks, so a
// load instruction moves 16 full 32-byte sectors) while every lane loads its D/32 columns of the
// tile's 16 value rows (a tile waits on memory once, and the next tile's block ids are read
// meanwhile); an online softmax (fp32, base 2) keeps a running max and sum per head, and every
// lane accumulates its columns of each head. The warps' states merge in shared memory at the end.
//
// Forms (TESSERA_PAGED_ATTN, v1 by default until measured): v1 gives every CTA 4 warps; v2 gives a
// grid of few CTAs up to 16 (as many as keep it within kWarpsPerSm warps per SM and fit the merge
// buffer), so that a short decode context (256 keys) is read in one round of tiles instead of four;
// v3 is v2 running rope_paged_attention in one launch; v4 is v3 reading the step's block tables,
// positions, sequences and slots (and turning its RoPE angles from the fixed inv_freq) before it
// waits for the previous kernel under programmatic dependent launch (kernels/launch_overlap.h):
// a copy before the step's first kernel writes those, and no kernel does.
//
// Long contexts are split across CTAs so that small batches still fill the GPU: each split
// writes its unnormalised output with its max and sum, and a second kernel merges them. The split
// size depends only on the shapes (max_blocks_per_seq x block_size bounds every context), never on
// the positions, which stay on the device. A query token of a prefill chunk is one more row: the
// same kernel is correct for any mix of decode and prefill tokens (a prefill token re-reads its
// keys from L2 rather than sharing a tile with its neighbours; prefill-heavy batches would want
// a query-tiled kernel).
//
// rope_paged_attention in one launch (v3; a decode step, every token of its own sequence, so no
// CTA needs a key another CTA writes): each CTA turns its query heads itself from the raw q; the
// split that holds the token's position turns the new key into shared memory and scores it from
// there (no CTA reads a slot this launch writes), and of those CTAs the first head chunk writes the
// key and value to their slot. The roundings are rope_kv_write's (kernels/cuda/rope_rows.cuh), so
// the output and the cache equal rope_kv_write then paged_attention bit for bit.
//
// q, k and v are three tensors or one stacked projection's rows (stacked_rows.h): each is read
// through its row length.
//
// Indices are not checked on the host (that would need a sync): a query_seq, query_pos, slot or
// block id outside the cache traps (see embedding.cu).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/rope_rows.cuh"
#include "kernels/cuda/stacked_rows.h"
#include "kernels/kernel_variant.h"

namespace tessera::cuda {

namespace {

constexpr int kTile = 16;          // keys per warp step: one per lane pair
constexpr int kWarpsV1 = 4;        // v1's warps per CTA, the least of v2's
constexpr int kMinSplitKeys = 256;  // a split is never shorter than this (but the whole context):
                                    // short decode contexts then need no merge kernel
constexpr int kWarpsPerSm = 16;    // splits (and v2's warps) are added until the grid has this many warps per SM
constexpr int kMergeFloats = 8192;  // the warps' merge buffer [warps][GC][D] holds at most this many (32 KiB)
constexpr unsigned kFull = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

enum Form { kV1 = 1, kV2, kV3, kV4, kForms = kV4 };

// The most warps a CTA of head dim D and GC heads takes: up to 16, as many as the merge buffer
// holds and as leave each thread the registers of a tile's loads (2D bytes a lane) and its GC x
// D/32 accumulators without spilling: 128 registers at 16 warps, 255 at 8 (ptxas, sm_90a).
__host__ __device__ constexpr int max_warps(int d, int gc) {
  const int by_registers = d * (4 + gc) <= 640 ? 16 : d * (4 + gc) <= 1536 ? 8 : 4;
  const int by_merge = kMergeFloats / (gc * d);
  return by_registers < by_merge ? by_registers : by_merge;
}

// A CTA's shared memory in floats: q_s, acc_s, p_s, m_s, l_s (see the kernel), and with RoPE the
// new key (D values of 2 bytes) and the angles (D/2 cosines, D/2 sines).
constexpr int shared_floats(int d, int gc, int warps, bool rope) {
  return gc * d + warps * gc * d + warps * gc * kTile + 2 * warps * gc + (rope ? d / 2 + d : 0);
}

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

// The N elements packed in raw, as f32.
template <typename T, int N>
__device__ __forceinline__ void unpack_f32(const typename Vec<N>::type& raw, float (&out)[N]) {
  const uint32_t* words = reinterpret_cast<const uint32_t*>(&raw);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) {
    const float2 f = pair_to_float2<T>(words[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// rope_paged_attention's inputs besides paged_attention's (all null in paged_attention).
template <typename T>
struct RopeInputs {
  const T* k;  // [tokens, hkv, D]: the new keys, before their norm and RoPE
  const T* v;  // [tokens, hkv, D]: the new values
  int64_t kv_row;  // elements from one token's keys (and values) to the next
  const float* inv_freq;
  const void* q_norm;  // [D] of T, or f32 where norm_f32; null without Qwen3's q/k norms
  const void* k_norm;
  bool norm_f32;
  float eps, attention_scaling;
  const int32_t* slots;  // [tokens]: where each new key and value go (-1: a padding row, not written)
};

template <typename T>
struct Params {
  const T* q;  // with RoPE: before its norm and RoPE
  int64_t q_row;  // elements from one token's query heads to the next
  T* k_cache;
  T* v_cache;
  const int32_t* tables;
  const int32_t* query_seq;
  const int32_t* query_pos;
  T* out;
  float* part_acc;  // [tokens, hq, splits, d]: unnormalised outputs of each split (splits > 1)
  float* part_ml;   // [tokens, hq, splits, 2]: each split's max (base 2) and sum
  int hq, hkv, group, head_chunks, blocks, block_size, seqs, max_blocks, window, split_keys, splits;
  float scale_log2;  // scale * log2(e): scores are kept in base 2
  bool early;        // v4: the step's inputs are read before waiting for the previous kernel
  RopeInputs<T> rope;
};

template <typename T, int D, int GC, bool Rope>
__global__ void __launch_bounds__(max_warps(D, GC) * 32) paged_attention_kernel(const Params<T> p) {
  // v4 reads the step's inputs (and with RoPE turns its angles) before waiting for the kernel
  // before it: see "Forms" above.
  if (!p.early) wait_for_previous_kernel();
  let_next_kernel_start();
  constexpr int kCols = D / 32;  // output columns per lane
  using KeyChunk = typename Vec<8>::type;
  using ValueCols = typename Vec<kCols>::type;
  const int warps = blockDim.x / 32;
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

  extern __shared__ __align__(16) float shared[];
  float* q_s = shared;                    // [GC][D]: the heads' queries times scale * log2(e)
  float* acc_s = q_s + GC * D;            // [warps][GC][D]: each warp's output columns, to merge
  float* p_s = acc_s + warps * GC * D;    // [warps][GC][kTile]: a tile's probabilities
  float* m_s = p_s + warps * GC * kTile;  // [warps][GC]: each warp's max
  float* l_s = m_s + warps * GC;          // [warps][GC]: and sum
  T* key_s = reinterpret_cast<T*>(l_s + warps * GC);  // RoPE: [D] the new key, turned
  float* cos_s = l_s + warps * GC + D / 2;            // RoPE: [D / 2] the angles of pos
  float* sin_s = cos_s + D / 2;

  const int64_t row_stride = int64_t(p.hkv) * D;  // elements from one slot to the next
  const int32_t* table = p.tables + int64_t(seq) * p.max_blocks;
  // The cache slot of key position kp: -1 outside [begin, end); with RoPE -2 for pos, whose key
  // this CTA turns into key_s and whose value it reads from the new rows.
  const auto slot_of = [&](int kp) {
    if (kp < begin || kp >= end) return -1;
    if (Rope && kp == pos) return -2;
    const int block = table[kp / p.block_size];
    if (block < 0 || block >= p.blocks) __trap();
    return block * p.block_size + kp % p.block_size;
  };
  const int key = lane / 2, half = lane % 2;
  int tile = (begin & ~(kTile - 1)) + warp * kTile;
  int slot = slot_of(tile + key);  // the first block id is read while the queries load
  if constexpr (Rope)
    rope_angles<T>(static_cast<float>(pos), p.rope.inv_freq, p.rope.attention_scaling, D / 2, cos_s, sin_s);
  [[maybe_unused]] const int new_slot = Rope ? p.rope.slots[token] : -1;
  if (p.early) wait_for_previous_kernel();

  if constexpr (Rope) {
    __syncthreads();
    const bool holds_pos = pos >= begin && pos < end;
    if (holds_pos && (new_slot < -1 || new_slot >= p.blocks * p.block_size)) __trap();
    const bool writes = holds_pos && chunk_first == 0 && new_slot >= 0;  // one CTA per (token, kv head)
    const int64_t new_row = token * p.rope.kv_row + int64_t(kv_head) * D;
    T* k_slot = writes ? p.k_cache + new_slot * row_stride + int64_t(kv_head) * D : nullptr;
    // Each warp one row: a query head (norm, RoPE, into q_s) or, past them, the new key.
    const auto turn = [&](const T* row, const void* weight, auto&& emit) {
      if (p.rope.norm_f32) norm_rope_row(row, static_cast<const float*>(weight), p.rope.eps, cos_s, sin_s, D / 2, emit);
      else norm_rope_row(row, static_cast<const T*>(weight), p.rope.eps, cos_s, sin_s, D / 2, emit);
    };
    for (int r = warp; r < heads + holds_pos; r += warps) {
      if (r < heads) {
        float* q_row = q_s + r * D;
        turn(p.q + token * p.q_row + int64_t(head0 + r) * D, p.rope.q_norm, [&](int i, T y1, T y2) {
          q_row[i] = to_f32(y1) * p.scale_log2;
          q_row[i + D / 2] = to_f32(y2) * p.scale_log2;
        });
      } else {
        turn(p.rope.k + new_row, p.rope.k_norm, [&](int i, T y1, T y2) {
          key_s[i] = y1;
          key_s[i + D / 2] = y2;
          if (k_slot) {
            k_slot[i] = y1;
            k_slot[i + D / 2] = y2;
          }
        });
      }
    }
    for (int i = heads * D + threadIdx.x; i < GC * D; i += blockDim.x) q_s[i] = 0.0f;
    if (writes)
      for (int j = threadIdx.x; j < D; j += blockDim.x)
        p.v_cache[new_slot * row_stride + int64_t(kv_head) * D + j] = p.rope.v[new_row + j];
  } else {
    for (int i = threadIdx.x; i < GC * D; i += blockDim.x) {
      const int gi = i / D;
      q_s[i] = gi < heads ? to_f32(p.q[token * p.q_row + int64_t(head0 + gi) * D + i % D]) * p.scale_log2 : 0.0f;
    }
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
  const T* k_head = p.k_cache + int64_t(kv_head) * D;
  const T* v_head = p.v_cache + int64_t(kv_head) * D + lane * kCols;
  const T* v_new = Rope ? p.rope.v + token * p.rope.kv_row + int64_t(kv_head) * D + lane * kCols : nullptr;
  const int round = warps * kTile;

  for (; tile < end; tile += round) {
    // This lane's chunks of its key and its columns of the tile's value rows, loaded together.
    // Keys outside the range load zeros (an unwritten slot may hold NaN: 0 * NaN would poison the sum).
    const bool valid = slot != -1;
    KeyChunk k_raw[D / 16];
#pragma unroll
    for (int i = 0; i < D / 16; ++i) {
      const int c = 2 * i + half;  // this lane's 8-element chunk
      if (slot >= 0) k_raw[i] = __ldg(reinterpret_cast<const KeyChunk*>(k_head + slot * row_stride + c * 8));
      else if (Rope && slot == -2) k_raw[i] = *reinterpret_cast<const KeyChunk*>(key_s + c * 8);
      else k_raw[i] = KeyChunk{};
    }
    ValueCols v_raw[kTile];
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) {
      const int v_slot = __shfl_sync(kFull, slot, 2 * kk);
      if (v_slot >= 0) v_raw[kk] = __ldg(reinterpret_cast<const ValueCols*>(v_head + v_slot * row_stride));
      else if (Rope && v_slot == -2) v_raw[kk] = __ldg(reinterpret_cast<const ValueCols*>(v_new));
      else v_raw[kk] = ValueCols{};
    }
    slot = slot_of(tile + round + key);

    // Scores of this lane pair's key against every head.
    float s[GC];
#pragma unroll
    for (int gi = 0; gi < GC; ++gi) s[gi] = 0.0f;
#pragma unroll
    for (int i = 0; i < D / 16; ++i) {
      const int c = 2 * i + half;
      float kf[8];
      unpack_f32<T, 8>(k_raw[i], kf);
#pragma unroll
      for (int gi = 0; gi < GC; ++gi) {
        const float4 q0 = *reinterpret_cast<const float4*>(q_s + gi * D + c * 8);
        const float4 q1 = *reinterpret_cast<const float4*>(q_s + gi * D + c * 8 + 4);
        s[gi] += q0.x * kf[0] + q0.y * kf[1] + q0.z * kf[2] + q0.w * kf[3] + q1.x * kf[4] + q1.y * kf[5] +
                 q1.z * kf[6] + q1.w * kf[7];
      }
    }
    // Online softmax per head over the tile.
    float* p_warp = p_s + warp * GC * kTile;
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
      if (half == 0) p_warp[gi * kTile + key] = prob;
    }
    __syncwarp();
    // Values: every lane its kCols columns of each key's row, for every head.
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) {
      float vf[kCols];
      unpack_f32<T, kCols>(v_raw[kk], vf);
#pragma unroll
      for (int gi = 0; gi < GC; ++gi) {
        const float prob = p_warp[gi * kTile + kk];
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
    if (lane == 0) m_s[warp * GC + gi] = m[gi], l_s[warp * GC + gi] = l[gi];
#pragma unroll
    for (int j = 0; j < kCols; ++j) acc_s[(warp * GC + gi) * D + lane * kCols + j] = acc[gi][j];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < heads * D; i += blockDim.x) {
    const int gi = i / D, d = i % D;
    float top = -INFINITY;
    for (int w = 0; w < warps; ++w) top = fmaxf(top, m_s[w * GC + gi]);
    float sum = 0.0f, value = 0.0f;
    for (int w = 0; w < warps; ++w) {
      if (m_s[w * GC + gi] == -INFINITY) continue;  // a warp that met no key
      const float f = exp2f(m_s[w * GC + gi] - top);
      sum += l_s[w * GC + gi] * f;
      value += acc_s[(w * GC + gi) * D + d] * f;
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

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Why the kernels cannot run these tensors ("" when they can): out's dtype is the inputs'; q the
// queries' first row and q_row the elements between rows.
std::string unsupported(const Tensor& out, const void* q, int64_t q_row, const PagedShape& s,
                        std::initializer_list<const Tensor*> rows) {
  if (out.dtype() != DType::BF16 && out.dtype() != DType::F16) return "CUDA takes bf16 or f16 tensors, got " + out.str();
  if (s.d != 64 && s.d != 128 && s.d != 256)
    return "CUDA supports head dims 64, 128 and 256, got " + std::to_string(s.d);
  for (const Tensor* t : rows)
    if (!aligned(t->data())) return t->str() + " is not 16-byte aligned";
  if (!aligned(q) || q_row % 8 != 0) return "the queries' rows are not 16-byte aligned";
  return "";
}

// The grid of a shape: warps per CTA, splits of the key range and keys per split.
struct Grid {
  int warps, splits, split_keys;
};

Grid paged_grid(const PagedShape& s, int head_chunks, int most_warps, int sms) {
  const int64_t ctas = s.tokens * s.hkv * head_chunks, target = int64_t(kWarpsPerSm) * sms;
  int warps = kWarpsV1;
  if (most_warps > kWarpsV1) {
    warps = most_warps;
    while (warps > kWarpsV1 && ctas * warps > target) warps /= 2;
  }
  // Splits of the longest possible context until the grid fills the GPU.
  const int64_t max_context = s.max_blocks * s.block_size, step = int64_t(warps) * kTile;
  const int64_t min_split = std::max<int64_t>(kMinSplitKeys, step), cta_target = target / warps;
  int64_t splits = 1;
  if (ctas < cta_target)
    splits = std::clamp<int64_t>((cta_target + ctas - 1) / ctas, 1, (max_context + min_split - 1) / min_split);
  const int64_t split_keys = ((max_context + splits - 1) / splits + step - 1) / step * step;
  splits = (max_context + split_keys - 1) / split_keys;
  return {warps, int(splits), int(split_keys)};
}

template <typename T, int D, int GC, bool Rope>
void launch(Params<T> p, const PagedShape& s, bool wide, cudaStream_t stream, const Tensor& out) {
  const Grid g = paged_grid(s, p.head_chunks, wide ? max_warps(D, GC) : kWarpsV1, sm_count(out.device().index));
  p.split_keys = g.split_keys;
  p.splits = g.splits;
  Tensor part_acc, part_ml;
  if (p.splits > 1) {
    part_acc = Tensor::empty({s.tokens * s.hq * p.splits * D}, DType::F32, out.device());
    part_ml = Tensor::empty({s.tokens * s.hq * p.splits * 2}, DType::F32, out.device());
    p.part_acc = part_acc.data_as<float>();
    p.part_ml = part_ml.data_as<float>();
  }
  const dim3 grid(static_cast<unsigned>(s.tokens), static_cast<unsigned>(s.hkv * p.head_chunks),
                  static_cast<unsigned>(p.splits));
  const size_t shared = shared_floats(D, GC, g.warps, Rope) * sizeof(float);
  launch_kernel(paged_attention_kernel<T, D, GC, Rope>, grid, g.warps * 32, shared, stream, p);
  check_launch();
  if (p.splits > 1) {
    launch_kernel(paged_attention_merge_kernel<T>, static_cast<unsigned>(s.tokens * s.hq), D, 0, stream, p.out,
                  p.part_acc, p.part_ml, p.splits, D);
    check_launch();
  }
}

template <typename T, bool Rope>
void launch_shape(const Params<T>& p, int heads_per_cta, const PagedShape& s, bool wide, const Tensor& out) {
  const cudaStream_t stream = stream_of(out);
  const auto with_d = [&]<int D>() {
    switch (heads_per_cta) {
      case 1: return launch<T, D, 1, Rope>(p, s, wide, stream, out);
      case 2: return launch<T, D, 2, Rope>(p, s, wide, stream, out);
      case 4: return launch<T, D, 4, Rope>(p, s, wide, stream, out);
      default: return launch<T, D, 8, Rope>(p, s, wide, stream, out);
    }
  };
  if (s.d == 64) with_d.template operator()<64>();
  else if (s.d == 128) with_d.template operator()<128>();
  else with_d.template operator()<256>();
}

// Runs the kernel of the form the environment picks (rope: the inputs of rope_paged_attention's
// single launch, or null).
template <typename T>
void run(const void* q, int64_t q_row, const Tensor& k_cache, const Tensor& v_cache, const Tensor& block_tables,
         const Tensor& query_seq, const Tensor& query_pos, int64_t window, float scale, const Tensor& out,
         const PagedShape& s, int form, const RopeInputs<T>* rope) {
  const int group = static_cast<int>(s.group());
  int heads_per_cta = 1;
  while (heads_per_cta < std::min(group, 8)) heads_per_cta *= 2;
  Params<T> p{};
  p.q = static_cast<const T*>(q);
  p.q_row = q_row;
  p.k_cache = k_cache.data_as<T>();
  p.v_cache = v_cache.data_as<T>();
  p.tables = block_tables.data_as<int32_t>();
  p.query_seq = query_seq.data_as<int32_t>();
  p.query_pos = query_pos.data_as<int32_t>();
  p.out = out.data_as<T>();
  p.hq = int(s.hq);
  p.hkv = int(s.hkv);
  p.group = group;
  p.head_chunks = (group + heads_per_cta - 1) / heads_per_cta;
  p.blocks = int(s.blocks);
  p.block_size = int(s.block_size);
  p.seqs = int(s.seqs);
  p.max_blocks = int(s.max_blocks);
  p.window = int(window);
  p.scale_log2 = scale * kLog2e;
  p.early = form >= kV4;
  if (rope) p.rope = *rope;
  if (rope) launch_shape<T, true>(p, heads_per_cta, s, form >= kV2, out);
  else launch_shape<T, false>(p, heads_per_cta, s, form >= kV2, out);
}

void check_sizes(const Tensor& k_cache, const Tensor& block_tables, int64_t window, const PagedShape& s) {
  if (s.slots() > INT32_MAX || s.max_blocks * s.block_size > INT32_MAX || window > INT32_MAX ||
      s.tokens * s.hq > INT32_MAX)
    reject("sizes beyond int32 (cache " + k_cache.str() + ", block tables " + block_tables.str() + ")");
}

// v4 by default: the fastest measured (session 9 call B: 1B batch 1 +13%, batch 16 +12%, 8B +5% over v1).
int form_from_environment() { return kernel_variant("TESSERA_PAGED_ATTN", kForms, kV4); }

// paged_attention of the queries at q, q_row elements from one token's heads to the next.
void attend(const void* q, int64_t q_row, const Tensor& k_cache, const Tensor& v_cache, const Tensor& block_tables,
            const Tensor& query_seq, const Tensor& query_pos, int64_t window, float scale, const Tensor& out,
            const PagedShape& s) {
  if (const std::string why = unsupported(out, q, q_row, s, {&k_cache, &v_cache, &out}); !why.empty()) reject(why);
  check_sizes(k_cache, block_tables, window, s);
  const int form = form_from_environment();
  dispatch_floating(out.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (!std::is_same_v<T, float>)
      run<T>(q, q_row, k_cache, v_cache, block_tables, query_seq, query_pos, window, scale, out, s, form, nullptr);
  });
}

}  // namespace

void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& block_tables,
                     const Tensor& query_seq, const Tensor& query_pos, int64_t window, float scale, const Tensor& out,
                     const PagedShape& s) {
  attend(q.data(), s.hq * s.d, k_cache, v_cache, block_tables, query_seq, query_pos, window, scale, out, s);
}

void rope_paged_attention_rows(const QkvRows& r, const Tensor& positions, const Tensor& inv_freq,
                               float attention_scaling, const Tensor& q_norm, const Tensor& k_norm, float eps,
                               const Tensor& slots, const Tensor& k_cache, const Tensor& v_cache,
                               const Tensor& block_tables, const Tensor& query_seq, int64_t window, float scale,
                               const Tensor& out, const PagedShape& s) {
  if (const std::string why = unsupported(out, r.q, r.q_row, s, {&k_cache, &v_cache, &out}); !why.empty()) reject(why);
  check_sizes(k_cache, block_tables, window, s);
  const int form = form_from_environment();
  if (form < kV3 || !aligned(r.k) || !aligned(r.v) || r.kv_row % 8 != 0) {
    rope_kv_write_rows(r, positions, inv_freq, attention_scaling, q_norm, k_norm, eps, slots, k_cache, v_cache, s);
    attend(r.q, r.q_row, k_cache, v_cache, block_tables, query_seq, positions, window, scale, out, s);
    return;
  }
  dispatch_floating(out.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (!std::is_same_v<T, float>) {
      const bool norm_f32 = q_norm.defined() && q_norm.dtype() == DType::F32;
      const RopeInputs<T> rope{static_cast<const T*>(r.k),
                               static_cast<const T*>(r.v),
                               r.kv_row,
                               inv_freq.data_as<float>(),
                               q_norm.defined() ? q_norm.data() : nullptr,
                               k_norm.defined() ? k_norm.data() : nullptr,
                               norm_f32,
                               eps,
                               attention_scaling,
                               slots.data_as<int32_t>()};
      run<T>(r.q, r.q_row, k_cache, v_cache, block_tables, query_seq, positions, window, scale, out, s, form, &rope);
    }
  });
}

void rope_paged_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                          const Tensor& inv_freq, float attention_scaling, const Tensor& q_norm, const Tensor& k_norm,
                          float eps, const Tensor& slots, const Tensor& k_cache, const Tensor& v_cache,
                          const Tensor& block_tables, const Tensor& query_seq, int64_t window, float scale,
                          const Tensor& out, const PagedShape& s) {
  rope_paged_attention_rows(separate_qkv_rows(q, k, v, s), positions, inv_freq, attention_scaling, q_norm, k_norm, eps,
                            slots, k_cache, v_cache, block_tables, query_seq, window, scale, out, s);
}

}  // namespace tessera::cuda
