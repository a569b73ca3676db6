// The fused packed gemv on tensor cores: C = alpha A W^T + beta C (+ bias) for up to 8 rows of A
// (bf16 or f16) and a packed W [N, K], reading each packed weight once. A thread block owns 16
// rows of W, the M of an m16n8k16 mma.sync; the rows of A are its 8 columns (the N), so M = 1
// to 8 cost the same instructions. Its kWarps warps split K: lane (g, t) of a warp (g = lane / 4,
// t = lane % 4) takes unit u of rows g and g + 8 (16 weights each, kernels/packed_units.h) and
// turns them into the A fragment's registers (kernels/packed_pairs.h: a few integer ops and two
// pair ops per two weights, no conversion per weight); the lanes t of a quad take consecutive
// units, so a warp reads 8 rows x 4 units of contiguous bytes. The unit's 16 activations of row g
// of A, paired as its weights are (pairs are not in column order: mma does not care as long as
// both operands agree), are the B fragment. Each lane first issues the loads of kUnroll units of
// its two rows (>= 64 bytes in flight a lane), then converts and multiplies them. Products are
// exact and sums fp32 (the tensor cores'); each weight is rounded to A's dtype first, as the
// dequantize path's gemm sees it. The warps' sums meet in shared memory.
#include "kernels/cuda/gemv_packed_mma.h"

#include <algorithm>
#include <array>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemv_packed_out.cuh"
#include "kernels/cuda/mma_ptx.cuh"
#include "kernels/packed_pairs.h"

namespace tessera::cuda {

namespace pu = packed_units;
namespace pp = packed_pairs;

namespace {

constexpr int kTileRows = 16, kTokens = 8;

// Units in flight per lane and round: 64 bytes of codes for each scheme.
template <typename Pairs>
constexpr int unroll() {
  return sizeof(Pairs::Raw::w) == 8 ? 4 : 2;
}

template <int kWarps, typename T, typename Pairs>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_mma_kernel(void* c, DType c_dtype, const T* a, Pairs w, int64_t n, int64_t k, int m, float alpha, float beta,
                    const void* bias) {
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kUnroll = unroll<Pairs>(), kStep = kWarps * 4;  // units a block covers per unrolled step
  __shared__ float partial[kWarps][kTileRows * kTokens];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t row0 = int64_t(blockIdx.x) * kTileRows;
  // Rows past N read the last one; their outputs are never written.
  const int64_t rows[2] = {std::min(row0 + g, n - 1), std::min(row0 + g + 8, n - 1)};
  const int units = int(k / pu::kUnit);
  const bool token = g < m;  // lanes past A's rows multiply zeros
  const T* x = a + int64_t(token ? g : 0) * k;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int base = warp * 4; base < units; base += kStep * kUnroll) {
    typename Pairs::Raw raw[kUnroll][2];
    uint4 xs[kUnroll][2];
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      const int u = base + i * kStep + t;
      if (u < units) {
        w.load(rows[0], u, raw[i][0]);
        w.load(rows[1], u, raw[i][1]);
      }
      if (u < units && token) {
        xs[i][0] = *reinterpret_cast<const uint4*>(x + decltype(w.r)::first(u));
        xs[i][1] = *reinterpret_cast<const uint4*>(x + decltype(w.r)::second(u));
      } else {
        xs[i][0] = xs[i][1] = make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      if (base + i * kStep >= units) break;  // the whole warp: mma.sync needs every lane
      uint32_t lo[pp::kPairs] = {}, hi[pp::kPairs] = {}, b[pp::kPairs];
      if (base + i * kStep + t < units) {
        Pairs::template pairs<kBf16>(raw[i][0], lo);
        Pairs::template pairs<kBf16>(raw[i][1], hi);
      }
      const uint32_t xr[pp::kPairs] = {xs[i][0].x, xs[i][0].y, xs[i][0].z, xs[i][0].w,
                                       xs[i][1].x, xs[i][1].y, xs[i][1].z, xs[i][1].w};
      Pairs::x_pairs(b, xr);
      // k-step s: pairs 2s (columns 2t, 2t + 1 of the fragment) and 2s + 1 (columns 2t + 8, 2t + 9).
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        const uint32_t fragment[4] = {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]};
        ptx::mma_16816<T>(acc, fragment, b[2 * s], b[2 * s + 1]);
      }
    }
  }
  // acc: rows g and g + 8 of the tile, columns (rows of A) 2t and 2t + 1.
  float* p = partial[warp];
  p[g * kTokens + 2 * t] = acc[0];
  p[g * kTokens + 2 * t + 1] = acc[1];
  p[(g + 8) * kTokens + 2 * t] = acc[2];
  p[(g + 8) * kTokens + 2 * t + 1] = acc[3];
  __syncthreads();
  // blockDim >= 128 = kTileRows * kTokens
  store_block_out<kWarps, kTileRows * kTokens, kTokens>(partial, threadIdx.x, row0, n, m, c, c_dtype, alpha, beta, bias);
}

template <int kWarps, typename T, typename Pairs>
void launch(void* c, DType c_dtype, const T* a, const Pairs& w, int64_t n, int64_t k, int m, float alpha, float beta,
            const void* bias, cudaStream_t stream) {
  const unsigned blocks = unsigned((n + kTileRows - 1) / kTileRows);
  gemv_mma_kernel<kWarps, T, Pairs><<<blocks, kWarps * 32, 0, stream>>>(c, c_dtype, a, w, n, k, m, alpha, beta, bias);
}

// Warps per block by size: enough blocks x warps for ~16 warps an SM (a narrow W splits K more).
int warps_for(int64_t n, int device) {
  const int64_t blocks = (n + kTileRows - 1) / kTileRows, sms = sm_count(device);
  return blocks >= 4 * sms ? 4 : blocks >= 2 * sms ? 8 : 16;
}

}  // namespace

bool fused_gemv_mma_fits(const Tensor& a, const PackedTensor& w) {
  return (a.dtype() == DType::BF16 || a.dtype() == DType::F16) && w.spec.scheme != QuantScheme::NF4;
}

void fused_gemv_mma(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha, float beta,
                    const Tensor& bias) {
  const int warps = warps_for(s.n, c.device().index);
  cudaStream_t stream = stream_of(c);
  const size_t c_size = dtype_size(c.dtype());
  pu::with_reader(w, nullptr, [&](const auto& reader) {
    using Reader = std::decay_t<decltype(reader)>;
    if constexpr (pp::has_pairs<Reader>) {
      const auto pairs = pp::pairs_of(reader);
      auto run = [&](auto* type) {
        using T = std::remove_pointer_t<decltype(type)>;
        for (int64_t m0 = 0; m0 < s.m; m0 += kTokens) {
          const int m = int(std::min<int64_t>(kTokens, s.m - m0));
          void* out = static_cast<uint8_t*>(c.data()) + m0 * s.n * c_size;
          const T* rows = a.data_as<T>() + m0 * s.k;
          const void* b = bias.defined() ? bias.data() : nullptr;
          if (warps == 4) launch<4>(out, c.dtype(), rows, pairs, s.n, s.k, m, alpha, beta, b, stream);
          else if (warps == 8) launch<8>(out, c.dtype(), rows, pairs, s.n, s.k, m, alpha, beta, b, stream);
          else launch<16>(out, c.dtype(), rows, pairs, s.n, s.k, m, alpha, beta, b, stream);
        }
      };
      if (a.dtype() == DType::BF16) run(static_cast<__nv_bfloat16*>(nullptr));
      else run(static_cast<__half*>(nullptr));
    }
  });
  check_launch();
}

}  // namespace tessera::cuda
