// Tensor-core attention backward, FA2 style, on mma.sync: a CTA owns 16 kWarps keys of one kv head,
// kWarps warps of 16 keys each, and walks every (query head of the group, query tile at or after the
// diagonal) pair, the next pair's Q and dO copied asynchronously while this one is used. Per pair
// a warp computes, in registers, S^T = K Q^T, P^T = exp(scale S^T - lse), dV += P^T dO,
// dP^T = V dO^T, dS^T = P^T (dP^T - delta) and dK += dS^T Q. dQ needs every key of the tile, so
// dS^T goes through shared memory and, after a barrier, each warp multiplies 16 query rows of dS
// by K and adds them into an fp32 buffer with atomics.
#include "kernels/cuda/attention_tiles.cuh"

namespace tessera::cuda::attn {

namespace {

template <int kD, int kWarps>
struct BackwardSmem {
  static constexpr int kKeys = 16 * kWarps;  // keys per CTA
  static constexpr size_t kKvElems = size_t(kKeys) * ld_rows<kD>;
  static constexpr size_t kQElems = size_t(kTile) * ld_rows<kD>;
  // Tiles (16-bit elements): K, V, then Q and dO per stage: Q0, dO0, Q1, dO1.
  static constexpr size_t kDs = (2 * kKvElems + 4 * kQElems) * 2;  // dS^T [kKeys][64 queries], 16-bit
  static constexpr size_t kLse = kDs + size_t(kKeys) * kLdProbs * 2;  // per query: lse * log2 e
  static constexpr size_t kDelta = kLse + kTile * 4;                  // per query: rowsum(dO * O)
  static constexpr size_t kSegQ = kDelta + kTile * 4;                 // per query: segment id
  static constexpr size_t kBytes = kSegQ + kTile * 4;
};

// grid (key blocks, hkv, b); block 0, which has the most query tiles, launches first.
template <typename T, int kD, int kWarps>
__global__ void __launch_bounds__(kWarps * 32) backward_kernel(Params p) {
  using L = BackwardSmem<kD, kWarps>;
  constexpr int kThreads = kWarps * 32, kKeys = L::kKeys;
  constexpr int kLd = ld_rows<kD>;
  constexpr int kQueryTiles = kTile / 8;  // 8-query column blocks of S^T
  constexpr int kDimTiles = kD / 8;       // 8-dim column blocks of dK, dV
  extern __shared__ __align__(128) unsigned char smem[];
  T* ks = reinterpret_cast<T*>(smem);
  T* vs = ks + L::kKvElems;
  auto q_stage = [&](int stage) { return ks + 2 * L::kKvElems + (2 * stage) * L::kQElems; };
  auto do_stage = [&](int stage) { return ks + 2 * L::kKvElems + (2 * stage + 1) * L::kQElems; };
  T* dst = reinterpret_cast<T*>(smem + L::kDs);
  float* lse2 = reinterpret_cast<float*>(smem + L::kLse);
  float* delta = reinterpret_cast<float*>(smem + L::kDelta);
  int32_t* seg_q = reinterpret_cast<int32_t*>(smem + L::kSegQ);

  const int64_t kb = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int64_t k0 = kb * kKeys;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const T* q_base = static_cast<const T*>(p.q);
  const T* do_base = static_cast<const T*>(p.dout);

  // Work items: (query head, query tile) pairs; query tiles before the block's first key never
  // see its keys.
  const int64_t first_qt = k0 / kTile, per_head = (p.s + kTile - 1) / kTile - first_qt;
  const int64_t items = p.group * per_head;
  const int64_t first_kt = first_qt, last_kt = (min(k0 + kKeys, p.s) - 1) / kTile;
  auto item_head = [&](int64_t it) { return kvh * p.group + it / per_head; };
  auto item_tile = [&](int64_t it) { return first_qt + it % per_head; };
  auto next_item = [&](int64_t it) {
    do ++it;
    while (it < items && p.tiles_disjoint(b, first_kt, last_kt, item_tile(it)));  // other documents only
    return it;
  };
  auto copy_item = [&](int64_t it, int stage) {
    copy_tile_async<T, kD, kTile, kThreads>(q_stage(stage), q_base, b, item_tile(it) * kTile, p.s, p.hq,
                                            item_head(it));
    copy_tile_async<T, kD, kTile, kThreads>(do_stage(stage), do_base, b, item_tile(it) * kTile, p.s, p.hq,
                                            item_head(it));
  };
  copy_tile_async<T, kD, kKeys, kThreads>(ks, static_cast<const T*>(p.k), b, k0, p.s, p.hkv, kvh);
  copy_tile_async<T, kD, kKeys, kThreads>(vs, static_cast<const T*>(p.v), b, k0, p.s, p.hkv, kvh);
  int64_t it = next_item(-1);
  copy_item(it, 0);
  ptx::cp_async_commit();

  // This lane's two key rows: g and g + 8 of the warp's 16.
  int64_t keys[2];
  int32_t seg_keys[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    keys[r] = k0 + warp * 16 + g + 8 * r;
    seg_keys[r] = keys[r] < p.s ? p.segment(b, keys[r]) : 0;
  }
  const float scale2 = p.scale * kLog2e;
  float dk[kDimTiles][4] = {}, dv[kDimTiles][4] = {};

  for (int stage = 0; it < items; stage ^= 1) {
    const int64_t next = next_item(it);
    if (next < items) {
      copy_item(next, stage ^ 1);
      ptx::cp_async_commit();
      ptx::cp_async_wait<1>();
    } else {
      ptx::cp_async_wait<0>();
    }
    const int64_t h = item_head(it), qb = item_tile(it), q0 = qb * kTile;
    if (threadIdx.x < kTile) {
      const int64_t i = q0 + threadIdx.x;
      const bool in = i < p.s;
      lse2[threadIdx.x] = in ? p.lse_in[p.row_offset(b, h, i)] * kLog2e : INFINITY;  // P = 0 past the end
      delta[threadIdx.x] = in ? p.delta[p.row_offset(b, h, i)] : 0.0f;
      seg_q[threadIdx.x] = in ? p.segment(b, i) : 0;
    }
    __syncthreads();
    const T* qs = q_stage(stage);
    const T* dos = do_stage(stage);

    // S^T = K Q^T for this warp's 16 keys, then P^T. Element e of block nt: key keys[e / 2],
    // query column nt * 8 + 2t + e % 2.
    float s[kQueryTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t a[4];
      load_a(a, ks, kLd, warp * 16, kk * 16);
#pragma unroll
      for (int np = 0; np < kQueryTiles / 2; ++np) {
        uint32_t bf[4];
        load_b_rows(bf, qs, kLd, np * 16, kk * 16);
        ptx::mma_16816<T>(s[2 * np], a, bf[0], bf[1]);
        ptx::mma_16816<T>(s[2 * np + 1], a, bf[2], bf[3]);
      }
    }
    // Only query tiles that overlap the key block (keys past the sequence end occur only with
    // those) and tiles across a document boundary mask: other tiles skip the per-element test.
    const bool by_segment = !p.one_segment(b, qb, qb, first_kt, last_kt);
    const bool masked = q0 < k0 + kKeys || by_segment;
#pragma unroll
    for (int nt = 0; nt < kQueryTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = nt * 8 + 2 * t + e % 2;
        s[nt][e] = ptx::exp2_approx(fmaf(s[nt][e], scale2, -lse2[col]));
        if (masked && (keys[e / 2] > q0 + col || (by_segment && seg_q[col] != seg_keys[e / 2]))) s[nt][e] = 0.0f;
      }
    }

    // dV += P^T dO.
#pragma unroll
    for (int ks16 = 0; ks16 < kTile / 16; ++ks16) {
      uint32_t pa[4];
      accumulators_as_a<T>(pa, s, ks16);
#pragma unroll
      for (int dp = 0; dp < kDimTiles / 2; ++dp) {
        uint32_t bf[4];
        load_b_trans(bf, dos, kLd, ks16 * 16, dp * 16);
        ptx::mma_16816<T>(dv[2 * dp], pa, bf[0], bf[1]);
        ptx::mma_16816<T>(dv[2 * dp + 1], pa, bf[2], bf[3]);
      }
    }

    // dP^T = V dO^T, then dS^T = P^T (dP^T - delta) in place.
    float ds[kQueryTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t a[4];
      load_a(a, vs, kLd, warp * 16, kk * 16);
#pragma unroll
      for (int np = 0; np < kQueryTiles / 2; ++np) {
        uint32_t bf[4];
        load_b_rows(bf, dos, kLd, np * 16, kk * 16);
        ptx::mma_16816<T>(ds[2 * np], a, bf[0], bf[1]);
        ptx::mma_16816<T>(ds[2 * np + 1], a, bf[2], bf[3]);
      }
    }
#pragma unroll
    for (int nt = 0; nt < kQueryTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) ds[nt][e] = s[nt][e] * (ds[nt][e] - delta[nt * 8 + 2 * t + e % 2]);
#pragma unroll
      for (int r = 0; r < 2; ++r)
        *reinterpret_cast<uint32_t*>(dst + (warp * 16 + g + 8 * r) * kLdProbs + nt * 8 + 2 * t) =
            ptx::pack2<T>(ds[nt][2 * r], ds[nt][2 * r + 1]);
    }

    // dK += dS^T Q (scaled once at the end).
#pragma unroll
    for (int ks16 = 0; ks16 < kTile / 16; ++ks16) {
      uint32_t da[4];
      accumulators_as_a<T>(da, ds, ks16);
#pragma unroll
      for (int dp = 0; dp < kDimTiles / 2; ++dp) {
        uint32_t bf[4];
        load_b_trans(bf, qs, kLd, ks16 * 16, dp * 16);
        ptx::mma_16816<T>(dk[2 * dp], da, bf[0], bf[1]);
        ptx::mma_16816<T>(dk[2 * dp + 1], da, bf[2], bf[3]);
      }
    }
    __syncthreads();  // dS^T complete for all the block's keys

    // dQ[16 query rows] += scale * dS K, where dS is dS^T read transposed: warp w takes rows
    // 16 (w % 4) and the w / 4-th share of the head dims.
    constexpr int kDimShares = kWarps / 4, kDimPairs = kD / 16 / kDimShares;
    const int row16 = (warp % 4) * 16, first_pair = (warp / 4) * kDimPairs;
    if (q0 + row16 < p.s) {
      uint32_t da[kKeys / 16][4];
#pragma unroll
      for (int ks16 = 0; ks16 < kKeys / 16; ++ks16) load_a_trans(da[ks16], dst, kLdProbs, row16, ks16 * 16);
#pragma unroll 2
      for (int dp = first_pair; dp < first_pair + kDimPairs; ++dp) {
        float acc[2][4] = {};
#pragma unroll
        for (int ks16 = 0; ks16 < kKeys / 16; ++ks16) {
          uint32_t bf[4];
          load_b_trans(bf, ks, kLd, ks16 * 16, dp * 16);
          ptx::mma_16816<T>(acc[0], da[ks16], bf[0], bf[1]);
          ptx::mma_16816<T>(acc[1], da[ks16], bf[2], bf[3]);
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int64_t i = q0 + row16 + g + 8 * r;
          if (i >= p.s) continue;
          float* row = p.dq_accum + p.q_offset(b, i, h) + dp * 16 + 2 * t;
          atomicAdd(row, acc[0][2 * r] * p.scale);
          atomicAdd(row + 1, acc[0][2 * r + 1] * p.scale);
          atomicAdd(row + 8, acc[1][2 * r] * p.scale);
          atomicAdd(row + 9, acc[1][2 * r + 1] * p.scale);
        }
      }
    }
    __syncthreads();  // the next item rewrites the other stage's tiles, dS^T, lse2, delta
    it = next;
  }

  store_key_grads<T>(dk, dv, p, b, kvh, keys);
}

template <typename T, int kD, int kWarps>
void launch(const Params& p, cudaStream_t stream) {
  using L = BackwardSmem<kD, kWarps>;
  TS_CUDA_CHECK(cudaFuncSetAttribute(backward_kernel<T, kD, kWarps>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(L::kBytes)));
  const dim3 grid((p.s + L::kKeys - 1) / L::kKeys, p.hkv, p.b);
  backward_kernel<T, kD, kWarps><<<grid, kWarps * 32, L::kBytes, stream>>>(p);
  check_launch();
}

}  // namespace

// 128-key CTAs (8 warps) halve the Q/dO traffic and dQ atomics per FLOP; measured on the H100 they
// win at head dim 128 (156 against 126 TFLOP/s at seq 4096) and lose a little at 64, where 64-key
// CTAs of 4 warps stay.
void flash_backward(const Params& p, DType dtype, cudaStream_t stream) {
  dispatch_flash(dtype, p.d, [&](auto* tag, auto dim) {
    constexpr int kD = decltype(dim)::value;
    launch<std::remove_pointer_t<decltype(tag)>, kD, kD >= 128 ? 8 : 4>(p, stream);
  });
}

}  // namespace tessera::cuda::attn
