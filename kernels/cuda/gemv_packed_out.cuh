// What the fused packed gemvs (gemv_packed.cu, gemv_packed_mma.cu) multiply in one launch and
// where the products go: a stack of up to three packed weights sharing A (a decode step's q, k and
// v), or a gate and an up weight whose products meet in SwiGLU. A thread block owns a tile of rows;
// this file maps a tile to its weight rows and stores the block's sums.
#pragma once

#include <type_traits>

#include "core/dtype.h"
#include "kernels/cuda/activations.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemv_packed.h"
#include "kernels/packed_units.h"

namespace tessera::cuda {

constexpr int kPackedStackMax = 3;

// The weights of one launch (readers of one type: one scheme), their outputs C_i [m, n_i] and
// biases (null: none). Plain: tiles of R rows numbered weight after weight (weight i's tiles end
// at tiles_end[i]; a tile never holds rows of two weights). SwiGLU (count 2, gate and up of one
// shape): each tile holds R / 2 rows of gate then the same R / 2 rows of up, and writes
// silu(gate) * up into c[0] in C's dtype, each product rounded to it first as ops::gemm would.
template <typename Reader>
struct PackedStack {
  Reader w[kPackedStackMax];
  void* c[kPackedStackMax];
  const void* bias[kPackedStackMax];
  int64_t n[kPackedStackMax];
  int tiles_end[kPackedStackMax];
  int count;
  bool swiglu;
};

// The same stack over other readers of the same weights (the unit reader's pair reader).
template <typename To, typename From, typename Convert>
PackedStack<To> restack(const PackedStack<From>& s, Convert convert) {
  PackedStack<To> out{};
  for (int i = 0; i < s.count; ++i) {
    out.w[i] = convert(s.w[i]);
    out.c[i] = s.c[i];
    out.bias[i] = s.bias[i];
    out.n[i] = s.n[i];
    out.tiles_end[i] = s.tiles_end[i];
  }
  out.count = s.count;
  out.swiglu = s.swiglu;
  return out;
}

// Calls fn with the stack of p's weights (their unit readers: kernels/packed_units.h), tiles not
// yet counted (stack_tiles).
template <typename Fn>
void with_stack(const PackedProducts& p, const quant_math::Nf4Tables* tables, Fn&& fn) {
  packed_units::with_reader(*p.weights[0], tables, [&](const auto& first) {
    using Reader = std::decay_t<decltype(first)>;
    PackedStack<Reader> s{};
    s.count = int(p.weights.size());
    s.swiglu = p.swiglu;
    for (int i = 0; i < s.count; ++i) {
      packed_units::with_reader(*p.weights[i], tables, [&](const auto& r) {
        if constexpr (std::is_same_v<Reader, std::decay_t<decltype(r)>>) s.w[i] = r;  // one scheme: always
      });
      s.c[i] = p.outs[p.swiglu ? 0 : i].data();
      s.bias[i] = size_t(i) < p.biases.size() && p.biases[i].defined() ? p.biases[i].data() : nullptr;
      s.n[i] = p.weights[i]->shape[0];
    }
    fn(s);
  });
}

// The tiles of kRows rows of the stack's grid (setting tiles_end).
template <typename Reader>
int stack_tiles(PackedStack<Reader>& s, int rows) {
  if (s.swiglu) return int((s.n[0] + rows / 2 - 1) / (rows / 2));
  int tiles = 0;
  for (int i = 0; i < s.count; ++i) s.tiles_end[i] = tiles += int((s.n[i] + rows - 1) / rows);
  return tiles;
}

// The stack for rows m0 on of A: each C moved on by m0 of its rows of `c_size` bytes a value.
template <typename Reader>
PackedStack<Reader> from_row(PackedStack<Reader> s, int64_t m0, size_t c_size) {
  for (int i = 0; i < s.count; ++i) s.c[i] = static_cast<uint8_t*>(s.c[i]) + m0 * s.n[s.swiglu ? 0 : i] * int64_t(c_size);
  return s;
}

// Calls launch(kM, part, rows, m) for each run of up to 4 rows of A (m of them, from row m0 on;
// kM a std::integral_constant of 1, 2 or 4 >= m): part the stack with its outputs moved to row m0,
// rows A's row m0 (A [m_total, k]). The CUDA-core kernels take up to 4 rows of A a launch.
template <typename TA, typename Reader, typename Launch>
void launch_by_rows_of_a(const PackedStack<Reader>& stack, const TA* a, int64_t m_total, int64_t k, size_t c_size,
                         Launch&& launch) {
  for (int64_t m0 = 0; m0 < m_total; m0 += 4) {
    const int m = int(m_total - m0 < 4 ? m_total - m0 : 4);
    const PackedStack<Reader> part = from_row(stack, m0, c_size);
    const TA* rows = a + m0 * k;
    if (m == 1) launch(std::integral_constant<int, 1>{}, part, rows, m);
    else if (m == 2) launch(std::integral_constant<int, 2>{}, part, rows, m);
    else launch(std::integral_constant<int, 4>{}, part, rows, m);
  }
}

// Tile `tile` of R rows: its weight and first row there (SwiGLU: gate and up row0 on).
struct TileOf {
  int weight;
  int64_t row0;
};

template <int kRows, typename Reader>
__device__ __forceinline__ TileOf tile_of(const PackedStack<Reader>& s, int tile) {
  if (s.swiglu) return {0, int64_t(tile) * (kRows / 2)};
  int i = 0;
  while (i + 1 < s.count && tile >= s.tiles_end[i]) ++i;
  return {i, int64_t(tile - (i ? s.tiles_end[i - 1] : 0)) * kRows};
}

// Row j of tile t: which weight and row it reads. Rows past the weight's last read the last one
// (their sums are never stored).
struct RowOf {
  int weight;
  int64_t row;
};

template <int kRows, typename Reader>
__device__ __forceinline__ RowOf row_of(const PackedStack<Reader>& s, const TileOf& t, int j) {
  const int weight = s.swiglu ? (j < kRows / 2 ? 0 : 1) : t.weight;
  const int64_t row = t.row0 + (s.swiglu ? j % (kRows / 2) : j);
  return {weight, row < s.n[weight] ? row : s.n[weight] - 1};
}

// A lane's two rows j and j + R / 2 of tile `tile` as (reader, row): of one weight, or (kSwiglu)
// of gate and of up. One weight's reader is held once (a second's registers would cost
// occupancy). The tensor-core gemvs' lane (g, t) holds rows g and g + 8 of a tile of 16.
template <bool kSwiglu, typename Reader>
struct LaneRows {
  Reader w[kSwiglu ? 2 : 1];
  int64_t row[2];
  __device__ __forceinline__ const Reader& reader(int h) const { return w[kSwiglu ? h : 0]; }
  template <typename Raw>
  __device__ __forceinline__ void load(int h, int u, Raw& raw) const {
    reader(h).load(row[h], u, raw);
  }
};

template <int kRows, bool kSwiglu, typename Reader>
__device__ __forceinline__ LaneRows<kSwiglu, Reader> lane_rows(const PackedStack<Reader>& s, int tile, int j) {
  const TileOf t = tile_of<kRows>(s, tile);
  const RowOf lo = row_of<kRows>(s, t, j), hi = row_of<kRows>(s, t, j + kRows / 2);
  LaneRows<kSwiglu, Reader> out;
  out.w[0] = s.w[lo.weight];
  if constexpr (kSwiglu) out.w[kSwiglu ? 1 : 0] = s.w[hi.weight];
  out.row[0] = lo.row;
  out.row[1] = hi.row;
  return out;
}

// C[at] = alpha sum (+ beta C[at]) (+ bias[row]) in C's dtype (bf16, f16 or f32; bias in C's);
// beta 0 does not read C.
__device__ __forceinline__ void store_gemv_out(void* c, DType c_dtype, int64_t at, int64_t row, float sum, float alpha,
                                               float beta, const void* bias) {
  auto finish = [&](auto* out, const auto* b) {
    float v = alpha * sum;
    if (beta != 0.0f) v += beta * to_f32(out[at]);
    if (b) v += to_f32(b[row]);
    out[at] = from_f32<std::remove_pointer_t<decltype(out)>>(v);
  };
  switch (c_dtype) {
    case DType::BF16:
      return finish(static_cast<__nv_bfloat16*>(c), static_cast<const __nv_bfloat16*>(bias));
    case DType::F16: return finish(static_cast<__half*>(c), static_cast<const __half*>(bias));
    default: return finish(static_cast<float*>(c), static_cast<const float*>(bias));
  }
}

// C[at] = silu(g) * u as ops::project_swiglu's reference computes it: g and u rounded to C's dtype
// (the gemms' outputs), silu(g) rounded again, the product rounded once more.
__device__ __forceinline__ void store_swiglu_out(void* c, DType c_dtype, int64_t at, float g, float u) {
  auto finish = [&](auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    const float gr = round_as<T>(g), ur = round_as<T>(u);
    out[at] = from_f32<T>(round_as<T>(silu(gr)) * ur);
  };
  switch (c_dtype) {
    case DType::BF16: return finish(static_cast<__nv_bfloat16*>(c));
    case DType::F16: return finish(static_cast<__half*>(c));
    default: return finish(static_cast<float*>(c));
  }
}

// Thread e's share of storing a tile of kRows rows x kCols rows of A, whose sums sum_of(e') the
// block has (e' = tile row * kCols + row of A): output e is tile row e / kCols for row e % kCols
// of A; SwiGLU: e < kRows / 2 * kCols pairs gate sum e with up sum e + kRows / 2 * kCols. Rows
// past the weight's last and rows of A past m are not stored. Needs kRows * kCols threads.
template <int kRows, int kCols, typename Reader, typename SumOf>
__device__ __forceinline__ void store_tile(const PackedStack<Reader>& s, int tile, int e, int m, DType c_dtype,
                                           float alpha, float beta, SumOf sum_of) {
  const TileOf t = tile_of<kRows>(s, tile);
  const int i = e % kCols;
  if (i >= m) return;
  if (s.swiglu) {
    constexpr int kHalf = kRows / 2 * kCols;
    const int64_t row = t.row0 + e / kCols;
    if (e >= kHalf || row >= s.n[0]) return;
    return store_swiglu_out(s.c[0], c_dtype, int64_t(i) * s.n[0] + row, sum_of(e), sum_of(e + kHalf));
  }
  const int64_t row = t.row0 + e / kCols;
  if (e >= kRows * kCols || row >= s.n[t.weight]) return;
  store_gemv_out(s.c[t.weight], c_dtype, int64_t(i) * s.n[t.weight] + row, row, sum_of(e), alpha, beta,
                 s.bias[t.weight]);
}

// store_tile by threads e0, e0 + stride, ... of a tile whose sums warps [first, first + count) of
// the block left in partial[warp][e].
template <int kWarps, int kRows, int kCols, typename Reader>
__device__ __forceinline__ void store_warps_out(const float (&partial)[kWarps][kRows * kCols], const PackedStack<Reader>& s,
                                                int tile, int first, int count, int e0, int stride, int m,
                                                DType c_dtype, float alpha, float beta) {
  for (int e = e0; e < kRows * kCols; e += stride)
    store_tile<kRows, kCols>(s, tile, e, m, c_dtype, alpha, beta, [&](int at) {
      float sum = 0.0f;
      for (int w = first; w < first + count; ++w) sum += partial[w][at];
      return sum;
    });
}

// store_tile of a block whose warps all left their sums in partial[warp][e] (thread e).
template <int kWarps, int kRows, int kCols, typename Reader>
__device__ __forceinline__ void store_block_out(const float (&partial)[kWarps][kRows * kCols], const PackedStack<Reader>& s,
                                                int tile, int e, int m, DType c_dtype, float alpha, float beta) {
  store_tile<kRows, kCols>(s, tile, e, m, c_dtype, alpha, beta, [&](int at) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partial[w][at];
    return sum;
  });
}

}  // namespace tessera::cuda
