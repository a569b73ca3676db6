// Tensor-core attention forward on mma.sync (sm_80 and up), used where the Hopper kernel
// (attention_forward_sm90.cu) does not apply: head dims 32 and 96, other GPUs. A CTA takes 128
// queries of one head, 8 warps of 16 rows each, and walks the key tiles up to its last query, 64
// keys at a time, the next K/V tile copied asynchronously while this one is used. Everything per
// row stays in registers: S = Q K^T lands in mma accumulators, the mask and the online softmax run
// on them, and the accumulator layout of P is exactly the A-operand layout of P V, so P never
// visits shared memory. With Q read from shared memory (not held in registers) two CTAs fit on an
// SM: measured on the H100, that beat 64-row CTAs, Q in registers, and 32 rows per warp.
#include "kernels/cuda/attention_softmax.cuh"
#include "kernels/cuda/attention_tiles.cuh"

namespace tessera::cuda::attn {

namespace {

constexpr int kForwardWarps = 8;
constexpr int kForwardThreads = kForwardWarps * 32;
constexpr int kForwardRows = kForwardWarps * 16;  // queries per CTA

template <int kD>
struct ForwardSmem {
  static constexpr size_t kQElems = size_t(kForwardRows) * ld_rows<kD>;
  static constexpr size_t kKvElems = size_t(kTile) * ld_rows<kD>;
  static constexpr size_t kBytes = (kQElems + 4 * kKvElems) * 2;  // Q, then K and V twice (double buffered)
};

// grid (query blocks, hq, b); the heaviest blocks (most keys) launch first.
template <typename T, int kD>
__global__ void __launch_bounds__(kForwardThreads, 2) forward_kernel(Params p) {
  constexpr int kLd = ld_rows<kD>;
  constexpr int kKeyBlocks = kTile / 8;  // 8-key column blocks of S
  constexpr int kDimBlocks = kD / 8;     // 8-dim column blocks of O
  using Smem = ForwardSmem<kD>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem);
  // K and V of stage s (arithmetic, not an array: no local memory).
  auto k_stage = [&](int stage) { return qs + Smem::kQElems + (2 * stage) * Smem::kKvElems; };
  auto v_stage = [&](int stage) { return qs + Smem::kQElems + (2 * stage + 1) * Smem::kKvElems; };

  const int64_t qb = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / p.group;
  const int warp = threadIdx.x / 32, g = (threadIdx.x % 32) / 4;
  const int64_t q0 = qb * kForwardRows;
  const int warp_row0 = warp * 16;  // relative to q0
  const T* k_base = static_cast<const T*>(p.k);
  const T* v_base = static_cast<const T*>(p.v);
  copy_tile_async<T, kD, kForwardRows, kForwardThreads>(qs, static_cast<const T*>(p.q), b, q0, p.s, p.hq, h);
  copy_tile_async<T, kD, kTile, kForwardThreads>(k_stage(0), k_base, b, 0, p.s, p.hkv, kvh);
  copy_tile_async<T, kD, kTile, kForwardThreads>(v_stage(0), v_base, b, 0, p.s, p.hkv, kvh);
  ptx::cp_async_commit();

  // This lane's two query rows: g and g + 8 of the warp's 16.
  int64_t rows[2];
  int32_t seg_rows[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    rows[r] = q0 + warp_row0 + g + 8 * r;
    seg_rows[r] = rows[r] < p.s ? p.segment(b, rows[r]) : 0;
  }
  RowSoftmax<kKeyBlocks> softmax{.scale2 = p.scale * kLog2e};
  float o[kDimBlocks][4] = {};

  const int64_t last_row = min(q0 + kForwardRows, p.s) - 1;
  const int64_t key_tiles = last_row / kTile + 1;
  const int64_t first_qt = q0 / kTile, last_qt = last_row / kTile;
  for (int64_t kb = 0; kb < key_tiles; ++kb) {
    const int stage = kb % 2;
    if (kb + 1 < key_tiles) {  // prefetch the next tile into the other stage
      copy_tile_async<T, kD, kTile, kForwardThreads>(k_stage(stage ^ 1), k_base, b, (kb + 1) * kTile, p.s, p.hkv, kvh);
      copy_tile_async<T, kD, kTile, kForwardThreads>(v_stage(stage ^ 1), v_base, b, (kb + 1) * kTile, p.s, p.hkv, kvh);
      ptx::cp_async_commit();
      ptx::cp_async_wait<1>();
    } else {
      ptx::cp_async_wait<0>();
    }
    __syncthreads();
    const int k_rel = int(kb * kTile - q0);  // the tile's first key, relative to q0
    // Causal: a warp whose rows all precede the tile sees none of it; segment ids can rule out a
    // whole tile (never the diagonal one).
    if (k_rel <= warp_row0 + 15 && !p.tiles_disjoint(b, first_qt, last_qt, kb)) {
      // S = Q K^T, two 8-key blocks at a time.
      float s[kKeyBlocks][4] = {};
      const T* k_tile = k_stage(stage);
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        uint32_t qa[4];
        load_a(qa, qs, kLd, warp_row0, kk * 16);
#pragma unroll
        for (int np = 0; np < kKeyBlocks / 2; ++np) {
          uint32_t kf[4];
          load_b_rows(kf, k_tile, kLd, np * 16, kk * 16);
          ptx::mma_16816<T>(s[2 * np], qa, kf[0], kf[1]);
          ptx::mma_16816<T>(s[2 * np + 1], qa, kf[2], kf[3]);
        }
      }
      // Only tiles reaching past the warp's first row need the causal mask (keys past the
      // sequence end only occur in those), and only tiles across a document boundary the
      // segment test.
      const bool by_segment = !p.one_segment(b, first_qt, last_qt, kb, kb);
      if (by_segment || k_rel + kTile - 1 > warp_row0) mask_scores(s, p, b, kb * kTile, rows, seg_rows, by_segment);
      float alpha[2];
      softmax.update(s, alpha);
      rescale(o, alpha);

      // O += P V over 16 keys at a time.
      const T* v_tile = v_stage(stage);
#pragma unroll
      for (int ks16 = 0; ks16 < kTile / 16; ++ks16) {
        uint32_t pa[4];
        accumulators_as_a<T>(pa, s, ks16);
#pragma unroll
        for (int dp = 0; dp < kDimBlocks / 2; ++dp) {
          uint32_t vf[4];
          load_b_trans(vf, v_tile, kLd, ks16 * 16, dp * 16);
          ptx::mma_16816<T>(o[2 * dp], pa, vf[0], vf[1]);
          ptx::mma_16816<T>(o[2 * dp + 1], pa, vf[2], vf[3]);
        }
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites this stage
  }
  softmax.template store<T>(o, p, b, h, rows);
}

template <typename T, int kD>
void launch(const Params& p, cudaStream_t stream) {
  constexpr size_t smem = ForwardSmem<kD>::kBytes;
  TS_CUDA_CHECK(cudaFuncSetAttribute(forward_kernel<T, kD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid((p.s + kForwardRows - 1) / kForwardRows, p.hq, p.b);
  forward_kernel<T, kD><<<grid, kForwardThreads, smem, stream>>>(p);
  check_launch();
}

}  // namespace

void flash_forward(const Params& p, DType dtype, cudaStream_t stream) {
  dispatch_flash(dtype, p.d, [&](auto* tag, auto dim) {
    launch<std::remove_pointer_t<decltype(tag)>, decltype(dim)::value>(p, stream);
  });
}

}  // namespace tessera::cuda::attn
