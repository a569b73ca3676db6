// Packed documents for the Hopper attention kernels: each row's document bounds
// (ops::document_bounds), from which a CTA reads only the key (or query) tiles its rows' documents
// reach, and the order in which CTAs take their blocks, the most work first.
#include <climits>

#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kScanThreads = 1024;

// Exclusive scan with `combine` (associative, `identity` neutral) of one value per thread of a
// kScanThreads CTA, in the order of `pos` (a permutation of the thread indices): the result at pos
// combines the values at positions 0 .. pos - 1.
template <typename Combine>
__device__ int block_exclusive_scan(int v, int pos, int identity, Combine combine) {
  __shared__ int vals[kScanThreads];
  vals[pos] = v;
  for (int offset = 1; offset < kScanThreads; offset *= 2) {
    __syncthreads();
    const int other = pos >= offset ? vals[pos - offset] : identity;
    __syncthreads();
    vals[pos] = v = combine(other, v);
  }
  __syncthreads();
  const int before = pos > 0 ? vals[pos - 1] : identity;
  __syncthreads();  // a later call may overwrite vals
  return before;
}

// One CTA per batch row, thread t over a contiguous chunk of rows. A run starts at i when i == 0 or
// ids[i] != ids[i - 1] and ends at i when i == s - 1 or ids[i] != ids[i + 1]: a row's first is the
// last start at or before it (a prefix max over the chunks), its last the first end at or after
// it (a suffix min, the chunks scanned in reverse order).
__global__ void __launch_bounds__(kScanThreads) document_bounds_kernel(const int32_t* segments, int64_t s,
                                                                        int32_t* first, int32_t* last) {
  const int64_t b = blockIdx.x;
  const int32_t* ids = segments + b * s;
  const int64_t chunk = (s + kScanThreads - 1) / kScanThreads;
  const int64_t lo = min(s, threadIdx.x * chunk), hi = min(s, lo + chunk);
  auto starts = [&](int64_t i) { return i == 0 || ids[i] != ids[i - 1]; };
  auto ends = [&](int64_t i) { return i == s - 1 || ids[i] != ids[i + 1]; };
  int chunk_start = -1, chunk_end = INT_MAX;  // this chunk's last start and first end
  bool decreases = false;
  for (int64_t i = lo; i < hi; ++i) {
    if (starts(i)) chunk_start = int(i);
    if (chunk_end == INT_MAX && ends(i)) chunk_end = int(i);
    decreases = decreases || (i > 0 && ids[i] < ids[i - 1]);
  }
  decreases = __syncthreads_or(decreases);
  int start = block_exclusive_scan(chunk_start, threadIdx.x, -1, [](int x, int y) { return max(x, y); });
  int end = block_exclusive_scan(chunk_end, kScanThreads - 1 - threadIdx.x, INT_MAX,
                                 [](int x, int y) { return min(x, y); });
  int32_t* first_row = first + b * s;
  int32_t* last_row = last + b * s;
  for (int64_t i = lo; i < hi; ++i) {
    if (starts(i)) start = int(i);
    first_row[i] = decreases ? -1 : start;
  }
  for (int64_t i = hi - 1; i >= lo; --i) {
    if (ends(i)) end = int(i);
    last_row[i] = decreases ? -1 : end;
  }
}

constexpr int kOrderBuckets = 4096;  // works beyond the last bucket are ordered as equal
constexpr int kBucketsPerThread = kOrderBuckets / kScanThreads;

// One CTA: a counting sort of the items (batch row * blocks + block) by their work, descending.
// An item's work is the number of 128-row blocks it visits: for the forward's query blocks the key
// blocks from its first row's document start to its last row, for the backward's key blocks
// (by_keys) the query blocks from its first key to its last key's document end.
__global__ void __launch_bounds__(kScanThreads) heaviest_first_kernel(const int32_t* bounds, int64_t batch,
                                                                       int64_t s, int64_t blocks, bool by_keys,
                                                                       int32_t* order) {
  constexpr int64_t kRows = attn::kBlockRows;
  __shared__ int next[kOrderBuckets];  // counts, then each bucket's next place in `order`
  for (int i = threadIdx.x; i < kOrderBuckets; i += kScanThreads) next[i] = 0;
  __syncthreads();
  auto work = [&](int64_t item) {
    const int64_t b = item / blocks, row0 = (item % blocks) * kRows, row1 = min(row0 + kRows, s) - 1;
    int64_t w;
    if (by_keys) {
      const int32_t end = bounds[(batch + b) * s + row1];
      w = (end < 0 ? s - 1 : end) / kRows - row0 / kRows + 1;
    } else {
      w = row1 / kRows - max(bounds[b * s + row0], 0) / kRows + 1;
    }
    return int(min(w, int64_t(kOrderBuckets - 1)));
  };
  const int64_t items = batch * blocks;
  for (int64_t it = threadIdx.x; it < items; it += kScanThreads) atomicAdd(&next[work(it)], 1);
  __syncthreads();
  // Thread t owns buckets kOrderBuckets - 1 - (kBucketsPerThread t + k): the heaviest come first.
  int counts[kBucketsPerThread], sum = 0;
  for (int k = 0; k < kBucketsPerThread; ++k) sum += counts[k] = next[kOrderBuckets - 1 - (kBucketsPerThread * threadIdx.x + k)];
  int place = block_exclusive_scan(sum, threadIdx.x, 0, [](int x, int y) { return x + y; });
  for (int k = 0; k < kBucketsPerThread; ++k) {
    next[kOrderBuckets - 1 - (kBucketsPerThread * threadIdx.x + k)] = place;
    place += counts[k];
  }
  __syncthreads();
  for (int64_t it = threadIdx.x; it < items; it += kScanThreads) order[atomicAdd(&next[work(it)], 1)] = int32_t(it);
}

}  // namespace

void document_bounds(const Tensor& bounds, const Tensor& segment_ids) {
  const int64_t batch = segment_ids.size(0), s = segment_ids.size(1);
  int32_t* first = bounds.data_as<int32_t>();
  document_bounds_kernel<<<unsigned(batch), kScanThreads, 0, stream_of(segment_ids)>>>(
      segment_ids.data_as<int32_t>(), s, first, first + batch * s);
  check_launch();
}

namespace attn {

Tensor heaviest_first(const Tensor& bounds, bool by_keys, cudaStream_t stream) {
  const int64_t batch = bounds.size(1), s = bounds.size(2), blocks = (s + kBlockRows - 1) / kBlockRows;
  Tensor order = Tensor::empty({batch * blocks}, DType::I32, bounds.device());
  heaviest_first_kernel<<<1, kScanThreads, 0, stream>>>(bounds.data_as<int32_t>(), batch, s, blocks, by_keys,
                                                        order.data_as<int32_t>());
  check_launch();
  return order;
}

}  // namespace attn

}  // namespace tessera::cuda
