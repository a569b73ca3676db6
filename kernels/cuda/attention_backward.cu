// Tensor-core attention backward, FA2 style: a CTA owns 64 keys of one kv head, 4 warps of 16
// keys each, and walks every query head of the group and every query tile at or after the
// diagonal. Per tile a warp computes S^T = K Q^T and dP^T = V dO^T for its keys, turns them into
// P^T = exp(scale S^T - lse) and dS^T = P^T (dP^T - delta) in fp32, and adds P^T dO to dV and
// dS^T Q to dK in register fragments. dQ needs every key of the tile, so after a barrier each
// warp multiplies 16 query rows of dS by K and adds them into an fp32 buffer with atomics.
#include "kernels/cuda/attention_tiles.cuh"

namespace tessera::cuda::attn {

namespace {

template <int kD>
struct BackwardSmem {
  static constexpr size_t kTileBytes = kTile * ld_rows<kD> * 2;
  static constexpr size_t kK = 0;
  static constexpr size_t kV = kK + kTileBytes;
  static constexpr size_t kQ = kV + kTileBytes;
  static constexpr size_t kDo = kQ + kTileBytes;
  static constexpr size_t kS = kDo + kTileBytes;                        // S^T, f32
  static constexpr size_t kDp = kS + kTile * kLdScores * 4;             // dP^T, f32
  static constexpr size_t kP = kDp + kTile * kLdScores * 4;             // P^T
  static constexpr size_t kDs = kP + kTile * kLdProbs * 2;              // dS^T
  static constexpr size_t kScratch = kDs + kTile * kLdProbs * 2;        // one 16x16 f32 block per warp
  static constexpr size_t kLse = kScratch + kWarps * 256 * 4;           // per query: lse * log2 e
  static constexpr size_t kDelta = kLse + kTile * 4;
  static constexpr size_t kSegQ = kDelta + kTile * 4;
  static constexpr size_t kBytes = kSegQ + kTile * 4;
};

// Writes a 16x16 fp32 fragment through the warp's scratch block: fn(row, col, value) per element.
template <typename Fn>
__device__ __forceinline__ void for_each_element(const FragC& frag, float* scratch, Fn&& fn) {
  wmma::store_matrix_sync(scratch, frag, 16, wmma::mem_row_major);
  __syncwarp();
  for (int e = threadIdx.x % 32; e < 256; e += 32) fn(e / 16, e % 16, scratch[e]);
  __syncwarp();
}

// grid (key tiles, hkv, b).
template <typename T, int kD>
__global__ void __launch_bounds__(kTileThreads) backward_kernel(Params p) {
  using L = BackwardSmem<kD>;
  constexpr int kLd = ld_rows<kD>;
  constexpr int kFrags = kD / 16;
  extern __shared__ __align__(128) unsigned char smem[];
  T* ks = reinterpret_cast<T*>(smem + L::kK);
  T* vs = reinterpret_cast<T*>(smem + L::kV);
  T* qs = reinterpret_cast<T*>(smem + L::kQ);
  T* dos = reinterpret_cast<T*>(smem + L::kDo);
  float* st = reinterpret_cast<float*>(smem + L::kS);
  float* dpt = reinterpret_cast<float*>(smem + L::kDp);
  T* pt = reinterpret_cast<T*>(smem + L::kP);
  T* dst = reinterpret_cast<T*>(smem + L::kDs);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* scratch = reinterpret_cast<float*>(smem + L::kScratch) + warp * 256;
  float* lse2 = reinterpret_cast<float*>(smem + L::kLse);
  float* delta = reinterpret_cast<float*>(smem + L::kDelta);
  int32_t* seg_q = reinterpret_cast<int32_t*>(smem + L::kSegQ);

  const int64_t kb = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int64_t k0 = kb * kTile;
  load_tile<T, kD>(ks, static_cast<const T*>(p.k), b, k0, p.s, p.hkv, kvh);
  load_tile<T, kD>(vs, static_cast<const T*>(p.v), b, k0, p.s, p.hkv, kvh);

  // Lanes 2r and 2r+1 share key row `row` of the tile, each taking 32 query columns.
  const int row = warp * 16 + lane / 2, half = lane % 2;
  const int64_t j = k0 + row;
  const int32_t seg_j = j < p.s ? p.segment(b, j) : 0;
  const float scale2 = p.scale * kLog2e;
  FragC dk[kFrags], dv[kFrags];
#pragma unroll
  for (int f = 0; f < kFrags; ++f) {
    wmma::fill_fragment(dk[f], 0.0f);
    wmma::fill_fragment(dv[f], 0.0f);
  }

  const int64_t q_tiles = (p.s + kTile - 1) / kTile;
  for (int64_t h = kvh * p.group; h < (kvh + 1) * p.group; ++h) {
    for (int64_t qb = kb; qb < q_tiles; ++qb) {  // earlier query tiles never see these keys
      if (p.tiles_disjoint(b, qb, kb)) continue;  // other documents only (never the diagonal tile)
      const int64_t q0 = qb * kTile;
      __syncthreads();  // the previous Q, dO, P^T, dS^T are no longer read
      load_tile<T, kD>(qs, static_cast<const T*>(p.q), b, q0, p.s, p.hq, h);
      load_tile<T, kD>(dos, static_cast<const T*>(p.dout), b, q0, p.s, p.hq, h);
      if (threadIdx.x < kTile) {
        const int64_t i = q0 + threadIdx.x;
        const bool in = i < p.s;
        lse2[threadIdx.x] = in ? p.lse_in[p.row_offset(b, h, i)] * kLog2e : 0.0f;
        delta[threadIdx.x] = in ? p.delta[p.row_offset(b, h, i)] : 0.0f;
        seg_q[threadIdx.x] = in ? p.segment(b, i) : 0;
      }
      __syncthreads();

      // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys.
      for (int n = 0; n < kTile / 16; ++n) {
        FragC s_acc, dp_acc;
        wmma::fill_fragment(s_acc, 0.0f);
        wmma::fill_fragment(dp_acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < kFrags; ++kk) {
          FragA<T> a;
          FragBt<T> bt;
          wmma::load_matrix_sync(a, ks + warp * 16 * kLd + kk * 16, kLd);
          wmma::load_matrix_sync(bt, qs + n * 16 * kLd + kk * 16, kLd);
          wmma::mma_sync(s_acc, a, bt, s_acc);
          wmma::load_matrix_sync(a, vs + warp * 16 * kLd + kk * 16, kLd);
          wmma::load_matrix_sync(bt, dos + n * 16 * kLd + kk * 16, kLd);
          wmma::mma_sync(dp_acc, a, bt, dp_acc);
        }
        wmma::store_matrix_sync(st + warp * 16 * kLdScores + n * 16, s_acc, kLdScores, wmma::mem_row_major);
        wmma::store_matrix_sync(dpt + warp * 16 * kLdScores + n * 16, dp_acc, kLdScores, wmma::mem_row_major);
      }
      __syncwarp();

      // P^T and dS^T for key row `row`; masked entries (and query rows past the end) are zero.
#pragma unroll 8
      for (int c = 0; c < 32; ++c) {
        const int col = half * 32 + c;
        const int64_t i = q0 + col;
        float prob = 0.0f, ds = 0.0f;
        if (i < p.s && j < p.s && sees(i, j, seg_q[col], seg_j)) {
          prob = exp2f(st[row * kLdScores + col] * scale2 - lse2[col]);
          ds = prob * (dpt[row * kLdScores + col] - delta[col]);
        }
        pt[row * kLdProbs + col] = from_f32<T>(prob);
        dst[row * kLdProbs + col] = from_f32<T>(ds);
      }
      __syncwarp();

      // dV += P^T dO, dK += dS^T Q.
#pragma unroll
      for (int f = 0; f < kFrags; ++f) {
#pragma unroll
        for (int n = 0; n < kTile / 16; ++n) {
          FragA<T> a;
          FragB<T> bm;
          wmma::load_matrix_sync(a, pt + warp * 16 * kLdProbs + n * 16, kLdProbs);
          wmma::load_matrix_sync(bm, dos + n * 16 * kLd + f * 16, kLd);
          wmma::mma_sync(dv[f], a, bm, dv[f]);
          wmma::load_matrix_sync(a, dst + warp * 16 * kLdProbs + n * 16, kLdProbs);
          wmma::load_matrix_sync(bm, qs + n * 16 * kLd + f * 16, kLd);
          wmma::mma_sync(dk[f], a, bm, dk[f]);
        }
      }
      __syncthreads();  // dS^T complete for all 64 keys

      // dQ[16 rows of this warp] += scale * dS K, where dS is dS^T read transposed.
      const int64_t i0 = q0 + warp * 16;
      if (i0 >= p.s) continue;
      for (int f = 0; f < kFrags; ++f) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int n = 0; n < kTile / 16; ++n) {
          FragAt<T> at;
          FragB<T> bk;
          wmma::load_matrix_sync(at, dst + n * 16 * kLdProbs + warp * 16, kLdProbs);
          wmma::load_matrix_sync(bk, ks + n * 16 * kLd + f * 16, kLd);
          wmma::mma_sync(acc, at, bk, acc);
        }
        for_each_element(acc, scratch, [&](int r, int c, float value) {
          if (i0 + r < p.s) atomicAdd(p.dq_accum + p.q_offset(b, i0 + r, h) + f * 16 + c, value * p.scale);
        });
      }
    }
  }

  const int64_t j0 = k0 + warp * 16;
  T* dk_out = static_cast<T*>(p.dk);
  T* dv_out = static_cast<T*>(p.dv);
#pragma unroll
  for (int f = 0; f < kFrags; ++f) {
    for_each_element(dk[f], scratch, [&](int r, int c, float value) {
      if (j0 + r < p.s) dk_out[p.kv_offset(b, j0 + r, kvh) + f * 16 + c] = from_f32<T>(value * p.scale);
    });
    for_each_element(dv[f], scratch, [&](int r, int c, float value) {
      if (j0 + r < p.s) dv_out[p.kv_offset(b, j0 + r, kvh) + f * 16 + c] = from_f32<T>(value);
    });
  }
}

template <typename T, int kD>
void launch(const Params& p, cudaStream_t stream) {
  constexpr size_t smem = BackwardSmem<kD>::kBytes;
  TS_CUDA_CHECK(cudaFuncSetAttribute(backward_kernel<T, kD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid((p.s + kTile - 1) / kTile, p.hkv, p.b);
  backward_kernel<T, kD><<<grid, kTileThreads, smem, stream>>>(p);
  check_launch();
}

template <typename T>
void launch_for_dim(const Params& p, cudaStream_t stream) {
  switch (p.d) {
    case 32: return launch<T, 32>(p, stream);
    case 64: return launch<T, 64>(p, stream);
    case 96: return launch<T, 96>(p, stream);
    case 128: return launch<T, 128>(p, stream);
    default: throw Error("attention: no tensor-core kernel for head dim " + std::to_string(p.d));
  }
}

}  // namespace

void flash_backward(const Params& p, DType dtype, cudaStream_t stream) {
  if (dtype == DType::BF16) return launch_for_dim<__nv_bfloat16>(p, stream);
  if (dtype == DType::F16) return launch_for_dim<__half>(p, stream);
  throw Error("attention: tensor-core kernels take bf16 or f16, got " + std::string(dtype_name(dtype)));
}

}  // namespace tessera::cuda::attn
