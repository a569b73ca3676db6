// Tensor-core attention forward, flash style: a CTA takes 64 queries of one head, 4 warps of 16
// rows each, and walks the key tiles up to the diagonal (later tiles are fully masked), 64 keys
// at a time. Per tile a warp computes S = Q K^T with wmma, applies mask and online softmax in
// fp32 on its own rows (two lanes per row), rescales its O rows and adds P V. O lives in shared
// memory in fp32 because wmma's accumulator layout is opaque, so rows cannot be rescaled in registers.
#include "kernels/cuda/attention_tiles.cuh"

namespace tessera::cuda::attn {

namespace {

template <int kD>
struct ForwardSmem {
  static constexpr int kLdO = kD + 4;
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + kTile * ld_rows<kD> * 2;
  static constexpr size_t kV = kK + kTile * ld_rows<kD> * 2;
  static constexpr size_t kS = kV + kTile * ld_rows<kD> * 2;
  static constexpr size_t kP = kS + kTile * kLdScores * 4;
  static constexpr size_t kO = kP + kTile * kLdProbs * 2;
  static constexpr size_t kSeg = kO + kTile * kLdO * 4;
  static constexpr size_t kBytes = kSeg + kTile * 4;
};

// grid (query tiles, hq, b); the heaviest tiles (most keys) launch first.
template <typename T, int kD>
__global__ void __launch_bounds__(kTileThreads) forward_kernel(Params p) {
  using L = ForwardSmem<kD>;
  constexpr int kLd = ld_rows<kD>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + L::kQ);
  T* ks = reinterpret_cast<T*>(smem + L::kK);
  T* vs = reinterpret_cast<T*>(smem + L::kV);
  float* ss = reinterpret_cast<float*>(smem + L::kS);
  T* ps = reinterpret_cast<T*>(smem + L::kP);
  float* os = reinterpret_cast<float*>(smem + L::kO);
  int32_t* seg_k = reinterpret_cast<int32_t*>(smem + L::kSeg);

  const int64_t qb = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / p.group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t q0 = qb * kTile;
  load_tile<T, kD>(qs, static_cast<const T*>(p.q), b, q0, p.s, p.hq, h);
  for (int idx = threadIdx.x; idx < kTile * L::kLdO; idx += kTileThreads) os[idx] = 0.0f;
  __syncthreads();
  FragA<T> q_frags[kD / 16];  // this warp's 16 query rows stay in registers for every key tile
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) wmma::load_matrix_sync(q_frags[kk], qs + warp * 16 * kLd + kk * 16, kLd);

  // Lanes 2r and 2r+1 of a warp share row `row`, each taking half of its columns.
  const int row = warp * 16 + lane / 2, half = lane % 2;
  const int64_t i = q0 + row;
  const int32_t seg_i = i < p.s ? p.segment(b, i) : 0;
  const float scale2 = p.scale * kLog2e;
  float m = -INFINITY, l = 0.0f;

  for (int64_t kb = 0; kb <= qb; ++kb) {
    const int64_t k0 = kb * kTile;
    __syncthreads();  // the previous K, V tiles are no longer read
    load_tile<T, kD>(ks, static_cast<const T*>(p.k), b, k0, p.s, p.hkv, kvh);
    load_tile<T, kD>(vs, static_cast<const T*>(p.v), b, k0, p.s, p.hkv, kvh);
    if (threadIdx.x < kTile) seg_k[threadIdx.x] = k0 + threadIdx.x < p.s ? p.segment(b, k0 + threadIdx.x) : 0;
    __syncthreads();

    // S = Q K^T for this warp's 16 rows.
    for (int n = 0; n < kTile / 16; ++n) {
      FragC acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        FragBt<T> bt;
        wmma::load_matrix_sync(bt, ks + n * 16 * kLd + kk * 16, kLd);
        wmma::mma_sync(acc, q_frags[kk], bt, acc);
      }
      wmma::store_matrix_sync(ss + warp * 16 * kLdScores + n * 16, acc, kLdScores, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax over this lane's 32 columns; max and sum are shared with the partner lane.
    const float* srow = ss + row * kLdScores + half * 32;
    float x[32];
    float tile_max = -INFINITY;
#pragma unroll
    for (int c = 0; c < 32; ++c) {
      const int64_t j = k0 + half * 32 + c;
      const bool ok = i < p.s && sees(i, j, seg_i, seg_k[half * 32 + c]);
      x[c] = ok ? srow[c] * scale2 : -INFINITY;
      tile_max = fmaxf(tile_max, x[c]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const float shift = m_new == -INFINITY ? 0.0f : m_new;  // nothing seen yet: keep exp2 finite
    const float alpha = exp2f(m - shift);
    float sum = 0.0f;
    T* prow = ps + row * kLdProbs + half * 32;
#pragma unroll
    for (int c = 0; c < 32; ++c) {
      const float e = exp2f(x[c] - shift);
      sum += e;
      prow[c] = from_f32<T>(e);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * alpha + sum;
    m = m_new;
    float* orow = os + row * L::kLdO + half * (kD / 2);
#pragma unroll 8
    for (int c = 0; c < kD / 2; ++c) orow[c] *= alpha;
    __syncwarp();

    // O += P V on this warp's rows.
    for (int f = 0; f < kD / 16; ++f) {
      FragC acc;
      float* o_frag = os + warp * 16 * L::kLdO + f * 16;
      wmma::load_matrix_sync(acc, o_frag, L::kLdO, wmma::mem_row_major);
#pragma unroll
      for (int n = 0; n < kTile / 16; ++n) {
        FragA<T> a;
        FragB<T> bv;
        wmma::load_matrix_sync(a, ps + warp * 16 * kLdProbs + n * 16, kLdProbs);
        wmma::load_matrix_sync(bv, vs + n * 16 * kLd + f * 16, kLd);
        wmma::mma_sync(acc, a, bv, acc);
      }
      wmma::store_matrix_sync(o_frag, acc, L::kLdO, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (i >= p.s) return;
  const float* orow = os + row * L::kLdO + half * (kD / 2);
  T* out = static_cast<T*>(p.out) + p.q_offset(b, i, h) + half * (kD / 2);
  const float inv_l = 1.0f / l;  // l >= 1: the diagonal key is always seen
  for (int c = 0; c < kD / 2; ++c) out[c] = from_f32<T>(orow[c] * inv_l);
  if (half == 0) p.lse[p.row_offset(b, h, i)] = (m + log2f(l)) * kLn2;
}

template <typename T, int kD>
void launch(const Params& p, cudaStream_t stream) {
  constexpr size_t smem = ForwardSmem<kD>::kBytes;
  TS_CUDA_CHECK(cudaFuncSetAttribute(forward_kernel<T, kD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid((p.s + kTile - 1) / kTile, p.hq, p.b);
  forward_kernel<T, kD><<<grid, kTileThreads, smem, stream>>>(p);
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

bool flash_supports(int64_t head_dim) { return head_dim == 32 || head_dim == 64 || head_dim == 96 || head_dim == 128; }

void flash_forward(const Params& p, DType dtype, cudaStream_t stream) {
  if (dtype == DType::BF16) return launch_for_dim<__nv_bfloat16>(p, stream);
  if (dtype == DType::F16) return launch_for_dim<__half>(p, stream);
  throw Error("attention: tensor-core kernels take bf16 or f16, got " + std::string(dtype_name(dtype)));
}

}  // namespace tessera::cuda::attn
