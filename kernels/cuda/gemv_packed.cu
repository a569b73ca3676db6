// The fused W8A16/W4A16 gemv: C = alpha A W^T + beta C (+ bias) for a packed W [N, K] and a few
// rows of A (decoding), reading each packed weight once. Memory-bound: a thread block of kWarps
// warps owns kRows rows of W (8, or 4 for 3-4 rows of A); its warps split K into chunks of 32
// units (kernels/packed_units.h: 16 weights each), lane l of a warp taking unit l of a chunk. The
// lane loads the activations its unit covers once per chunk (into registers, with their sum) and
// reuses them for the block's kRows weight rows: per unit, dot = sum(code * x) and the unit adds
// scale * (dot - zero * sum(x)), which is sum((code - zero) * scale * x), the dequantized weights'
// product, in fp32. The warps' sums meet in shared memory. Up to 4 rows of A per launch; more
// run as several launches.
//
// fused_gemv runs this kernel ("v1") or the tensor-core one of gemv_packed_mma.cu ("mma"). By
// default (auto) the faster one as measured on the H200 (session 7 call C: mma summed over every
// shape, scheme and M 4,038 us against v1's 5,449, but v1 ahead for int8, q8_0 and q4_0 at M = 1-2:
// 8B int8 M=1 1.31x bf16 against 0.96x), so v1 for those; TESSERA_PACKED_GEMV=v1 or mma forces one
// (read at each call, so that bench/quant_gemv_bench compares them in one process); wide and wide4
// are mma reading int4 32 weights a load, group the same with each group's scale applied to its
// fp32 sum at 1-2 rows of A; stream is group on persistent blocks streaming through a register ring
// (gemv_packed_stream.cu); rows streams int8 a weight row a warp as the bf16 gemv does
// (gemv_packed_rows.cu; other schemes run v1), which auto takes for int8 at one row of A where
// the product's rows are no more than K (rows_faster). Auto takes stream for int4 at 1-2 rows (session
// 10 call B: 8B batch-1 decode 368.9 tok/s against group's 319.5; the fused q/k/v and gate/up at depth 2 11.3 / 28.4 us
// against group's 12.1 / 32.5, 1B 7.5 / 11.9 against 7.5 / 13.5). Products the mma kernel does not
// take (an f32 A, nf4) run v1.
//
// Every kernel takes a stack of weights (gemv_packed_out.cuh: q, k and v in one launch, or gate and
// up with the SwiGLU in the epilogue), and is launched to overlap its predecessor inside an
// ops::LaunchOverlap scope: it lets the next kernel start at once and waits for the one before it
// only before reading A (the tensor-core kernels once their first weights are in flight).
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/gemv_packed.h"
#include "kernels/cuda/gemv_packed_mma.h"
#include "kernels/cuda/gemv_packed_rows.h"
#include "kernels/cuda/gemv_packed_out.cuh"
#include "kernels/cuda/nf4_tables.h"
#include "kernels/ops.h"
#include "kernels/packed_units.h"

namespace tessera::cuda {

namespace pu = packed_units;

namespace {

constexpr int kWarps = 4;

// Weight rows per thread block: 8 for 1-2 rows of A (each lane then has 8 independent weight loads
// in flight, at 64-96 registers; at 4 rows the H200 ran the int4 projections at 1-1.5 TB/s), 4 for
// 3-4 rows of A (the activations' registers).
template <int kM>
constexpr int rows_per_block() {
  return kM <= 2 ? 8 : 4;
}

template <int kM, bool kSwiglu, typename TA, typename Reader>
__global__ void __launch_bounds__(kWarps * 32)
    gemv_packed_kernel(PackedStack<Reader> s, DType c_dtype, const TA* a, int64_t k, int m, float alpha, float beta) {
  constexpr int kRows = rows_per_block<kM>();
  let_next_kernel_start();
  __shared__ float partial[kWarps][kRows * kM];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const TileOf tile = tile_of<kRows>(s, blockIdx.x);
  // The tile's rows: of one weight, or of gate (the first half) and up (the second).
  const Reader w_lo = s.w[kSwiglu ? 0 : tile.weight];
  const Reader w_hi = kSwiglu ? s.w[1] : w_lo;
  const int units = int(k / pu::kUnit);
  float acc[kRows][kM];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int i = 0; i < kM; ++i) acc[r][i] = 0.0f;
  wait_for_previous_kernel();  // A comes from the kernel before

  for (int base = warp * 32; base < units; base += kWarps * 32) {
    const int u = base + lane;
    if (u >= units) break;
    float x[kM][pu::kUnit], x_sum[kM];
#pragma unroll
    for (int i = 0; i < kM; ++i) {
      if (i < m) {
        float lo[8], hi[8];
        load_f32<8>(lo, a + i * k + Reader::first(u));
        load_f32<8>(hi, a + i * k + Reader::second(u));
        x_sum[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          x[i][e] = lo[e], x[i][8 + e] = hi[e];
          x_sum[i] += lo[e] + hi[e];
        }
      } else {
#pragma unroll
        for (int e = 0; e < pu::kUnit; ++e) x[i][e] = 0.0f;
        x_sum[i] = 0.0f;
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      pu::Unit t;
      (r < kRows / 2 ? w_lo : w_hi).load(row_of<kRows>(s, tile, r).row, u, t);
#pragma unroll
      for (int i = 0; i < kM; ++i) {
        float even = 0.0f, odd = 0.0f;  // two chains of fmas: half the dependent latency
#pragma unroll
        for (int e = 0; e < pu::kUnit; e += 2) {
          even = fmaf(t.code[e], x[i][e], even);
          odd = fmaf(t.code[e + 1], x[i][e + 1], odd);
        }
        acc[r][i] = fmaf(t.scale, (even + odd) - t.zero * x_sum[i], acc[r][i]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int i = 0; i < kM; ++i) {
      float v = acc[r][i];
      for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(0xffffffffu, v, mask);
      if (lane == 0) partial[warp][r * kM + i] = v;
    }
  __syncthreads();
  store_block_out<kWarps, kRows, kM>(partial, s, blockIdx.x, threadIdx.x, m, c_dtype, alpha, beta);
}

template <int kM, typename TA, typename Reader>
void launch(PackedStack<Reader> s, DType c_dtype, const TA* a, int64_t k, int m, float alpha, float beta,
            cudaStream_t stream) {
  const unsigned blocks = unsigned(stack_tiles(s, rows_per_block<kM>()));
  if (s.swiglu)
    launch_kernel(gemv_packed_kernel<kM, true, TA, Reader>, blocks, kWarps * 32, 0, stream, s, c_dtype, a, k, m, alpha,
                  beta);
  else
    launch_kernel(gemv_packed_kernel<kM, false, TA, Reader>, blocks, kWarps * 32, 0, stream, s, c_dtype, a, k, m, alpha,
                  beta);
}

enum class Variant { Auto, V1, Mma, Wide, Wide4, Group, Stream, Rows };

Variant variant() {
  const char* v = std::getenv("TESSERA_PACKED_GEMV");
  if (!v || !*v || std::strcmp(v, "auto") == 0) return Variant::Auto;
  if (std::strcmp(v, "v1") == 0) return Variant::V1;
  if (std::strcmp(v, "mma") == 0) return Variant::Mma;
  if (std::strcmp(v, "wide") == 0) return Variant::Wide;
  if (std::strcmp(v, "wide4") == 0) return Variant::Wide4;
  if (std::strcmp(v, "group") == 0) return Variant::Group;
  if (std::strcmp(v, "stream") == 0) return Variant::Stream;
  if (std::strcmp(v, "rows") == 0) return Variant::Rows;
  throw Error(std::string("TESSERA_PACKED_GEMV: unknown '") + v +
              "' (expected auto, v1, mma, wide, wide4, group, stream or rows)");
}

// Where auto takes v1: the byte schemes and q4_0 (2-byte records) at 1-2 rows of A.
bool v1_faster(const PackedTensor& w, int64_t m) {
  const QuantScheme s = w.spec.scheme;
  return m <= 2 && (s == QuantScheme::Int8 || s == QuantScheme::Q8_0 || s == QuantScheme::Q4_0);
}

// Where auto takes rows: int8 at one row of A, products of no more rows than K (the o and down
// projections; not the SwiGLU stack). Session 13 call E, H200, us against v1: 8B down 23.65 /
// 29.89, o 10.89 / 10.99, 1B down 10.99 / 17.40, o 5.27 / 6.56; rows lost the wide products (8B
// qkv 13.98 / 12.20, gate_up 40.42 / 33.53, lm_head 165.99 / 154.28) and every product at 2 rows
// of A but the 1B down.
bool rows_faster(const PackedProducts& p, int64_t m, int64_t k) {
  if (m != 1 || p.swiglu || p.weights[0]->spec.scheme != QuantScheme::Int8) return false;
  int64_t rows = 0;
  for (const PackedTensor* w : p.weights) rows += w->shape[0];
  return rows <= k;
}

}  // namespace

std::string fused_gemv_unfit(const Tensor& a, const PackedTensor& w, const GemmShape& s) {
  if (!s.trans_b) return "it computes A W^T only (trans_b)";
  if (!pu::readable(s.k)) return "K = " + std::to_string(s.k) + " is not a multiple of 16";
  if (s.k >= (int64_t(1) << 30) / pu::kUnit) return "K is too large";
  const size_t run_bytes = 8 * dtype_size(a.dtype());
  if (reinterpret_cast<uintptr_t>(a.data()) % run_bytes != 0) return "A is not aligned to 8 elements";
  const size_t code_align = w.spec.scheme == QuantScheme::Int8 ? 16 : w.spec.scheme == QuantScheme::Int4 ||
                                                                             w.spec.scheme == QuantScheme::NF4
                                                                         ? 8
                                                                         : 2;
  if (reinterpret_cast<uintptr_t>(w.parts[0].data()) % code_align != 0) return "the packed codes are misaligned";
  return {};
}

bool fused_gemv_takes(const Tensor& a, const PackedProducts& p, const GemmShape& s) {
  if (p.weights.empty() || p.weights.size() > size_t(p.swiglu ? 2 : kPackedStackMax) || s.m > ops::kFusedPackedRows)
    return false;
  if (p.swiglu && (p.weights.size() != 2 || p.weights[0]->shape != p.weights[1]->shape)) return false;
  for (const PackedTensor* w : p.weights)
    if (w->spec != p.weights[0]->spec || w->shape[0] == 0 || w->shape[1] != s.k || !fused_gemv_unfit(a, *w, s).empty())
      return false;
  return true;
}

void fused_gemv(const PackedProducts& p, const Tensor& a, const GemmShape& s, float alpha, float beta) {
  const PackedTensor& w = *p.weights[0];
  const Variant v = variant();
  const bool rows = v == Variant::Rows || (v == Variant::Auto && rows_faster(p, s.m, s.k));
  if (rows && fused_gemv_rows_fits(w)) return fused_gemv_rows(p, a, s, alpha, beta);
  const bool mma = v == Variant::Mma || v == Variant::Wide || v == Variant::Wide4 || v == Variant::Group ||
                   v == Variant::Stream || (v == Variant::Auto && !v1_faster(w, s.m));
  const bool auto_stream = v == Variant::Auto && w.spec.scheme == QuantScheme::Int4 && s.m <= 2;
  const MmaInt4Reads reads = v == Variant::Wide                     ? MmaInt4Reads::Wide2
                             : v == Variant::Wide4                  ? MmaInt4Reads::Wide4
                             : v == Variant::Group                  ? MmaInt4Reads::Group
                             : v == Variant::Stream || auto_stream  ? MmaInt4Reads::Stream
                                                                    : MmaInt4Reads::Units;
  if (mma && fused_gemv_mma_fits(a, w)) return fused_gemv_mma(p, a, s, alpha, beta, reads);
  cudaStream_t stream = stream_of(p.outs[0]);
  const DType c_dtype = p.outs[0].dtype();
  const quant_math::Nf4Tables* tables =
      w.spec.scheme == QuantScheme::NF4 ? device_nf4_tables(a.device().index) : nullptr;
  with_stack(p, tables, [&](const auto& stack) {
    dispatch_floating(a.dtype(), [&](auto* type) {
      using TA = std::remove_pointer_t<decltype(type)>;
      launch_by_rows_of_a(stack, a.data_as<TA>(), s.m, s.k, dtype_size(c_dtype), [&](auto rows_m, auto part,
                                                                                      const TA* rows, int m) {
        launch<decltype(rows_m)::value>(part, c_dtype, rows, s.k, m, alpha, beta, stream);
      });
    });
  });
  check_launch();
}

void fused_gemv(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha, float beta,
                const Tensor& bias) {
  const Tensor outs[] = {c}, biases[] = {bias};
  const PackedTensor* weights[] = {&w};
  fused_gemv(PackedProducts{outs, weights, biases}, a, s, alpha, beta);
}

}  // namespace tessera::cuda
