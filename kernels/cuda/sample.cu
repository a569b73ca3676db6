// CUDA sample_rows (the definition is in kernels/ops.h): one block per row, every step a pass
// over the row (from L2: the lm_head just wrote it).
//  0. argmax_rows first (ops.cpp): greedy rows keep its pick and this kernel's blocks for them
//     return at once, so a greedy decode step keeps argmax_rows' few-row split of the row;
//  1. the maximum and sum of exp of the row (kernels/cuda/row_pick.cuh);
//  2. top-k: the k-th largest key by radix selection, four rounds of 8-bit digits, each a
//     histogram of counts over the tokens matching the digits found so far;
//  3. top-p: the top-k's total weight, then the same selection over weights;
//  4. the draw: each warp sums the kept weights of its contiguous span, a scan over the warps
//     finds the span holding the target, and that warp walks it 32 tokens at a time.
// Weights are integers (sampling_row.h), so the sums do not depend on the order of atomics.
// TESSERA_SAMPLE_HISTOGRAM (read at each call) picks how histogram adds reach shared memory:
// `warp` (the default until measured) first combines the lanes of a warp that hit the same bin,
// since the first digits of nearby logits are mostly equal and plain atomics on one bin
// serialise; `atomic` adds each token alone. Both give the same sums, so the same tokens.
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/row_pick.cuh"
#include "kernels/sampling_row.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int kBins = 256;
constexpr unsigned kAll = 0xffffffffu;

struct SampleShared {
  unsigned long long hist[kBins];
  unsigned long long warp_sums[32];
  unsigned long long need;
  uint32_t bin;
};

template <typename T>
__device__ __forceinline__ float logit_at(const T* row, int64_t v) {
  return sampling::clean(to_f32(row[v]));
}

// hist[bin] += w for every lane of the warp with w != 0 (all 32 lanes call it); with Aggregate,
// one atomic per distinct bin. w <= 2^40, so the halves' sums over 32 lanes fit in 32 bits.
template <bool Aggregate>
__device__ __forceinline__ void add_to_bin(unsigned long long* hist, uint32_t bin, uint64_t w) {
  const uint32_t slot = w != 0 ? bin : kBins;  // kBins: nothing to add
#if __CUDA_ARCH__ >= 800
  if (Aggregate) {
    if (!__any_sync(kAll, slot != kBins)) return;  // later rounds: most warps hold no candidate
    const unsigned peers = __match_any_sync(kAll, slot);
    const unsigned hi = __reduce_add_sync(peers, static_cast<unsigned>(w >> 20));
    const unsigned lo = __reduce_add_sync(peers, static_cast<unsigned>(w & 0xFFFFFu));
    const int lane = threadIdx.x % 32;
    if (slot != kBins && lane == __ffs(peers) - 1)
      atomicAdd(&hist[slot], (static_cast<unsigned long long>(hi) << 20) + lo);
    return;
  }
#endif
  if (slot != kBins) atomicAdd(&hist[slot], static_cast<unsigned long long>(w));
}

// The largest key t such that the tokens with key >= t weigh at least `need` (1 <= need <= the
// total), weight(x, key) giving each token's weight (0: not counted).
template <bool Aggregate, typename T, typename Weight>
__device__ uint32_t select_key(const T* row, int64_t vocab, unsigned long long need, Weight weight,
                               SampleShared& sh) {
  uint32_t prefix = 0, mask = 0;
  const int lane = threadIdx.x % 32;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < kBins; b += blockDim.x) sh.hist[b] = 0;
    __syncthreads();
    for (int64_t base = 0; base < vocab; base += blockDim.x) {  // warp-uniform trip count
      const int64_t v = base + threadIdx.x;
      uint64_t w = 0;
      uint32_t k = 0;
      if (v < vocab) {
        const float x = logit_at(row, v);
        k = sampling::key(x);
        if ((k & mask) == prefix) w = weight(x, k);
      }
      add_to_bin<Aggregate>(sh.hist, (k >> shift) & 0xFFu, w);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      // Lane l holds bins [8l, 8l + 8); the digit is the bin where the weight from the top reaches need.
      unsigned long long local[8], sum = 0;
      for (int j = 0; j < 8; ++j) sum += local[j] = sh.hist[8 * lane + j];
      unsigned long long from_top = sum;  // of the lanes >= this one
      for (int d = 1; d < 32; d *= 2) {
        const unsigned long long t = __shfl_down_sync(kAll, from_top, d);
        if (lane + d < 32) from_top += t;
      }
      unsigned long long above = from_top - sum;
      if (lane == 0) {  // kept only if need exceeds the total (not for valid arguments)
        sh.bin = 0;
        sh.need = need;
      }
      __syncwarp();
      if (above < need && need <= from_top)
        for (int j = 7; j >= 0; --j) {
          if (above + local[j] >= need) {
            sh.bin = 8 * lane + j;
            sh.need = need - above;
            break;
          }
          above += local[j];
        }
    }
    __syncthreads();
    need = sh.need;
    prefix |= sh.bin << shift;
    mask |= 0xFFu << shift;
  }
  return prefix;
}

// Every warp's value: returns the sum over warps before this one, and their total in `total`.
__device__ unsigned long long scan_warps(unsigned long long mine, unsigned long long& total, SampleShared& sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  __syncthreads();  // an earlier call may still read warp_sums
  if (lane == 0) sh.warp_sums[warp] = mine;
  __syncthreads();
  if (warp == 0) {
    unsigned long long s = lane < warps ? sh.warp_sums[lane] : 0;
    for (int d = 1; d < 32; d *= 2) {
      const unsigned long long t = __shfl_up_sync(kAll, s, d);
      if (lane >= d) s += t;
    }
    if (lane < warps) sh.warp_sums[lane] = s;  // inclusive
  }
  __syncthreads();
  total = sh.warp_sums[warps - 1];
  return warp > 0 ? sh.warp_sums[warp - 1] : 0;
}

__device__ __forceinline__ unsigned long long warp_sum(unsigned long long v) {
  for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(kAll, v, mask);
  return v;
}

template <bool Aggregate, typename T>
__global__ void __launch_bounds__(kThreads) sample_rows_kernel(int32_t* index, float* logprob, const T* logits,
                                                               const SamplingRow* params, int64_t vocab) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  __shared__ SampleShared sh;
  const T* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const SamplingRow p = params[blockIdx.x];
  if (sampling::greedy(p)) return;  // argmax_rows' pick stays
  __shared__ RowPick row_best;
  const RowPick best_here = range_pick(row, 0, vocab, [](float x) { return sampling::clean(x); });
  if (threadIdx.x == 0) row_best = best_here;
  __syncthreads();
  const RowPick best = row_best;
  const float m = best.max, log_sum = logf(best.sum);
  if (!isfinite(m)) return;  // argmax_rows' pick stays
  const float temperature = p.temperature;
  const auto weight_of = [&](float x) { return sampling::weight_fixed(sampling::weight_f32(x, m, temperature)); };
  uint32_t floor_key = 0;  // kept: key >= floor_key
  if (sampling::top_k_on(p, vocab))
    floor_key = select_key<Aggregate>(row, vocab, static_cast<unsigned long long>(p.top_k),
                           [](float, uint32_t) { return uint64_t(1); }, sh);
  if (sampling::top_p_on(p)) {
    const uint32_t k_floor = floor_key;
    const auto in_top_k = [&](float x, uint32_t k) { return k >= k_floor ? weight_of(x) : uint64_t(0); };
    unsigned long long part = 0, total = 0;
    for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
      const float x = logit_at(row, v);
      part += in_top_k(x, sampling::key(x));
    }
    scan_warps(warp_sum(part), total, sh);
    const uint32_t p_floor = select_key<Aggregate>(row, vocab, sampling::top_p_need(p.top_p, total), in_top_k, sh);
    floor_key = max(floor_key, p_floor);
  }
  const float min_w = sampling::min_p_floor(p);
  const auto kept = [&](float x) -> unsigned long long {
    const float w = sampling::weight_f32(x, m, temperature);
    return sampling::key(x) >= floor_key && w >= min_w ? sampling::weight_fixed(w) : 0;
  };
  // Warp w's span: [w * span, (w + 1) * span), read 32 tokens at a time.
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int64_t span = (vocab + warps - 1) / warps, begin = min(vocab, warp * span), end = min(vocab, begin + span);
  unsigned long long mine = 0;
  for (int64_t v = begin + lane; v < end; v += 32) mine += kept(logit_at(row, v));
  mine = warp_sum(mine);
  unsigned long long total = 0;
  unsigned long long running = scan_warps(mine, total, sh);
  const unsigned long long target = sampling::draw_target(sampling::draw_bits(p), total);
  if (!(running <= target && target < running + mine)) return;  // warp-uniform: one warp goes on
  for (int64_t base = begin; base < end; base += 32) {
    const int64_t v = base + lane;
    const float x = v < end ? logit_at(row, v) : -INFINITY;
    const unsigned long long q = v < end ? kept(x) : 0;
    unsigned long long upto = q;  // inclusive prefix over the lanes
    for (int d = 1; d < 32; d *= 2) {
      const unsigned long long t = __shfl_up_sync(kAll, upto, d);
      if (lane >= d) upto += t;
    }
    const unsigned past = __ballot_sync(kAll, running + upto > target);
    if (past != 0) {
      if (lane == __ffs(past) - 1) {
        index[blockIdx.x] = static_cast<int32_t>(v);
        logprob[blockIdx.x] = x - m - log_sum;
      }
      return;
    }
    running += __shfl_sync(kAll, upto, 31);
  }
}

bool aggregate_histograms() {
  const char* v = std::getenv("TESSERA_SAMPLE_HISTOGRAM");
  const std::string choice = v && *v ? v : "warp";
  if (choice != "warp" && choice != "atomic")
    throw Error("TESSERA_SAMPLE_HISTOGRAM: unknown '" + choice + "' (expected warp or atomic)");
  return choice == "warp";
}

}  // namespace

void sample_rows(const Tensor& index, const Tensor& logprob, const Tensor& logits, const Tensor& params) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const int threads = static_cast<int>(std::min<int64_t>(kThreads, (vocab + 31) / 32 * 32));
  const bool aggregate = aggregate_histograms();
  dispatch_floating(logits.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    launch_kernel(aggregate ? sample_rows_kernel<true, T> : sample_rows_kernel<false, T>, static_cast<unsigned>(rows),
                  threads, 0, stream_of(logits),
                  index.data_as<int32_t>(), logprob.data_as<float>(), logits.data_as<T>(),
                  reinterpret_cast<const SamplingRow*>(params.data_as<int32_t>()), vocab);
  });
  check_launch();
}

}  // namespace tessera::cuda
