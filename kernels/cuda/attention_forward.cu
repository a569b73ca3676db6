// Tensor-core attention forward, flash style, on mma.sync: a CTA takes 64 queries of one head,
// 4 warps of 16 rows each, and walks the key tiles up to the diagonal (later tiles are fully
// masked), 64 keys at a time, the next K/V tile copied asynchronously while this one is used.
// Everything per row stays in registers: S = Q K^T lands in mma accumulators, the mask and the
// online softmax run on them (a row's 64 scores sit in the 4 lanes of one quad), and the
// accumulator layout of P is exactly the A-operand layout of P V, so P never visits shared memory.
#include "kernels/cuda/attention_tiles.cuh"

namespace tessera::cuda::attn {

namespace {

template <int kD>
struct ForwardSmem {
  static constexpr size_t kTileElems = kTile * ld_rows<kD>;
  static constexpr size_t kBytes = 5 * kTileElems * 2;  // Q, then K and V twice (double buffered)
};

// grid (query tiles, hq, b); the heaviest tiles (most keys) launch first.
template <typename T, int kD>
__global__ void __launch_bounds__(kTileThreads) forward_kernel(Params p) {
  constexpr int kLd = ld_rows<kD>;
  constexpr int kKeyTiles = kTile / 8;  // 8-key column blocks of S
  constexpr int kDimTiles = kD / 8;     // 8-dim column blocks of O
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem);
  // K and V of stage s sit at tiles 1 + 2s and 2 + 2s (arithmetic, not an array: no local memory).
  auto k_stage = [&](int stage) { return qs + (1 + 2 * stage) * ForwardSmem<kD>::kTileElems; };
  auto v_stage = [&](int stage) { return qs + (2 + 2 * stage) * ForwardSmem<kD>::kTileElems; };

  const int64_t qb = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / p.group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t q0 = qb * kTile;
  const T* k_base = static_cast<const T*>(p.k);
  const T* v_base = static_cast<const T*>(p.v);
  copy_tile_async<T, kD>(qs, static_cast<const T*>(p.q), b, q0, p.s, p.hq, h);
  copy_tile_async<T, kD>(k_stage(0), k_base, b, 0, p.s, p.hkv, kvh);
  copy_tile_async<T, kD>(v_stage(0), v_base, b, 0, p.s, p.hkv, kvh);
  ptx::cp_async_commit();

  // This lane's two rows: g and g + 8 of the warp's 16.
  int64_t rows[2];
  int32_t seg_rows[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    rows[r] = q0 + warp * 16 + g + 8 * r;
    seg_rows[r] = rows[r] < p.s ? p.segment(b, rows[r]) : 0;
  }
  const float scale2 = p.scale * kLog2e;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this lane's share of the row sum
  float o[kDimTiles][4] = {};
  uint32_t q_frags[kD / 16][4];

  for (int64_t kb = 0; kb <= qb; ++kb) {
    const int stage = kb % 2;
    if (kb < qb) {  // prefetch the next tile into the other stage
      copy_tile_async<T, kD>(k_stage(stage ^ 1), k_base, b, (kb + 1) * kTile, p.s, p.hkv, kvh);
      copy_tile_async<T, kD>(v_stage(stage ^ 1), v_base, b, (kb + 1) * kTile, p.s, p.hkv, kvh);
      ptx::cp_async_commit();
      ptx::cp_async_wait<1>();
    } else {
      ptx::cp_async_wait<0>();
    }
    __syncthreads();
    if (kb == 0) {  // Q stays in registers for every key tile
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk)
        load_a(q_frags[kk], qs, kLd, warp * 16, kk * 16);
    }
    if (p.tiles_disjoint(b, qb, kb)) {  // other documents only (never the diagonal tile)
      __syncthreads();
      continue;
    }

    // S = Q K^T, two 8-key blocks at a time.
    float s[kKeyTiles][4] = {};
    const T* k_tile = k_stage(stage);
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < kKeyTiles / 2; ++np) {
        uint32_t kf[4];
        load_b_rows(kf, k_tile, kLd, np * 16, kk * 16);
        ptx::mma_16816<T>(s[2 * np], q_frags[kk], kf[0], kf[1]);
        ptx::mma_16816<T>(s[2 * np + 1], q_frags[kk], kf[2], kf[3]);
      }
    }

    // Mask, then online softmax in base 2. Element e of block nt: row rows[e / 2], key column
    // nt * 8 + 2t + e % 2. Only the diagonal tile and segment ids can mask a real query's key.
    const int64_t k0 = kb * kTile;
    const bool diagonal = kb == qb;
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t j = k0 + nt * 8 + 2 * t + e % 2, i = rows[e / 2];
        bool ok = !diagonal || j <= i;
        if (p.segments) ok = ok && j < p.s && p.segment(b, j) == seg_rows[e / 2];
        s[nt][e] = ok ? s[nt][e] * scale2 : -INFINITY;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], s[nt][e]);
      }
    }
    float alpha[2], shift[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      const float m_new = fmaxf(m[r], tile_max[r]);
      shift[r] = m_new == -INFINITY ? 0.0f : m_new;  // nothing seen yet: keep exp2 finite
      alpha[r] = exp2f(m[r] - shift[r]);
      m[r] = m_new;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2f(s[nt][e] - shift[e / 2]);
        l[e / 2] += s[nt][e];
      }
    }
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
      o[dt][0] *= alpha[0];
      o[dt][1] *= alpha[0];
      o[dt][2] *= alpha[1];
      o[dt][3] *= alpha[1];
    }

    // O += P V over 16 keys at a time.
    const T* v_tile = v_stage(stage);
#pragma unroll
    for (int ks16 = 0; ks16 < kTile / 16; ++ks16) {
      uint32_t pa[4];
      accumulators_as_a<T>(pa, s, ks16);
#pragma unroll
      for (int dp = 0; dp < kDimTiles / 2; ++dp) {
        uint32_t vf[4];
        load_b_trans(vf, v_tile, kLd, ks16 * 16, dp * 16);
        ptx::mma_16816<T>(o[2 * dp], pa, vf[0], vf[1]);
        ptx::mma_16816<T>(o[2 * dp + 1], pa, vf[2], vf[3]);
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites this stage
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    if (rows[r] >= p.s) continue;
    const float inv_l = 1.0f / l[r];  // l >= 1: the diagonal key is always seen
    T* out = static_cast<T*>(p.out) + p.q_offset(b, rows[r], h) + 2 * t;
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt)
      *reinterpret_cast<uint32_t*>(out + dt * 8) = ptx::pack2<T>(o[dt][2 * r] * inv_l, o[dt][2 * r + 1] * inv_l);
    if (t == 0) p.lse[p.row_offset(b, h, rows[r])] = (m[r] + log2f(l[r])) * kLn2;
  }
}

template <typename T, int kD>
void launch(const Params& p, cudaStream_t stream) {
  constexpr size_t smem = ForwardSmem<kD>::kBytes;
  TS_CUDA_CHECK(cudaFuncSetAttribute(forward_kernel<T, kD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid((p.s + kTile - 1) / kTile, p.hq, p.b);
  forward_kernel<T, kD><<<grid, kTileThreads, smem, stream>>>(p);
  check_launch();
}

}  // namespace

void flash_forward(const Params& p, DType dtype, cudaStream_t stream) {
  dispatch_flash(dtype, p.d, [&](auto* tag, auto dim) {
    launch<std::remove_pointer_t<decltype(tag)>, decltype(dim)::value>(p, stream);
  });
}

}  // namespace tessera::cuda::attn
