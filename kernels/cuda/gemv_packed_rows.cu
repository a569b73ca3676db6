// The int8 fused gemv for decoding (TESSERA_PACKED_GEMV=rows): each weight row streamed by one
// warp as the bf16 gemv streams its rows (gemv.cu, gemv_row.cuh), with the codes turned into
// floats on the way. v1 gives a block 8 rows whose warps split K in chunks of one 16-byte load a
// lane, each chunk's loads waited for before its arithmetic: at the 8B down projection (K 14336)
// ~2,000 warps make 7 such round trips each (1.96 TB/s, where the bf16 gemv streams 3.3). Here
// each lane keeps kUnroll 16-byte loads of its row in flight (4 KB a warp) and issues the next
// round, or the next row's first, before multiplying the current one, on one wave of persistent
// blocks (only those resident at once) walking all the rows. Where the rows are too few for the
// resident warps to take 4 each (q/k/v, o and down at batch 1), each row's K is split into
// `segments` pieces taken by the warps of one block, their sums added in segment order in shared
// memory (TESSERA_PACKED_ROWS_SEGMENTS=1|2|4|auto: the count asked, halved while a piece would
// hold less than one round; auto: 4, as the bf16 gemv's split4 form).
//
// Per 16 codes and row of A: 4 xors, 16 byte_perms and 16 subtractions (packed_units.h
// signed_bytes: each byte under the 0x4B000000 magic number), 16 fmas in two chains; the row's
// scale multiplies its sum once, at the store. The SwiGLU stack's warp takes a gate row and then
// the up row of the same output (one stream of loads), q/k/v a row of any of the three.
#include "kernels/cuda/gemv_packed_rows.h"

#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/gemv_packed_out.cuh"
#include "kernels/cuda/persistent_grid.h"
#include "kernels/kernel_variant.h"
#include "kernels/packed_units.h"

namespace tessera::cuda {

namespace pu = packed_units;

namespace {

constexpr int kWarps = 4;
constexpr int kUnroll = 8;                 // 16-byte loads in flight a lane
constexpr int kLoad = 16;                  // codes a load
constexpr int kStep = 32 * kLoad;          // codes a warp covers a load
constexpr int kRound = kUnroll * kStep;    // codes a warp covers a round (4 KB)

// Up to kUnroll loads of a piece of `len` codes from k0 on (the lane's first: lane * kLoad).
__device__ __forceinline__ void load_round(uint4 (&w)[kUnroll], const uint8_t* piece, int k0, int len) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u)
    if (k0 + u * kStep < len) w[u] = load_streaming(piece + k0 + u * kStep);
}

// acc[i] += the 16 codes of raw times x[i, at .. at + 16) (rows of A k apart; m of kM rows real).
template <int kM, typename TA>
__device__ __forceinline__ void accumulate(float (&acc)[kM], const uint4& raw, const TA* x, int64_t k, int m, int at) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
  float code[kLoad];
  pu::signed_bytes(code, words);
#pragma unroll
  for (int i = 0; i < kM; ++i) {
    if (kM > 2 && i >= m) break;  // kM 1 and 2 run with m = kM
    float lo[8], hi[8];
    load_f32<8>(lo, x + i * k + at);
    load_f32<8>(hi, x + i * k + at + 8);
    float even = 0.0f, odd = 0.0f;  // two chains of fmas: half the dependent latency
#pragma unroll
    for (int e = 0; e < 8; e += 2) {
      even = fmaf(code[e], lo[e], even);
      odd = fmaf(code[e + 1], lo[e + 1], odd);
      even = fmaf(code[8 + e], hi[e], even);
      odd = fmaf(code[8 + e + 1], hi[e + 1], odd);
    }
    acc[i] += even + odd;
  }
}

// acc[i] = piece . x[i] over the piece's len codes, in every lane of the warp; cur holds the
// piece's first round of loads (issued earlier: before the kernel waited for its predecessor, or
// during the previous piece). With next (a piece of as many codes), its first round goes out with
// this piece's last round's arithmetic and is in cur on return.
template <int kM, typename TA>
__device__ __forceinline__ void piece_dot(float (&acc)[kM], uint4 (&cur)[kUnroll], const uint8_t* piece, const TA* x,
                                          int len, int64_t k, int m, int lane, const uint8_t* next) {
#pragma unroll
  for (int i = 0; i < kM; ++i) acc[i] = 0.0f;
  int k0 = lane * kLoad;
  uint4 ahead[kUnroll];
  while (true) {
    const int k1 = k0 + kRound;
    if (k1 < len) load_round(ahead, piece, k1, len);
    else if (next) load_round(ahead, next, lane * kLoad, len);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (k0 + u * kStep < len) accumulate<kM>(acc, cur[u], x, k, m, k0 + u * kStep);
    if (k1 >= len) break;
    k0 = k1;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) cur[u] = ahead[u];
  }
  if (next)
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) cur[u] = ahead[u];
#pragma unroll
  for (int i = 0; i < kM; ++i)
    for (int mask = 16; mask > 0; mask /= 2) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], mask);
}

// Item t of the stack: output row t of one weight (kRows 1), or (SwiGLU, kRows 2) gate row t and
// up row t. Warp w of a block takes piece w % S of item g * (kWarps / S) + w / S for its groups g
// = blockIdx.x, + gridDim.x, ...; the pieces are `segment` codes long but the last.
template <int kM, bool kSwiglu, int S, typename TA>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_int8_rows_kernel(PackedStack<pu::Int8Reader> s, int items, DType c_dtype, const TA* a, int k, int segment,
                          int m, float alpha, float beta) {
  static_assert(kWarps % S == 0);
  constexpr int kAtOnce = kWarps / S, kRows = kSwiglu ? 2 : 1;
  // By the group's parity: a warp may start the next group before the last one's sums are added.
  __shared__ float part[2][kWarps][kRows * kM];
  let_next_kernel_start();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int k0 = (warp % S) * segment, len = min(segment, k - k0);
  const auto item_of = [&](int group) { return group * kAtOnce + warp / S; };
  const auto row_of_item = [&](int item, int h) -> RowOf {
    if constexpr (kSwiglu) return {h, item};  // gate row, then up row `item`
    const TileOf t = tile_of<1>(s, item);
    return {t.weight, t.row0};
  };
  const auto piece_of = [&](const RowOf& r) { return s.w[r.weight].codes + r.row * int64_t(k) + k0; };
  const int groups = (items + kAtOnce - 1) / kAtOnce;
  int group = blockIdx.x;
  uint4 cur[kUnroll];
  if (item_of(group) < items) load_round(cur, piece_of(row_of_item(item_of(group), 0)), lane * kLoad, len);
  wait_for_previous_kernel();  // A comes from the kernel before
  for (int parity = 0; group < groups; group += gridDim.x, parity ^= 1) {
    const int item = item_of(group), next = item_of(group + gridDim.x);
    const bool mine = item < items;
    float acc[kRows][kM];
    RowOf rows[kRows];
    if (mine) {
      const uint8_t* next_piece = next < items ? piece_of(row_of_item(next, 0)) : nullptr;
#pragma unroll
      for (int h = 0; h < kRows; ++h) rows[h] = row_of_item(item, h);
      if constexpr (kSwiglu) {
        piece_dot<kM>(acc[0], cur, piece_of(rows[0]), a + k0, len, k, m, lane, piece_of(rows[1]));
        piece_dot<kM>(acc[1], cur, piece_of(rows[1]), a + k0, len, k, m, lane, next_piece);
      } else {
        piece_dot<kM>(acc[0], cur, piece_of(rows[0]), a + k0, len, k, m, lane, next_piece);
      }
    }
    if constexpr (S > 1) {
      if (mine && lane == 0)
#pragma unroll
        for (int h = 0; h < kRows; ++h)
#pragma unroll
          for (int i = 0; i < kM; ++i) part[parity][warp][h * kM + i] = acc[h][i];
      __syncthreads();
      if (mine && warp % S == 0)
#pragma unroll
        for (int h = 0; h < kRows; ++h)
#pragma unroll
          for (int i = 0; i < kM; ++i)
#pragma unroll
            for (int p = 1; p < S; ++p) acc[h][i] += part[parity][warp + p][h * kM + i];
    }
    if (!mine || warp % S != 0 || lane >= kM) continue;
    float scale[kRows];
#pragma unroll
    for (int h = 0; h < kRows; ++h) scale[h] = s.w[rows[h].weight].scales[rows[h].row];
    // Lane i stores output i (and SwiGLU's pair, e = i and i + kM): the sums without dynamic
    // indexing of registers.
    store_tile<kRows, kM>(s, item, lane, m, c_dtype, alpha, beta, [&](int e) {
      float v = 0.0f;
#pragma unroll
      for (int h = 0; h < kRows; ++h)
#pragma unroll
        for (int i = 0; i < kM; ++i)
          if (h * kM + i == e) v = acc[h][i] * scale[h];
      return v;
    });
  }
}

// The pieces each row's K is split in: as asked (TESSERA_PACKED_ROWS_SEGMENTS, auto 4), 1 where
// the rows are enough for the resident warps to take 4 each, halved while a piece would hold
// less than a round.
int row_segments(int64_t rows, int64_t k, int resident_warps) {
  int s = env_choice("TESSERA_PACKED_ROWS_SEGMENTS", {1, 2, 4}, true, 0);
  if (s == 0) s = 4;
  if (rows >= 4 * int64_t(resident_warps)) return 1;
  while (s > 1 && k < int64_t(s) * kRound) s /= 2;
  return s;
}

template <int kM, bool kSwiglu, int S, typename TA>
void launch_split(const PackedStack<pu::Int8Reader>& s, int items, int resident, DType c_dtype, const TA* a, int64_t k,
                  int m, float alpha, float beta, cudaStream_t stream) {
  const int segment = S == 1 ? int(k) : int((k / S + kStep - 1) / kStep * kStep);  // whole loads; the last the rest
  const unsigned blocks = persistent_blocks((items + kWarps / S - 1) / (kWarps / S), 1, resident);
  launch_kernel(gemv_int8_rows_kernel<kM, kSwiglu, S, TA>, blocks, kWarps * 32, 0, stream, s, items, c_dtype, a,
                int(k), segment, m, alpha, beta);
}

template <int kM, bool kSwiglu, typename TA>
void launch(PackedStack<pu::Int8Reader> s, DType c_dtype, const TA* a, int64_t k, int m, float alpha, float beta,
            cudaStream_t stream, int device) {
  const int items = stack_tiles(s, kSwiglu ? 2 : 1);
  // Occupancy of the one-piece kernel stands for all: the split ones differ by a few registers.
  const int resident =
      resident_blocks(reinterpret_cast<const void*>(gemv_int8_rows_kernel<kM, kSwiglu, 1, TA>), kWarps * 32, 0, device);
  const int64_t rows = int64_t(items) * (kSwiglu ? 2 : 1);
  switch (row_segments(rows, k, resident * kWarps)) {
    case 1: return launch_split<kM, kSwiglu, 1>(s, items, resident, c_dtype, a, k, m, alpha, beta, stream);
    case 2: return launch_split<kM, kSwiglu, 2>(s, items, resident, c_dtype, a, k, m, alpha, beta, stream);
    default: return launch_split<kM, kSwiglu, 4>(s, items, resident, c_dtype, a, k, m, alpha, beta, stream);
  }
}

}  // namespace

bool fused_gemv_rows_fits(const PackedTensor& w) { return w.spec.scheme == QuantScheme::Int8; }

void fused_gemv_rows(const PackedProducts& p, const Tensor& a, const GemmShape& s, float alpha, float beta) {
  cudaStream_t stream = stream_of(p.outs[0]);
  const DType c_dtype = p.outs[0].dtype();
  const int device = a.device().index;
  with_stack(p, nullptr, [&](const auto& stack) {
    if constexpr (std::is_same_v<std::decay_t<decltype(stack)>, PackedStack<pu::Int8Reader>>) {
      dispatch_floating(a.dtype(), [&](auto* type) {
        using TA = std::remove_pointer_t<decltype(type)>;
        launch_by_rows_of_a(stack, a.data_as<TA>(), s.m, s.k, dtype_size(c_dtype), [&](auto rows_m, auto part,
                                                                                        const TA* rows, int m) {
          constexpr int kM = decltype(rows_m)::value;
          if (part.swiglu) launch<kM, true>(part, c_dtype, rows, s.k, m, alpha, beta, stream, device);
          else launch<kM, false>(part, c_dtype, rows, s.k, m, alpha, beta, stream, device);
        });
      });
    }
  });
  check_launch();
}

}  // namespace tessera::cuda
