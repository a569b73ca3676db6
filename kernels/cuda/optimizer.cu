// CUDA AdamW (one fused pass: moments, master weights, working copy), per tensor or per unit of
// spans, and the squared-norm reduction.
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/adamw_each_span.h"

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.cuh"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

// The update of one element (torch.optim.AdamW's formula).
struct AdamWMath {
  ops::AdamWStep s;
  float bc1, bc2;  // bias corrections, from the host

  __device__ __forceinline__ void update(float& p, float g, float& m, float& v, float decay) const {
    const float ge = g * s.grad_scale;
    m = s.beta1 * m + (1.0f - s.beta1) * ge;
    v = s.beta2 * v + (1.0f - s.beta2) * ge * ge;
    p = p * decay - s.lr * (m / bc1) / (sqrtf(v / bc2) + s.eps);
  }
};

// ops::adamw: one weight-decay factor for every element.
struct OneDecay {
  float decay;
  // Element j's factor; false for padding (none here). `k` carries a search from element to element.
  __device__ __forceinline__ bool factor(int64_t, int&, float& out) const {
    out = decay;
    return true;
  }
};

// ops::adamw_spans: up to kMaxSpans spans in one launch. Each element finds its span among the
// table's ends (a few compares: the pass is bound by memory); past the last one it is padding.
constexpr int kMaxSpans = 32;

struct SpanDecay {
  int64_t end[kMaxSpans];  // ascending
  uint32_t decays = 0;     // bit k: span k decays
  int count = 0;
  float decay = 1.0f;      // the factor of the spans that decay

  __device__ __forceinline__ bool factor(int64_t j, int& k, float& out) const {
    while (k < count && end[k] <= j) ++k;
    if (k == count) return false;
    out = (decays >> k) & 1u ? decay : 1.0f;
    return true;
  }
};

// One fused pass per element: moments, master weight, and its copy in the working dtype (padding:
// the state kept as it is, a zero in the working copy).
template <typename Low, typename Decay>
struct AdamWOp {
  float *p, *m, *v;
  float* g;  // written only with s.zero_grad
  Low* low;  // null: no working copy
  AdamWMath math;
  Decay decays;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float pi[kN], gi[kN], mi[kN], vi[kN], li[kN];
    load_f32<kN>(pi, p + i);
    load_f32<kN>(gi, g + i);
    load_f32<kN>(mi, m + i);
    load_f32<kN>(vi, v + i);
    int k = 0;
#pragma unroll
    for (int e = 0; e < kN; ++e) {
      float decay;
      li[e] = 0.0f;
      if (!decays.factor(i + e, k, decay)) continue;
      math.update(pi[e], gi[e], mi[e], vi[e], decay);
      li[e] = pi[e];
    }
    store_f32<kN>(m + i, mi);
    store_f32<kN>(v + i, vi);
    store_f32<kN>(p + i, pi);
    if (low) store_f32<kN>(low + i, li);
    if (math.s.zero_grad) {
      const float zeros[kN] = {};
      store_f32<kN>(g + i, zeros);
    }
  }

  // Whether every buffer holds whole packs from element `at` on.
  bool aligned(int64_t at) const { return packs_aligned(p + at, m + at, v + at, g + at, low ? low + at : low); }
};

// Bias corrections on the host, computed exactly as the CPU reference does.
float bias_correction(float beta, int64_t step) { return 1.0f - std::pow(beta, static_cast<float>(step)); }

// One launch per unit by default (H200, 1B units: 4.15 TB/s against 3.75 per tensor, a copy 4.27);
// TESSERA_ADAMW=ranges: one ops::adamw launch per span, for comparison.
bool adamw_per_span() {
  static const bool ranges = [] {
    const char* e = std::getenv("TESSERA_ADAMW");
    return e && std::string(e) == "ranges";
  }();
  return ranges;
}

// Short-lived blocks (one pack of elements per thread, no grid-stride loop), so that kernels of a
// stream with priority over this one get SMs as soon as a block ends.
template <typename Op>
void launch_short_blocks(int64_t begin, int64_t end, bool aligned, cudaStream_t stream, const Op& op) {
  constexpr int kThreads = 256;
  const int64_t bulk = aligned ? (end - begin) / kPack * kPack : 0;
  auto blocks = [](int64_t items) { return static_cast<unsigned>((items + kThreads - 1) / kThreads); };
  if (bulk > 0)
    launch_kernel(elementwise_kernel<kPack, Op>, blocks(bulk / kPack), kThreads, 0, stream, begin, begin + bulk, op);
  if (begin + bulk < end)
    launch_kernel(elementwise_kernel<1, Op>, blocks(end - begin - bulk), kThreads, 0, stream, begin + bulk, end, op);
  check_launch();
}

// fn(pointer to the working copy in its dtype), or fn((float*) nullptr) without one.
template <typename Fn>
void with_low(const Tensor& low, Fn&& fn) {
  if (!low.defined()) {
    fn(static_cast<float*>(nullptr));
    return;
  }
  dispatch_floating(low.dtype(), [&](auto* tag) {
    using Low = std::remove_pointer_t<decltype(tag)>;
    fn(low.data_as<Low>());
  });
}

// Each block reduces its part in double (no drift over billions of elements), then one atomic.
template <typename T>
__global__ void sum_squares_kernel(float* out, const T* x, int64_t n) {
  double acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float xi = to_f32(x[i]);
    acc += double(xi) * xi;
  }
  for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, offset);
  __shared__ double warp_sums[kThreads / 32];
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
    atomicAdd(out, static_cast<float>(total));
  }
}

}  // namespace

void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s,
           const Tensor& low) {
  const int64_t n = param.numel();
  if (n == 0) return;
  const float bc1 = bias_correction(s.beta1, s.step), bc2 = bias_correction(s.beta2, s.step);
  auto launch = [&](auto* low_ptr) {
    using Low = std::remove_pointer_t<decltype(low_ptr)>;
    const AdamWOp<Low, OneDecay> op{param.data_as<float>(), m.data_as<float>(), v.data_as<float>(),
                                    grad.data_as<float>(), low_ptr, {s, bc1, bc2}, {1.0f - s.lr * s.weight_decay}};
    launch_elementwise(n, op.aligned(0), stream_of(param), op);
  };
  with_low(low, launch);
}

void adamw_spans(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s,
                 const Tensor& low, const std::vector<ops::AdamWSpan>& spans) {
  if (adamw_per_span()) {
    adamw_each_span(param, grad, m, v, s, low, spans, adamw, fill);
    return;
  }
  const int64_t n = param.numel();
  const int64_t tiled = spans.empty() ? 0 : spans.back().end;
  const float bc1 = bias_correction(s.beta1, s.step), bc2 = bias_correction(s.beta2, s.step);
  auto launch = [&](auto* low_ptr) {
    using Low = std::remove_pointer_t<decltype(low_ptr)>;
    AdamWOp<Low, SpanDecay> op{param.data_as<float>(), m.data_as<float>(), v.data_as<float>(), grad.data_as<float>(),
                               low_ptr, {s, bc1, bc2}, {}};
    // Groups of kMaxSpans spans, one launch each; the last one also covers the padding.
    for (size_t first = 0; first < spans.size() || (first == 0 && tiled < n); first += kMaxSpans) {
      const size_t last = std::min(spans.size(), first + kMaxSpans);
      op.decays = SpanDecay{};
      op.decays.decay = 1.0f - s.lr * s.weight_decay;
      for (size_t k = first; k < last; ++k) {
        op.decays.end[k - first] = spans[k].end;
        if (spans[k].decays) op.decays.decays |= 1u << (k - first);
      }
      op.decays.count = static_cast<int>(last - first);
      const int64_t begin = first < spans.size() ? spans[first].begin : 0;
      const int64_t end = last == spans.size() ? n : spans[last - 1].end;
      if (end <= begin) continue;
      launch_short_blocks(begin, end, op.aligned(begin), stream_of(param), op);
    }
  };
  with_low(low, launch);
}

void sum_squares(const Tensor& out, const Tensor& x) {
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_floating(x.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    sum_squares_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_of(x)>>>(out.data_as<float>(), x.data_as<T>(), n);
  });
  check_launch();
}

}  // namespace tessera::cuda
